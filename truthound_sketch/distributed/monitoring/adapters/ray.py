"""Watching a Ray cluster through its state API (or, without the dashboard, ``ray.nodes()``)."""

from __future__ import annotations

import collections
import logging
from typing import Any

from truthound_sketch.errors import MissingDependencyError

from .base import MonitorAdapter, WorkerSample

__all__ = ["RayMonitorAdapter"]

_log = logging.getLogger(__name__)
_FALLBACK = (
    "Ray's state API is not reachable ({error}); it is served by the Ray dashboard "
    "(pip install 'ray[default]' and start Ray with include_dashboard=True). Falling back to "
    "ray.nodes(): node liveness everywhere, CPU and memory for nodes on this host, no task counts"
)


class RayMonitorAdapter(MonitorAdapter):
    """Ray nodes as workers (``ray-node-<id>``).

    With the state API (``ray.util.state.list_nodes``, ``list_workers``, ``list_tasks``) each
    node reports its running tasks and, for nodes on this host, the real CPU and memory of its
    worker processes. Without it (no dashboard) the adapter says so once and falls back to
    ``ray.nodes()`` plus host readings for the local node. Dead nodes are reported lost.

    ``address`` is used only if Ray is not initialized yet (``ray.init(address=...)``, at the
    first poll or :meth:`connect`); constructing the adapter connects to nothing.
    """

    engine = "ray"

    def __init__(self, address: str | None = None, poll_interval_seconds: float = 5.0,
                 *, state_api_timeout_seconds: float = 10.0) -> None:
        super().__init__(poll_interval_seconds)
        self.address = address
        self.state_api_timeout_seconds = state_api_timeout_seconds
        self.state_api: bool | None = None  # unknown until the first connect
        self.state_api_error: str | None = None
        self._procs: dict[int, Any] = {}

    def connect(self) -> bool:
        try:
            import ray
        except ImportError:
            raise MissingDependencyError("ray", "ray", "Monitoring Ray") from None
        if not ray.is_initialized():
            if self.address is None:
                return self._unavailable("Ray is not initialized: call ray.init() first or pass "
                                         "RayMonitorAdapter(address=...)")
            ray.init(address=self.address, ignore_reinit_error=True, logging_level=logging.WARNING)
        if self.state_api is None:
            try:
                from ray.util.state import list_nodes

                list_nodes(limit=1, timeout=self.state_api_timeout_seconds, raise_on_missing_output=False)
                self.state_api = True
            except Exception as exc:
                self.state_api = False
                self.state_api_error = _FALLBACK.format(error=type(exc).__name__)
                _log.warning("RayMonitorAdapter: %s", self.state_api_error)
                import psutil

                psutil.cpu_percent(None)  # prime host CPU readings for the fallback
        self.unavailable_reason = None
        return True

    def sample(self) -> list[WorkerSample]:
        if not self.connect():
            return []
        return self._sample_state_api() if self.state_api else self._sample_nodes()

    def get_metrics(self) -> dict[str, Any]:
        """Cluster-wide numbers: nodes, resources, and (with the state API) running tasks."""
        if not self.connect():
            return {"available": False, "reason": self.unavailable_reason}
        import ray

        nodes = ray.nodes()
        metrics = {
            "available": True,
            "state_api": bool(self.state_api),
            "state_api_error": self.state_api_error,
            "nodes": len(nodes),
            "alive_nodes": sum(1 for n in nodes if n.get("Alive")),
            "cluster_resources": ray.cluster_resources(),
            "available_resources": ray.available_resources(),
        }
        if self.state_api:
            from ray.util.state import list_tasks, list_workers

            t = self.state_api_timeout_seconds
            metrics["running_tasks"] = len(list_tasks(filters=[("state", "=", "RUNNING")], timeout=t,
                                                      raise_on_missing_output=False))
            metrics["workers"] = len(list_workers(filters=[("is_alive", "=", True)], timeout=t,
                                                  raise_on_missing_output=False))
        return metrics

    # ---------------------------------------------------------------- state API
    def _sample_state_api(self) -> list[WorkerSample]:
        import psutil
        import ray
        from ray.util.state import list_nodes, list_tasks, list_workers

        t = self.state_api_timeout_seconds
        here = ray.util.get_node_ip_address()
        running = collections.Counter(task.node_id for task in list_tasks(
            filters=[("state", "=", "RUNNING")], timeout=t, raise_on_missing_output=False))
        pids: dict[str, list[int]] = collections.defaultdict(list)
        for w in list_workers(filters=[("is_alive", "=", True)], timeout=t, raise_on_missing_output=False):
            if w.pid and w.node_id:
                pids[w.node_id].append(w.pid)
        samples = []
        for n in list_nodes(timeout=t, raise_on_missing_output=False):
            wid = f"ray-node-{n.node_id[:12]}"
            if n.state != "ALIVE":
                samples.append(WorkerSample(wid, alive=False, info={"node_id": n.node_id},
                                            reason=f"Ray node {n.node_ip} is {n.state}: "
                                                   f"{getattr(n, 'state_message', None) or 'no reason given'}"))
                continue
            cpu = memory = None
            if n.node_ip == here:
                cpu, memory = self._processes_usage(psutil, pids.get(n.node_id, []))
            samples.append(WorkerSample(wid, cpu_percent=cpu, memory_percent=memory,
                                        active_tasks=running.get(n.node_id, 0),
                                        info={"node_id": n.node_id, "node_ip": n.node_ip,
                                              "workers": len(pids.get(n.node_id, []))}))
        return samples

    def _processes_usage(self, psutil, pids: list[int]) -> tuple[float | None, float | None]:
        cpu = memory = 0.0
        for pid in pids:
            proc = self._procs.get(pid)
            try:
                if proc is None:
                    proc = self._procs[pid] = psutil.Process(pid)
                    proc.cpu_percent(None)
                cpu += proc.cpu_percent(None)
                memory += proc.memory_percent()
            except psutil.Error:
                self._procs.pop(pid, None)
        for pid in set(self._procs) - set(pids):
            del self._procs[pid]
        return cpu, memory

    # ---------------------------------------------------------------- fallback
    def _sample_nodes(self) -> list[WorkerSample]:
        import psutil
        import ray

        here = ray.util.get_node_ip_address()
        samples = []
        for n in ray.nodes():
            wid = f"ray-node-{n['NodeID'][:12]}"
            ip = n.get("NodeManagerAddress")
            if not n.get("Alive"):
                why = n.get("DeathReasonMessage") or "no reason given"
                samples.append(WorkerSample(wid, alive=False, info={"node_id": n["NodeID"]},
                                            reason=f"Ray node {ip} is dead: {why}"))
                continue
            cpu = memory = None
            if ip == here:  # the node is this machine: host readings
                cpu, memory = psutil.cpu_percent(None), psutil.virtual_memory().percent
            samples.append(WorkerSample(wid, cpu_percent=cpu, memory_percent=memory,
                                        info={"node_id": n["NodeID"], "node_ip": ip,
                                              "resources": n.get("Resources", {})}))
        return samples
