"""A Ray cluster with Ray's own autoscaler on one machine: the fake multi-node provider
(``ray.autoscaler._private.fake_multi_node``, what Ray's autoscaler tests and
``ray.cluster_utils.AutoscalingCluster`` use) launches and removes worker "nodes" (a raylet
each, on this machine) as the autoscaler decides from resource demand.

Why not ``AutoscalingCluster`` itself: its ``start()`` and ``shutdown()`` run ``ray stop
--force``, which kills every Ray on the machine (other engineers' tests and benchmarks share
it), it listens on the fixed port 6379, and this Ray wheel lacks the ``example.yaml`` it reads.
So this starts the same thing with its own ports and temp dir, names the provider class
directly (``type: external``; ``tests/autoscaling_provider.py``: Ray's, able to give a node
``memory``), and stops only its own processes (found by its session name).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

__all__ = ["FakeAutoscalingCluster"]

FAKE_PROVIDER = "tests.autoscaling_provider.MemoryFakeProvider"  # Ray's, plus node memory
ROOT = Path(__file__).resolve().parent.parent
HEAD_TYPE = "ray.head.default"  # the fake provider's name for the head's node type


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeAutoscalingCluster:
    """``with FakeAutoscalingCluster(head, worker_types, idle_timeout_minutes=0.1) as c:
    ray.init(address=c.address)``."""

    def __init__(self, head_resources: dict[str, float], worker_node_types: dict[str, Any],
                 *, idle_timeout_minutes: float = 0.1, upscaling_speed: float = 1.0) -> None:
        self.head_resources = dict(head_resources)
        self.worker_node_types = worker_node_types
        self.idle_timeout_minutes = idle_timeout_minutes
        self.upscaling_speed = upscaling_speed
        self._tmp = Path(tempfile.mkdtemp(prefix="va-as-"))
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.session_name = ""

    def config(self) -> dict[str, Any]:
        resources = dict(self.head_resources)
        return {
            "cluster_name": "voice-ai-fake",
            "max_workers": sum(t.get("max_workers", 0) for t in self.worker_node_types.values()),
            "upscaling_speed": self.upscaling_speed,
            "idle_timeout_minutes": self.idle_timeout_minutes,
            "provider": {"type": "external", "module": FAKE_PROVIDER,
                         "gcs_address": self.address,
                         "use_node_id_as_ip": True,  # several nodes share this machine's IP
                         "disable_launch_config_check": True, "disable_node_updaters": True},
            "auth": {"ssh_user": "nobody"},
            "available_node_types": {
                **self.worker_node_types,
                HEAD_TYPE: {"resources": resources, "node_config": {}, "max_workers": 0},
            },
            "head_node_type": HEAD_TYPE,
            "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
            "rsync_exclude": [], "rsync_filter": [], "initialization_commands": [],
            "setup_commands": [], "head_setup_commands": [], "worker_setup_commands": [],
            "head_start_ray_commands": [], "worker_start_ray_commands": [],
        }

    def env(self) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        return {**os.environ, "PYTHONPATH": path,  # the monitor imports FAKE_PROVIDER
                "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1",
                "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}

    def start(self) -> FakeAutoscalingCluster:
        config = self._tmp / "autoscaling.json"
        config.write_text(json.dumps(self.config()))
        resources = dict(self.head_resources)
        cpus = resources.pop("CPU", 1)
        ray = str(Path(sys.executable).with_name("ray"))
        cmd = [ray, "start", "--head", f"--port={self.port}", "--node-ip-address=127.0.0.1",
               f"--autoscaling-config={config}", f"--num-cpus={cpus}",
               f"--resources={json.dumps(resources)}", f"--temp-dir={self._tmp / 'ray'}",
               "--include-dashboard=false", "--disable-usage-stats",
               f"--ray-client-server-port={_free_port()}",
               f"--dashboard-agent-listen-port={_free_port()}",
               f"--dashboard-agent-grpc-port={_free_port()}",
               f"--runtime-env-agent-port={_free_port()}",
               f"--metrics-export-port={_free_port()}"]
        done = subprocess.run(cmd, env=self.env(), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start --head failed: {done.stderr[-2000:]}")
        os.environ["RAY_AUTH_MODE"] = "disabled"  # this process's driver joins it unauthenticated
        return self

    def find_session(self) -> str:
        """The session name, from the driver once connected (names every process of ours)."""
        import ray

        self.session_name = str(ray._private.worker.global_worker.node.session_name)
        return self.session_name

    def alive_nodes(self) -> list[dict[str, Any]]:
        import ray

        return [n for n in ray.nodes() if n["Alive"]]

    def wait_nodes(self, count: int, timeout_s: float) -> float:
        """Wait until ``count`` nodes are alive; returns the seconds it took."""
        started = time.monotonic()
        while len(self.alive_nodes()) != count:
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"{len(self.alive_nodes())} nodes alive, waited for {count} "
                                   f"for {timeout_s:g} s")
            time.sleep(0.5)
        return time.monotonic() - started

    def stop(self) -> None:
        """Stop only this cluster's processes (and their children): never ``ray stop``."""
        marks = [m for m in (self.session_name, str(self._tmp)) if m]
        ours: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if any(m in cmd for m in marks) or f"127.0.0.1:{self.port}" in cmd:
                ours[proc.pid] = proc
                try:
                    for child in proc.children(recursive=True):
                        ours[child.pid] = child
                except psutil.Error:
                    pass
        ours.pop(os.getpid(), None)
        for proc in ours.values():
            try:
                proc.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(list(ours.values()), timeout=10)

    def __enter__(self) -> FakeAutoscalingCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            import ray

            if ray.is_initialized():
                self.find_session()
                ray.shutdown()
        finally:
            self.stop()
