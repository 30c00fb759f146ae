"""Several Ray nodes on one machine: the whole system on a head and two workers, checked as an
operator would see it, printed as one JSON object on stdout (``tests/test_multinode.py`` and
``tests/test_burst.py`` assert on it).

Run: ``.venv/bin/python -m tests.multinode_scenario [--out FILE] [--keep DIR]``. It builds its own
``ray.cluster_utils.Cluster`` (so it cannot share a process with the test session's Ray):

- head (1 CPU): dispatcher, telemetry hub, store writer, Serve;
- ``gpu`` worker (2 CPUs, declares ``num_gpus=1`` with no real GPU): the whisper pool must land
  here and still run, on CPU, because CTranslate2 finds no CUDA device; its spare CPU is the
  room where a pool worker lost with the ``cpu`` worker is re-created;
- ``cpu`` worker (1 CPU): call actors, a pool worker.

Then: a burst of 3x MAX_CONCURRENT_CALLS arrivals at once; the admitted calls run spread over
the nodes; the ``cpu`` worker is removed mid-call, after every call's first turn (each call's
checkpoint is with the dispatcher) while the callers pause; its calls are resumed on the
remaining nodes (a ``resumed`` event each) and complete like the others, one record each;
pools re-create what they lost. Then a drain: three new calls placed on the ``gpu`` worker are
moved off it after their first turn by ``voice-ai drain`` (the command, in a subprocess attached
to this cluster), and complete on the head. /metrics and /health/detailed are read before and
after. The simulated callers' hosts are pinned to the head: like a phone caller, the caller is
not on the node that dies.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import ray  # noqa: E402
from ray import serve  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from actors.caller_actor import (  # noqa: E402
    caller_host_name,
    caller_host_of,
    start_caller_hosts,
)
from actors.names import CALL_ACTOR_PREFIX, NAMESPACE, worker_name  # noqa: E402
from actors.store_writer import WRITER_NAME  # noqa: E402
from actors.system import ensure_system  # noqa: E402
from actors.worker_setup import RUNTIME_ENV  # noqa: E402
from deployments.app import VoiceGateway  # noqa: E402
from deployments.internal_face import internal_url  # noqa: E402
from tests import background  # noqa: E402
from tests.fixed_day import AGENT_TODAY  # noqa: E402
from tests.scenario_process import main  # noqa: E402
from voice_ai.config import Settings  # noqa: E402
from voice_ai.pipeline.admission import Decision  # noqa: E402
from voice_ai.pipeline.scenario import load_scenario  # noqa: E402
from voice_ai.pipeline.specs import CallSpec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "tests" / "data" / "multinode_resume_call.yaml"  # 3 turns, patient
DRAIN_SCENARIO = ROOT / "tests" / "data" / "multinode_drain_call.yaml"  # 4 turns, patient
LIMIT = 3  # MAX_CONCURRENT_CALLS: small, so a burst of 3x is cheap on 2 cores
HEAD_ONLY = {"node:__internal_head__": 0.001}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=20) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _wait(what: str, check: Callable[[], Any], timeout_s: float = 90.0) -> Any:
    deadline = time.time() + timeout_s
    while True:
        try:
            result = check()
        except Exception:
            result = None
        if result:
            return result
        if time.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            out.append((labels, float(line.rsplit(" ", 1)[1])))
    return out


def _audit_lines(settings: Settings, marker: str) -> list[str]:
    path = settings.log_dir / "voice_ai_agent_audit.log"
    if not path.exists():
        return []
    return [ln for ln in path.read_text().splitlines() if marker in ln]


def _call_log(settings: Settings, call_id: str, most: int = 40) -> list[str]:
    """The agent log's lines about ``call_id`` (each cut to 300 characters): a failing test
    prints them, since the scenario's folder is gone by then."""
    path = settings.log_dir / "voice_ai_agent.log"
    if not path.exists():
        return []
    return [ln[:300] for ln in path.read_text(errors="replace").splitlines()
            if call_id in ln][-most:]


def _field(line: str, key: str) -> str | None:
    m = re.search(rf"\b{key}=(\S+)", line)
    return m.group(1) if m else None


def _node_of_call(settings: Settings, call_id: str) -> str:
    lines = _wait(f"CALL_START of {call_id}",
                  lambda: [ln for ln in _audit_lines(settings, "CALL_START") if call_id in ln])
    return _field(lines[0], "node") or "-"


def _worker_node(name: str) -> tuple[str, dict[str, Any]]:
    info = ray.get(ray.get_actor(name, namespace=NAMESPACE).info.remote(), timeout=60)
    return info["node_id"], info


def _settings(root: Path, port: int) -> Settings:
    return Settings(
        http_port=port, http_host="127.0.0.1",
        data_dir=root / "data", log_dir=root / "logs", db_path=root / "data" / "voice_ai.db",
        recordings_dir=root / "data" / "recordings", backup_dir=root / "backups",
        internal_http_port=_free_port(),
        stt_provider="whisper", llm_provider="local", tts_provider="piper",
        stt_pool_size=1, llm_pool_size=1, tts_pool_size=1,
        warm_call_actors=LIMIT, max_concurrent_calls=LIMIT,
        # the removed node's calls resume at once, one on the reserve spare, the others on call
        # actors started cold on the remaining nodes: 10 s (the default) was too little for a
        # cold start with three nodes on two loaded cores (seen in a fresh-clone run)
        resume_deadline_s=30.0,
        agent_today=AGENT_TODAY,  # the caller's "Tuesday" is tomorrow whatever the date
    )


def _health(base: str) -> dict[str, Any]:
    status, body = _get(f"{base}/health/detailed")
    detailed = json.loads(body)
    ray_c = detailed["components"]["ray"]
    return {"http_status": status, "status": detailed["status"],
            "nodes_alive": ray_c["nodes_alive"],
            "node_ids": sorted(n["node_id"] for n in ray_c["nodes"]),
            "gpu_nodes": sorted(n["node_id"] for n in ray_c["nodes"]
                                if n["resources"].get("GPU", 0) >= 1),
            "pools": {k: {"status": v["status"], "workers_live": v.get("workers_live")}
                      for k, v in detailed["components"].items() if k.endswith("_pool")}}


def _metric_nodes(base: str) -> dict[str, list[str]]:
    """component -> sorted node labels seen in the process gauges on /metrics."""
    text = _get(f"{base}/metrics")[1]
    nodes: dict[str, set[str]] = {}
    for labels, _v in _metric_samples(text, "voice_ai_process_memory_bytes"):
        nodes.setdefault(labels["component"], set()).add(labels["node"])
    return {k: sorted(v) for k, v in nodes.items()}


def _call_counts(base: str) -> dict[str, float]:
    text = _get(f"{base}/metrics")[1]
    counts: dict[str, float] = {}
    for labels, value in _metric_samples(text, "voice_ai_calls_ended_total"):
        key = f"{labels['outcome']}/{labels['end_reason']}"
        counts[key] = counts.get(key, 0.0) + value
    counts["started"] = sum(v for _l, v in _metric_samples(text, "voice_ai_calls_started_total"))
    return counts


def _store_rows(settings: Settings, call_ids: list[str]) -> dict[str, list[str]]:
    with sqlite3.connect(settings.db_path) as db:
        rows = db.execute(
            f"SELECT call_id, outcome, end_reason FROM calls WHERE call_id IN "
            f"({','.join('?' * len(call_ids))})", call_ids).fetchall()
    return {r[0]: [r[1], r[2]] for r in rows}


def _resumed_events(settings: Settings, call_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """call id -> its ``resumed`` events (JSON detail) in the store."""
    out: dict[str, list[dict[str, Any]]] = {}
    with sqlite3.connect(settings.db_path) as db:
        for (detail,) in db.execute("SELECT detail FROM events WHERE kind = 'resumed' "
                                    "ORDER BY ts").fetchall():
            event = json.loads(detail)
            if event["call_id"] in call_ids:
                out.setdefault(event["call_id"], []).append(event)
    return out


def _caller_line(settings: Settings, call_id: str) -> dict[str, Any] | None:
    """What the caller's host saw of the call (its legs, lines spoken, replies cut), while
    the ended line is still kept."""
    host = ray.get_actor(caller_host_name(caller_host_of(call_id, settings)),
                         namespace=settings.ray_namespace)
    info = ray.get(host.line_info.remote(call_id), timeout=30)
    return None if info is None else dataclasses.asdict(info)


def _spec(scenario: Path = SCENARIO) -> CallSpec:
    return CallSpec(call_id=uuid.uuid4().hex[:16], scenario=load_scenario(scenario))


def _call_actor_nodes() -> list[str]:
    """The node (12 hex) of every call actor alive now, warm or in a call."""
    names = [str(e["name"]) for e in ray.util.list_named_actors(all_namespaces=True)
             if e["namespace"] == NAMESPACE and str(e["name"]).startswith(CALL_ACTOR_PREFIX)]
    nodes = []
    from ray._private.state import actors

    for name in names:
        try:
            entry = actors(ray.get_actor(name, namespace=NAMESPACE)._actor_id.hex())
        except Exception:  # retired since the listing
            continue
        if entry["State"] == "ALIVE":
            nodes.append(str(entry["Address"]["NodeID"])[:12])
    return sorted(nodes)


def _drain_phase(out: dict[str, Any], address: str, settings: Settings, dispatcher: Any,
                 ids: dict[str, str]) -> None:
    """Three live calls on the ``gpu`` worker, moved off it by ``voice-ai drain`` (the command,
    in a subprocess attached to this cluster) after their first turn."""
    head, worker = ids["head"], ids["gpu"]
    began = time.perf_counter()
    # set-up: every warm call actor on the worker (the head drained for a moment), so the
    # three new calls all start there
    ray.get(dispatcher.drain_node.remote(head), timeout=60)
    _wait("the warm pool refilled on the worker", lambda: ray.get(
        dispatcher.status.remote())["warm_ready"] >= LIMIT, 120)
    ray.get(dispatcher.undrain_node.remote(head), timeout=30)
    new = [_spec(DRAIN_SCENARIO) for _ in range(LIMIT)]
    started = ray.get([dispatcher.start_call.remote(s) for s in new], timeout=60)
    new_calls: dict[str, dict[str, Any]] = {}
    for s, st in zip(new, started, strict=True):
        new_calls[s.call_id] = {"decision": st.decision.value}
        if st.decision is Decision.ACCEPTED:
            new_calls[s.call_id]["node"] = _node_of_call(settings, s.call_id)
    live = [cid for cid, c in new_calls.items() if "node" in c]
    _wait("every drained call's first turn checkpointed", lambda: ray.get(
        dispatcher.status.remote())["resume"]["checkpoints_held"] >= len(live), 120)
    t = time.perf_counter()
    proc = subprocess.run(  # the operator's command, attached to this cluster
        [sys.executable, "-m", "deployments.cli", "drain", worker[:12], "--wait", "150"],
        cwd=ROOT, env={**os.environ, "RAY_ADDRESS": address}, capture_output=True, text=True,
        timeout=240)
    drain: dict[str, Any] = {"node": worker[:12], "exit_code": proc.returncode,
                             "stdout": proc.stdout[-2000:], "stderr": proc.stderr[-2000:],
                             "command_s": round(time.perf_counter() - t, 1)}
    for cid in live:
        record = ray.get(dispatcher.wait_call.remote(cid), timeout=300)
        new_calls[cid].update(outcome=record.outcome.value, end_reason=record.end_reason.value,
                              error=record.error, turns=len(record.turns),
                              answered=[bool(x.agent_text) for x in record.turns])
    rows = _store_rows(settings, live)
    resumed = _resumed_events(settings, live)
    for cid in live:
        new_calls[cid]["line"] = _caller_line(settings, cid)
        new_calls[cid]["store"] = rows.get(cid)
        new_calls[cid]["log"] = _call_log(settings, cid)
        new_calls[cid]["resumed"] = resumed.get(cid, [])
    out["new_calls"] = new_calls
    # afterwards: the warm pool refilled (the drain retired the worker's idle actors), and no
    # call actor is on the drained worker
    _wait("the warm pool refilled after the drain", lambda: ray.get(
        dispatcher.status.remote())["warm_ready"] >= LIMIT, 120)
    drain["call_actor_nodes_after"] = _call_actor_nodes()
    resume = ray.get(dispatcher.status.remote())["resume"]
    drain["draining_nodes"] = [n[:12] for n in resume["draining_nodes"]]
    # hand-overs whose next call actor joined the caller's line first (make before break)
    drain["handed_over_total"] = resume["handed_over_total"]
    drain["stood_by_total"] = resume["stood_by_total"]
    drain["phase_s"] = round(time.perf_counter() - began, 1)
    out["drain"] = drain


def run(out: dict[str, Any], root: Path) -> None:
    t0 = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False})
    gpu_node = cluster.add_node(num_cpus=2, num_gpus=1)
    cpu_node = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ids = {"head": cluster.head_node.node_id, "gpu": gpu_node.node_id, "cpu": cpu_node.node_id}
    short = {k: v[:12] for k, v in ids.items()}
    out["nodes"] = short
    try:
        ray.init(address=cluster.address, namespace=NAMESPACE, runtime_env=RUNTIME_ENV,
                 log_to_driver=False)
        settings = _settings(root, _free_port())
        start_caller_hosts(settings, resources=HEAD_ONLY)  # ensure_system finds them
        handles = ensure_system(settings)
        serve.start(proxy_location="HeadOnly",
                    http_options={"host": "127.0.0.1", "port": settings.http_port})
        gateway = VoiceGateway.options(  # type: ignore[attr-defined]
            ray_actor_options={"num_cpus": 0, "resources": HEAD_ONLY})
        serve.run(gateway.bind(settings, start_system=False), name="voice_ai",
                  route_prefix="/", blocking=False)
        base = internal_url(settings)  # /health/detailed and /metrics: the internal face
        out["startup_s"] = round(time.perf_counter() - t0, 1)

        # --- placement ----------------------------------------------------------------
        stt_node, stt_info = _worker_node(worker_name("stt", "whisper", 0))
        llm_node, _ = _worker_node(worker_name("llm", "local", 0))
        tts_node, _ = _worker_node(worker_name("tts", "piper", 0))
        writer_node = _actor_node(ray.get_actor(WRITER_NAME, namespace=NAMESPACE))
        out["placement"] = {"stt_whisper": stt_node[:12], "whisper_device": stt_info.get(
            "device"), "llm_local": llm_node[:12], "tts_piper": tts_node[:12],
            "store_writer": writer_node[:12]}
        out["health_before"] = _wait("3 nodes on /health/detailed",
                                     lambda: (h := _health(base))["nodes_alive"] == 3 and h)
        out["metrics_nodes_before"] = _wait(
            "call actors and pools of every node on /metrics",
            lambda: (m := _metric_nodes(base)) and len(
                {n for ns in m.values() for n in ns}) == 3 and m)

        # --- burst: 3x the limit at once -----------------------------------------------
        before = _call_counts(base)
        specs = [_spec() for _ in range(3 * LIMIT)]
        sent = time.perf_counter()
        refs = [handles.dispatcher.start_call.remote(s) for s in specs]
        answered: list[tuple[dict[str, Any], float]] = []
        pending = list(refs)
        order = {r: i for i, r in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=60)
            for ref in done:
                results[order[ref]] = (ray.get(ref), time.perf_counter() - sent)
        answered = results
        accepted = [r for r, _t in answered if r.decision is Decision.ACCEPTED]
        rejected = [(r, t) for r, t in answered if r.decision is Decision.REJECTED]
        after_burst = _wait("rejections on /metrics", lambda: (
            c := _call_counts(base))["rejected/rejected_busy"] - before.get(
                "rejected/rejected_busy", 0) >= len(rejected) and c, 20)
        out["burst"] = {
            "sent": len(specs), "accepted": len(accepted), "rejected": len(rejected),
            "reject_answer_max_s": round(max((t for _r, t in rejected), default=0.0), 3),
            "metrics_rejected_delta": after_burst["rejected/rejected_busy"]
            - before.get("rejected/rejected_busy", 0),
            "metrics_started_delta": after_burst["started"] - before["started"],
            "status": ray.get(handles.dispatcher.status.remote()),
            "audit_rejected": sum(
                any(r.call_id in ln for r, _t in rejected)
                for ln in _audit_lines(settings, "CALL_REJECTED")),
        }

        # --- the admitted calls run on several nodes; remove the cpu worker mid-call ------
        calls = {r.call_id: {"node": _node_of_call(settings, r.call_id)}
                 for r in accepted}
        _wait("every call's first turn checkpointed", lambda: ray.get(
            handles.dispatcher.status.remote())["resume"]["checkpoints_held"] >= len(calls), 120)
        # the burst took every warm actor; the refill rebuilds the resume reserve (two idle
        # call actors, spread over two nodes while calls run on several), one cold start at
        # a time: the node goes once it is there, still in the callers' long pause
        t = time.perf_counter()
        _wait("the resume reserve rebuilt", lambda: ray.get(
            handles.dispatcher.status.remote())["warm_ready"] >= 2, 120)
        out["reserve_before_removal"] = {"waited_s": round(time.perf_counter() - t, 1),
                                         "call_actor_nodes": _call_actor_nodes()}
        cluster.remove_node(cpu_node)  # mid-call: the callers pause before their 2nd line
        out["removed_node_at_s"] = round(time.perf_counter() - t0, 1)
        for call_id, c in calls.items():
            record = ray.get(handles.dispatcher.wait_call.remote(call_id), timeout=300)
            c.update(outcome=record.outcome.value, end_reason=record.end_reason.value,
                     error=record.error, turns=len(record.turns),
                     heard=[t.user_text for t in record.turns],
                     replies=[t.agent_text for t in record.turns])
        rows = _store_rows(settings, list(calls))
        ends = {cid: _wait(f"CALL_END of {cid}", lambda cid=cid: [
            ln for ln in _audit_lines(settings, "CALL_END") if cid in ln], 30)[0]
            for cid in calls}
        resumed = _resumed_events(settings, list(calls))
        for cid, c in calls.items():
            c["store"] = rows.get(cid)
            c["log"] = _call_log(settings, cid)
            c["resumed"] = resumed.get(cid, [])
            c["audit_end"] = {"outcome": _field(ends[cid], "outcome"),
                              "end_reason": _field(ends[cid], "end_reason"),
                              "level": "ERROR" if " ERROR " in ends[cid] else "INFO"}
        out["calls"] = calls

        # --- after: pools re-created, new calls on the remaining nodes ---------------------
        out["health_after"] = _wait("the removed node gone from /health/detailed", lambda: (
            h := _health(base))["nodes_alive"] == 2 and all(
                p["status"] == "healthy" for p in h["pools"].values()) and h, 120)
        out["placement_after"] = {
            "stt_whisper": _worker_node(worker_name("stt", "whisper", 0))[0][:12],
            "llm_local": _worker_node(worker_name("llm", "local", 0))[0][:12],
            "tts_piper": _worker_node(worker_name("tts", "piper", 0))[0][:12]}
        _drain_phase(out, cluster.address, settings, handles.dispatcher, ids)
        out["counts_final"] = _call_counts(base)
    finally:
        out["total_s"] = round(time.perf_counter() - t0, 1)
        try:
            serve.shutdown()
        except Exception:
            pass
        ray.shutdown()
        cluster.shutdown()


def _actor_node(handle: Any) -> str:
    """Node of an actor from Ray's GCS table (the store writer has no ``info()``)."""
    from ray._private.state import actors  # private, but the GCS table needs no dashboard

    return str(actors(handle._actor_id.hex())["Address"]["NodeID"])


def run_in_subprocess() -> dict[str, Any]:
    """This scenario's result: it runs once per test session, in the background from the
    start of the session (``tests/background.py``); both test modules read it."""
    return background.result("multinode").json_or_error()


if __name__ == "__main__":
    main(run, __doc__.splitlines()[0])
