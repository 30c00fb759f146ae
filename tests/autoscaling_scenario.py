"""The system on a cluster scaled by Ray's own autoscaler, on one machine: a burst of calls
beyond the head's call slots launches a worker node, calls run there, and after the burst the
node is removed. One JSON object on stdout (``tests/test_autoscaling.py`` asserts on it).

Run: ``.venv/bin/python -m tests.autoscaling_scenario [--out FILE] [--keep DIR]``. The cluster
(``tests/autoscaling_cluster.py``: the fake multi-node provider) has a head with 2 CPUs and 2
``call_slot``s, and one node type ``cpu_worker`` (2 CPUs, 2 call slots, 0..1 nodes, idle timeout
3 s). The system asks 1 call slot per call actor (CALL_ACTOR_SLOTS=1), packs call actors
(CALL_ACTOR_PLACEMENT=pack), keeps 1 warm spare replaced after 2 s idle, and admits
MAX_CONCURRENT_CALLS=3. Then 5 calls arrive at once: 3 are admitted, 2 rejected; the warm spare
and one cold actor fill the head's 2 slots, the third call's actor waits for a slot, the
autoscaler launches a ``cpu_worker`` and the call runs there. When the calls are over, the
spares are replaced on the head (pack placement prefers the dispatcher's node,
``voice_ai.calls.warm_pool.pack_onto``), the worker node empties and the autoscaler removes it.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.scenario_process import main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "tests" / "data" / "multinode_call.yaml"  # one turn, patient under load
LIMIT = 3
ARRIVALS = 5
HEAD = {"CPU": 2, "call_slot": 2}
WORKER_TYPE = {"cpu_worker": {"resources": {"CPU": 2, "call_slot": 2, "memory": 4 * 1024**3},
                              "node_config": {},
                              "min_workers": 0, "max_workers": 1}}


def _settings(root: Path) -> Any:
    from voice_ai.config import Settings

    return Settings(
        data_dir=root / "data", log_dir=root / "logs", db_path=root / "data" / "voice_ai.db",
        recordings_dir=root / "data" / "recordings", backup_dir=root / "backups",
        stt_provider="whisper", llm_provider="local", tts_provider="piper",
        max_concurrent_calls=LIMIT, warm_call_actors=1,
        call_actor_slots=1.0, call_actor_placement="pack", warm_spare_max_idle_s=2.0,
        startup_timeout_s=90.0, call_actor_prepare_timeout_s=90.0,
    )


class NodeWatch:
    """Counts alive nodes every half second (the most seen, and when)."""

    def __init__(self) -> None:
        self.most = 0
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._t0 = time.monotonic()

    def _loop(self) -> None:
        import ray

        while not self._stop.wait(0.5):
            try:
                n = sum(1 for node in ray.nodes() if node["Alive"])
            except Exception:
                continue
            if not self.samples or self.samples[-1][1] != n:
                self.samples.append((round(time.monotonic() - self._t0, 1), n))
            self.most = max(self.most, n)

    def start(self) -> NodeWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def run(out: dict[str, Any], root: Path) -> None:
    import ray

    from actors.names import NAMESPACE
    from actors.system import ensure_system, teardown_system
    from actors.worker_setup import RUNTIME_ENV
    from tests.autoscaling_cluster import FakeAutoscalingCluster
    from voice_ai.pipeline.admission import Decision
    from voice_ai.pipeline.scenario import load_scenario
    from voice_ai.pipeline.specs import CallSpec
    from voice_ai.records import CallRecord

    t0 = time.monotonic()
    settings = _settings(root)
    with FakeAutoscalingCluster(HEAD, WORKER_TYPE, idle_timeout_minutes=0.05) as cluster:
        ray.init(address=cluster.address, namespace=NAMESPACE, runtime_env=RUNTIME_ENV,
                 log_to_driver=False)
        cluster.find_session()
        head = ray.get_runtime_context().get_node_id()
        out["timings_s"] = {"cluster": round(time.monotonic() - t0, 1)}
        handles = ensure_system(settings)
        out["timings_s"]["system"] = round(time.monotonic() - t0, 1)
        out["nodes_before"] = len(cluster.alive_nodes())
        watch = NodeWatch().start()
        dispatcher = handles.dispatcher
        scenario = load_scenario(SCENARIO)
        specs = [CallSpec(call_id=uuid.uuid4().hex[:16], scenario=scenario, record_audio=False)
                 for _ in range(ARRIVALS)]
        started = ray.get([dispatcher.start_call.remote(s) for s in specs], timeout=120)
        out["decisions"] = [r.decision.value for r in started]
        accepted = [r.call_id for r in started if r.decision is Decision.ACCEPTED]
        records = ray.get([dispatcher.wait_call.remote(c) for c in accepted], timeout=240)
        out["timings_s"]["calls_done"] = round(time.monotonic() - t0, 1)
        out["calls"] = {r.call_id: {"outcome": r.outcome.value, "node": r.node_id,
                                    "on_head": r.node_id == head, "error": r.error,
                                    "turns": len(r.turns)}
                        for r in records if isinstance(r, CallRecord)}
        out["status"] = {k: v for k, v in ray.get(dispatcher.status.remote()).items()
                         if k in ("accepted_total", "rejected_total", "active_calls")}
        # after the burst: the worker node empties (spares go back to the head) and goes
        try:
            cluster.wait_nodes(1, timeout_s=90)
            out["scaled_down"] = True
        except TimeoutError as e:
            out["scaled_down"] = False
            out["scale_down_error"] = str(e)
        out["timings_s"]["scaled_down"] = round(time.monotonic() - t0, 1)
        watch.stop()
        out["most_nodes"] = watch.most
        out["node_counts"] = watch.samples
        out["nodes_after"] = len(cluster.alive_nodes())
        teardown_system(settings)


def run_in_subprocess() -> dict[str, Any]:
    """This scenario's result: it runs once per test session, in the background from the
    start of the session (``tests/background.py``)."""
    from tests import background

    return background.result("autoscaling").json_or_error()


if __name__ == "__main__":
    main(run, __doc__.splitlines()[0])
