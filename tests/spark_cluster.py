"""Real Spark services on 127.0.0.1 for the Spark tests: a standalone master + worker, a Connect server.

Each service is a JVM started with pyspark's own launch scripts (``bin/spark-class``,
``bin/spark-submit``) on ports picked free; readiness is awaited by watching the service's log for
the line Spark prints when it is up (bounded waits), and teardown terminates the process group.

Run as a script (``python spark_cluster.py <master> <out-dir> <spec.json>``) it is the *driver* of
a test against a cluster: one Python process can hold only one classic SparkContext, and a Connect
client cannot live next to a classic session, so the tests run these drivers as subprocesses.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from _net import free_port

__all__ = ["spark_home", "SparkService", "standalone_cluster", "connect_server", "run_driver", "local_env"]


def spark_home() -> str:
    if os.environ.get("SPARK_HOME"):
        return os.environ["SPARK_HOME"]
    import pyspark

    return os.path.dirname(pyspark.__file__)


def local_env(**extra: str) -> dict[str, str]:
    """Environment for Spark processes: everything on 127.0.0.1, workers run this Python."""
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", SPARK_LOCAL_HOSTNAME="localhost", PYSPARK_PYTHON=sys.executable,
               SPARK_HOME=spark_home(), SPARK_NO_DAEMONIZE="1")  # fmt: skip
    env.update(extra)
    return env


class SparkService:
    """One Spark JVM started in its own process group, its output in ``log``."""

    def __init__(self, name: str, cmd: list[str], log: Path, env: dict[str, str]) -> None:
        self.name, self.log = name, log
        self._out = open(log, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_for(self, pattern: str, timeout: float = 120.0) -> re.Match:
        """Block until ``pattern`` appears in the log (or fail when the process dies / time runs out)."""
        rx, deadline = re.compile(pattern), time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = rx.search(self.log.read_text(errors="replace"))
            if found:
                return found
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f}s (waiting for {pattern!r}):\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        self._out.close()


@contextmanager
def standalone_cluster(tmp: Path, *, cores: int = 2, memory: str = "2g", timeout: float = 120.0):
    """A standalone master and one worker on 127.0.0.1; yields the master URL ``spark://127.0.0.1:P``."""
    home, env = spark_home(), local_env(SPARK_WORKER_DIR=str(tmp / "work"))
    cls = os.path.join(home, "bin", "spark-class")
    port = free_port()
    services = []
    try:
        master = SparkService("spark master", [cls, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                               "--port", str(port), "--webui-port", "0"], tmp / "master.log", env)  # fmt: skip
        services.append(master)
        master.wait_for(r"I have been elected leader", timeout)
        url = f"spark://127.0.0.1:{port}"
        worker = SparkService("spark worker", [cls, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                                               "--webui-port", "0", "--cores", str(cores), "--memory", memory, url],
                              tmp / "worker.log", env)  # fmt: skip
        services.append(worker)
        worker.wait_for(r"Successfully registered with master", timeout)
        yield url
    finally:
        for s in reversed(services):
            s.stop()


@contextmanager
def connect_server(tmp: Path, *, master: str = "local[2]", timeout: float = 180.0):
    """A Spark Connect server (``SparkConnectServer`` through spark-submit); yields ``sc://127.0.0.1:P``."""
    home, port = spark_home(), free_port()
    cmd = [os.path.join(home, "bin", "spark-submit"), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
           "--name", "truthound-sketch-connect-test", "--master", master,
           "--conf", "spark.connect.grpc.binding.address=127.0.0.1", "--conf", f"spark.connect.grpc.binding.port={port}",
           "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1",
           "--conf", "spark.ui.enabled=false", "--conf", "spark.sql.session.timeZone=UTC"]  # fmt: skip
    server = SparkService("spark connect server", cmd, tmp / "connect.log", local_env())
    try:
        server.wait_for(r"Spark Connect server started at", timeout)
        yield f"sc://127.0.0.1:{port}"
    finally:
        server.stop()


def run_driver(master: str, out: Path, spec: dict, timeout: float = 240.0) -> dict:
    """Run this file as a driver against ``master``; returns its report (partials are in ``out``)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, __file__, master, str(out)], env=local_env(), capture_output=True,
                          timeout=timeout)  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"spark driver for {master} failed ({proc.returncode}):\n{proc.stderr.decode()[-6000:]}")
    return json.loads((out / "report.json").read_text())


# -- the driver side ----------------------------------------------------------------------------
class Recorder:
    """A monitor that records every bus call (name, kwargs)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)

        def record(*args, **kwargs):
            if args:
                kwargs["id"] = args[0]
            self.events.append((name, {k: (v if isinstance(v, (int, float, str, type(None))) else repr(v)) for k, v in kwargs.items()}))
            return str(args[0]) if args else None

        return record


def _driver(master: str, out: Path) -> None:
    from truthound_sketch.config import ProfileConfig
    from truthound_sketch.distributed import DistributedProfiler, SparkConfig

    spec = json.loads((out / "spec.json").read_text())
    cfg = SparkConfig(master=master, **spec.get("config", {}))
    report: dict = {"runs": {}, "seconds": {}}
    t0 = time.perf_counter()
    rec = Recorder()
    profiler = DistributedProfiler.create(backend="spark", config=cfg, monitor=rec,
                                          profile_config=ProfileConfig(**spec.get("profile", {})))  # fmt: skip
    backend = profiler.backend
    spark = backend.spark
    report["owned"] = backend._owned
    report["seconds"]["session"] = time.perf_counter() - t0
    report["session_module"] = type(spark).__module__
    report["conf"] = {k: spark.conf.get(k, None) for k in spec.get("conf_keys", [])}
    for name, run in spec["runs"].items():
        rec.events.clear()
        t0 = time.perf_counter()
        if run["kind"] == "file":
            prof = backend.profile_file(run["path"])
        else:
            prof = backend.profile(spark.read.parquet(run["path"]).repartition(run["partitions"]))
        (out / f"{name}.partial").write_bytes(prof.partial.to_bytes())
        report["runs"][name] = {"partitions": prof.partitions, "engine": prof.engine, "events": rec.events[:]}
        report["seconds"][name] = time.perf_counter() - t0
    if not report["session_module"].startswith("pyspark.sql.connect"):
        report["executors"] = int(spark.sparkContext._jsc.sc().getExecutorIds().size())
    profiler.close()
    if report["session_module"].startswith("pyspark.sql.connect"):
        report["stopped"] = bool(spark.is_stopped)
    else:
        from pyspark import SparkContext

        report["stopped"] = SparkContext._active_spark_context is None
    (out / "report.json").write_text(json.dumps(report))


if __name__ == "__main__":
    _driver(sys.argv[1], Path(sys.argv[2]))
