# The two commands of the README: `make demo` (profile real data) and `make test` (the whole suite).
# Both set everything up from scratch on a fresh machine: a virtualenv in .venv with the package
# (editable, with its C extension) and every engine; Java for Spark through apt-get when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: setup java demo test bench clean

# bytecode for the package's own modules, as a wheel install would have (an editable install run
# with PYTHONDONTWRITEBYTECODE=1 otherwise compiles them in every process it starts)
setup: $(VENV)/.installed
	$(BIN)/python -m compileall -q truthound_sketch shims >/dev/null

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -U pip wheel
	$(PIP) install -e '.[all,test,bench]'
	touch $@

java:
	@command -v java >/dev/null 2>&1 || { \
	  echo "installing Java 17 (Spark needs it)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }
	@java -version 2>&1 | head -1

demo: setup
	$(BIN)/python benchmarks/make_data.py --scales 1 --no-synthetic
	$(BIN)/th profile benchmarks/data/lineitem-sf1.parquet
	$(BIN)/python -m truthound_sketch.demo

test: setup java
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: setup
	$(BIN)/python benchmarks/make_data.py
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info
