#!/usr/bin/env bash
# Create benchmarks/.venv-whylogs: a side environment for the whylogs peer.
# whylogs 1.x needs numpy<2, which the project environment cannot hold.
# Exits non-zero with the pip error when the install fails; run.py then
# reports "whylogs: unavailable (<reason>)".
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-whylogs"
python="${PYTHON:-python3}"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import whylogs, pandas, pyarrow" 2>/dev/null; then
    echo "whylogs env ready: $venv"
    exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
# pyarrow >= 22 needs numpy 2; whylogs 1.6 predates pandas 3.
"$venv/bin/pip" install -q "whylogs" "pandas<3" "pyarrow<22" "numpy<2"
"$venv/bin/python" -c "import whylogs, pandas, pyarrow, numpy; print('whylogs', whylogs.__version__, 'numpy', numpy.__version__)"
echo "whylogs env ready: $venv"
