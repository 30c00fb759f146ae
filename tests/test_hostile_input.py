"""Hostile input at the public face (issue #15 item 6): each input gets its documented status,
nothing crashes, ``/health`` still answers, and afterwards no secret of the test and no full
phone number is found in any log file, the database, its backups, ``/metrics`` or a response.

Two parts, each printing its table (input, status, leaked):

- **in process**: the same FastAPI app Serve runs (``build_public_api``: ingress limits,
  routes), an in-memory dispatcher, the loopback LiveKit fake, real log files and a real
  metrics registry; most rows, including 200 requests/s at ``/calls`` for 5 s;
- **real Serve**: the shared end-to-end system (``local_system``: 2 replicas behind Serve's
  proxy, the internal face, the replay guard actor, the metrics hub, the store); the rows that
  depend on the cluster, then the grep of its logs, database, a fresh backup and ``/metrics``.

The tables are in docs/security.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from livekit import api

from deployments.public_face import build_public_api
from deployments.telephony_routes import TelephonyPorts
from tests.fakes.dispatcher import InMemoryDispatcher
from tests.fakes.livekit_server import FakeLiveKitServer, webhook_json
from tests.telephony_helpers import API_KEY, API_SECRET, CALLS_TOKEN, telephony_settings
from voice_ai.observability.logs import (
    AUDIT_LOGGER,
    PERFORMANCE_LOGGER,
    configure_file_logging,
)
from voice_ai.observability.metrics import VoiceMetrics
from voice_ai.telephony.credentials import open_livekit_api

pytestmark = pytest.mark.integration

TRUNK = "ST_outbound_test"
# Numbers only this module uses, so a leak found is one this module caused.
CALLER = "+15550199123"
CALLEE = "+15550199124"
ABROAD = "+4930901820"
FULLWIDTH = "+\uff11\uff15\uff15\uff15\uff10\uff11\uff19\uff19\uff11\uff12\uff15"
WRONG_SECRET = "wrong-secret-for-hostile-tests-0123456789"
KIB = 1024


def _digits(number: str) -> list[str]:
    """The forms a full number could leak in: with and without '+' and country code."""
    digits = "".join(ch for ch in number if ch.isdigit())
    return [digits, digits[1:]]


NUMBER_FORMS = [form for n in (CALLER, CALLEE, ABROAD) for form in _digits(n)]


def sign(body: bytes, *, secret: str = API_SECRET, ttl_s: float = 300.0) -> str:
    """LiveKit's Authorization header for raw bytes (they need not be UTF-8)."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    from datetime import timedelta

    return (api.AccessToken(API_KEY, secret).with_sha256(digest)
            .with_ttl(timedelta(seconds=ttl_s)).to_jwt())


def joined(room: str, *, created_at: float | None = None, event_id: str | None = None) -> bytes:
    return webhook_json("participant_joined", room, "sip_caller", phone=CALLER,
                        created_at=created_at, event_id=event_id).encode()


@dataclass
class Row:
    what: str
    expected: str
    got: str = ""
    leaked: int = 0


@dataclass
class Ledger:
    """Rows of one part, every secret it sent and every response it got back."""

    rows: list[Row] = field(default_factory=list)
    secrets: set[str] = field(default_factory=lambda: {API_SECRET, CALLS_TOKEN, WRONG_SECRET})
    answers: list[str] = field(default_factory=list)

    def token(self, value: str) -> str:
        self.secrets.add(value)
        return value

    def check(self, what: str, expected: set[int], status: int, answer: str = "") -> Row:
        self.answers.append(answer)
        row = Row(what, "/".join(str(s) for s in sorted(expected)), str(status),
                  leaked=self.leaks_in(answer))
        self.rows.append(row)
        assert status in expected, f"{what}: {status}, expected {row.expected}: {answer[:300]}"
        return row

    def leaks_in(self, text: str) -> int:
        return sum(s in text for s in self.secrets) + sum(n in text for n in NUMBER_FORMS)

    def table(self, title: str) -> str:
        width = max(len(r.what) for r in self.rows)
        got = max(6, *(len(r.got) for r in self.rows))
        lines = [title, f"| {'input'.ljust(width)} | {'status'.ljust(got)} | leaked |",
                 f"|{'-' * (width + 2)}|{'-' * (got + 2)}|--------|"]
        lines += [f"| {r.what.ljust(width)} | {r.got.ljust(got)} | {r.leaked:<6} |"
                  for r in self.rows]
        return "\n".join(lines)


def _grep_files(paths: list[Path], ledger: Ledger) -> dict[str, int]:
    found: dict[str, int] = {}
    needles = [s.encode() for s in ledger.secrets] + [n.encode() for n in NUMBER_FORMS]
    for path in paths:
        data = path.read_bytes()
        hits = sum(needle in data for needle in needles)
        if hits:
            found[str(path)] = hits
    return found


# --- in process ---------------------------------------------------------------------------------
class Healthy:
    async def overall(self) -> str:
        return "healthy"


@pytest.fixture
def log_dir(tmp_path: Path) -> Iterator[Path]:
    root = logging.getLogger()
    names = ("", AUDIT_LOGGER, PERFORMANCE_LOGGER)
    saved = {name: logging.getLogger(name).level for name in names}
    files = configure_file_logging(tmp_path / "logs", "INFO",
                                   secrets=[API_SECRET, CALLS_TOKEN])
    yield tmp_path / "logs"
    files.flush()
    root.removeHandler(files)
    files.close()
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def test_hostile_input_in_process(log_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    ledger = Ledger()
    metrics = VoiceMetrics()
    with FakeLiveKitServer().threaded() as server:
        settings = telephony_settings(server.url)
        dispatcher = InMemoryDispatcher(limit=100)
        ports = TelephonyPorts(dispatcher, lambda: open_livekit_api(settings),
                               rejections=metrics)
        client = TestClient(build_public_api(settings, ports, Healthy()))
        _run_in_process_rows(client, dispatcher, ledger)
        assert client.get("/health").status_code == 200
        dialled = [r.sip_call_to for r in server.calls("CreateSIPParticipant")]
    took = time.perf_counter() - started

    logging.getLogger().handlers[-1].flush()
    log_files = sorted(p for p in log_dir.rglob("*") if p.is_file())
    assert log_files, "nothing was logged: the grep below would prove nothing"
    assert "webhook rejected" in (log_dir / "voice_ai_agent.log").read_text()
    assert _grep_files(log_files, ledger) == {}
    metrics_text = metrics.render().decode()
    assert ledger.leaks_in(metrics_text) == 0
    assert 'voice_ai_webhooks_rejected_total{reason="signature"} 1.0' in metrics_text
    assert all(row.leaked == 0 for row in ledger.rows)
    assert set(dialled) == {CALLEE}  # only allowed numbers were ever dialled
    with capsys.disabled():
        print("\n" + ledger.table(f"hostile input, in process ({took:.1f} s)"))


def _run_in_process_rows(client: TestClient, dispatcher: InMemoryDispatcher,
                         ledger: Ledger) -> None:
    auth = {"Authorization": f"Bearer {CALLS_TOKEN}"}

    def hook(what: str, body: bytes | Iterator[bytes], expected: set[int],
             headers: dict[str, str]) -> Any:
        response = client.post("/livekit/webhook", content=body, headers=headers)
        ledger.check(what, expected, response.status_code,
                     response.text + json.dumps(dict(response.headers)))
        return response

    def signed(body: bytes, **kw: Any) -> dict[str, str]:
        return {"Authorization": ledger.token(sign(body, **kw))}

    def calls(what: str, body: bytes, expected: set[int]) -> Any:
        response = client.post("/calls", content=body, headers={
            **auth, "Content-Type": "application/json"})
        ledger.check(what, expected, response.status_code,
                     response.text + json.dumps(dict(response.headers)))
        return response

    big = b'{"event": "room_started", "room": {"metadata": "' + b"x" * (1024 * KIB) + b'"}}'
    hook("webhook body 1 MiB + 1 (Content-Length)", big, {413}, signed(big))
    hook("webhook body 2 MiB chunked, no Content-Length",
         (b"y" * 64 * KIB for _ in range(32)), {413}, {"Authorization": "x"})
    calls("/calls body 16 KiB + 1", b"{" + b" " * 16 * KIB + b"}", {413})
    not_utf8 = b'{"event": "participant_joined", "room": {"name": "\xff\xfe\xfa"}}'
    hook("webhook not UTF-8 (signed)", not_utf8, {400}, signed(not_utf8))
    calls("/calls not UTF-8", b'{"to": "\xff\xfe", "trunk_id": "x"}', {400})
    truncated = joined("call-_" + CALLER + "_t1")[:-40]
    hook("webhook truncated JSON (signed)", truncated, {400}, signed(truncated))
    calls("/calls truncated JSON", b'{"to": "' + CALLEE.encode() + b'", "trunk', {400})
    nested = b'{"event": "room_started", "room": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    hook("webhook nested 100000 deep (signed)", nested, {400}, signed(nested))
    calls("/calls nested 8000 deep", b"[" * 8000 + b"]" * 8000, {400, 422})

    # replay: a call arrives, ends, and the same signed webhook comes again
    room = f"call-_{CALLER}_r1"
    body = joined(room)
    header = signed(body)
    hook("webhook first delivery", body, {200}, header)
    dispatcher.finish(room)
    started = len(dispatcher.started)
    replay = hook("webhook replayed after its call ended", body, {200}, header)
    assert replay.json() == {"status": "duplicate_event"}
    assert len(dispatcher.started) == started

    expired = joined(f"call-_{CALLER}_e1")
    hook("webhook token expired", expired, {401}, signed(expired, ttl_s=-120))
    stale = joined(f"call-_{CALLER}_s1", created_at=time.time() - 3600)
    hook("webhook createdAt 1 h old", stale, {401}, signed(stale))
    future = joined(f"call-_{CALLER}_f1", created_at=time.time() + 3600)
    hook("webhook createdAt 1 h ahead", future, {401}, signed(future))
    wrong = joined(f"call-_{CALLER}_w1")
    hook("webhook signed with a wrong key", wrong, {401}, signed(wrong, secret=WRONG_SECRET))
    injected = joined(f"call-_{CALLER}\r\nX-Injected: 1")
    response = hook("webhook room name with CR/LF header", injected, {400}, signed(injected))
    assert "x-injected" not in response.headers
    pathlike = joined("../../../etc/passwd")
    hook("webhook room name ../../../etc/passwd", pathlike, {400}, signed(pathlike))
    assert all("passwd" not in room for _, room, _ in dispatcher.started)

    def to(number: str, trunk: str = TRUNK) -> bytes:
        return json.dumps({"to": number, "trunk_id": trunk}).encode()

    calls("/calls trunk_id ../../etc/passwd", to(CALLEE, "../../etc/passwd"), {422})
    calls("/calls trunk_id with CR/LF header", to(CALLEE, "ST_x\r\nX-Injected: 1"), {422})
    calls("/calls to in fullwidth (Unicode) digits", to(FULLWIDTH), {422})
    calls("/calls to outside OUTBOUND_ALLOWED_PREFIXES", to(ABROAD), {403})
    _flood(client, auth, to(CALLEE), ledger)


def _flood(client: TestClient, auth: dict[str, str], body: bytes, ledger: Ledger) -> None:
    """200 requests per second at /calls for 5 s, paced per second."""
    statuses: dict[int, int] = {}
    retry_after: set[str] = set()
    start = time.monotonic()
    for second in range(5):
        for _ in range(200):
            response = client.post("/calls", content=body, headers={
                **auth, "Content-Type": "application/json"})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 429:
                retry_after.add(response.headers["Retry-After"])
            else:
                ledger.answers.append(response.text)
        time.sleep(max(0.0, start + second + 1 - time.monotonic()))
    elapsed = time.monotonic() - start
    got = ", ".join(f"{n}x{s}" for s, n in sorted(statuses.items()))
    ledger.rows.append(Row(f"/calls 200 req/s for 5 s ({elapsed:.1f} s)", "202/429", got))
    assert set(statuses) <= {202, 429}, statuses
    # burst 10, then 2 per second: never more than the limiter allows
    assert 10 <= statuses.get(202, 0) <= 10 + 2 * elapsed + 1, statuses
    assert retry_after and all(int(v) >= 1 for v in retry_after)


# --- real Serve ---------------------------------------------------------------------------------
def _http(method: str, url: str, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read().decode("utf-8", "replace"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace"), dict(e.headers)


def _wait_for(what: str, check: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what} within {timeout_s:g}s"
        time.sleep(0.2)


def _rejected(metrics: str, reason: str) -> float:
    prefix = f'voice_ai_webhooks_rejected_total{{reason="{reason}"}} '
    line = next(ln for ln in metrics.splitlines() if ln.startswith(prefix))
    return float(line.removeprefix(prefix))


@pytest.mark.ray
@pytest.mark.slow
def test_hostile_input_through_real_serve(local_system: Any,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import ray

    from deployments.internal_face import internal_url
    from voice_ai.store.backup import backup_database

    started = time.perf_counter()
    settings = local_system.settings
    public = f"http://127.0.0.1:{settings.http_port}"
    internal = internal_url(settings)
    ledger = Ledger()

    def get(what: str, url: str, expected: set[int]) -> str:
        status, text, headers = _http("GET", url)
        ledger.check(what, expected, status, text + json.dumps(headers))
        return text

    def hook(what: str, body: bytes, expected: set[int], headers: dict[str, str]) -> str:
        status, text, answer_headers = _http("POST", f"{public}/livekit/webhook", body, headers)
        ledger.check(what, expected, status, text + json.dumps(answer_headers))
        return text

    for path in ("/health/detailed", "/metrics", "/docs", "/openapi.json"):
        get(f"GET :8000{path}", public + path, {404})
        get(f"GET internal face {path}", internal + path, {200})
    before = _rejected(get("GET internal face /metrics", internal + "/metrics", {200}),
                       "signature")
    wrong = joined(f"call-_{CALLER}_w2")
    hook("webhook signed with a wrong key", wrong, {401},
         {"Authorization": ledger.token(sign(wrong, secret=WRONG_SECRET))})
    _wait_for("the refusal counted on /metrics", lambda: _rejected(
        _http("GET", internal + "/metrics")[1], "signature") == before + 1)
    big = b'{"event": "room_started", "pad": "' + b"x" * (1024 * KIB) + b'"}'
    hook("webhook body 1 MiB + 1", big, {413}, {"Authorization": "x"})
    injected = joined(f"call-_{CALLER}\r\nX-Injected: 1")
    hook("webhook room name with CR/LF header", injected, {400},
         {"Authorization": ledger.token(sign(injected))})

    # a replay of an accepted webhook, sent several times so both replicas see it
    dispatcher = local_system.handles.dispatcher
    room = f"call-_{CALLER}_rs"
    body = joined(room)
    header = {"Authorization": ledger.token(sign(body))}
    first = json.loads(hook("webhook first delivery", body, {200}, header))
    assert first["status"] == "accepted", first
    accepted = ray.get(dispatcher.status.remote(), timeout=30)["accepted_total"]
    for n in range(4):
        replay = hook(f"webhook replayed ({n + 1})", body, {200}, header)
        assert json.loads(replay) == {"status": "duplicate_event"}
    assert ray.get(dispatcher.status.remote(), timeout=30)["accepted_total"] == accepted

    calls_headers = {"Authorization": f"Bearer {CALLS_TOKEN}",
                     "Content-Type": "application/json"}
    fullwidth = json.dumps({"to": FULLWIDTH, "trunk_id": TRUNK}).encode()
    status, text, _ = _http("POST", f"{public}/calls", fullwidth, calls_headers)
    ledger.check("/calls to in fullwidth (Unicode) digits", {422}, status, text)
    _burst_through_serve(public, calls_headers, ledger)
    get("GET :8000/health after all of it", public + "/health", {200})

    # the call the accepted webhook started ends and is stored; then grep everything
    record = ray.get(dispatcher.wait_call.remote(first["call_id"]), timeout=240)
    assert record.caller_masked == "+1********23"
    time.sleep(2.0)  # forwarded log records reach the hub's files
    backup = backup_database(settings.db_path, settings.backup_dir, retention_days=14)
    files = sorted(p for p in Path(settings.log_dir).rglob("*") if p.is_file())
    files += sorted(p for p in settings.db_path.parent.glob(settings.db_path.name + "*"))
    files += [backup.path, backup.latest]
    assert files and _grep_files(files, ledger) == {}
    metrics_text = _http("GET", internal + "/metrics")[1]
    assert ledger.leaks_in(metrics_text) == 0
    recordings = [p.name for p in Path(settings.recordings_dir).rglob("*")]
    assert not any(form in name for name in recordings for form in NUMBER_FORMS)
    assert all(row.leaked == 0 for row in ledger.rows)
    took = time.perf_counter() - started
    with capsys.disabled():
        print("\n" + ledger.table(f"hostile input, real Serve ({took:.1f} s)"))


def _burst_through_serve(public: str, headers: dict[str, str], ledger: Ledger) -> None:
    """As many /calls as 8 clients can send in 3 s; nothing dialled (the number is refused)."""
    body = json.dumps({"to": ABROAD, "trunk_id": TRUNK}).encode()
    deadline = time.monotonic() + 3.0

    def client() -> list[int]:
        seen = []
        while time.monotonic() < deadline:
            seen.append(_http("POST", f"{public}/calls", body, headers)[0])
        return seen

    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        statuses = [s for batch in pool.map(lambda _: client(), range(8)) for s in batch]
    rate = len(statuses) / (time.monotonic() - start)
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    got = ", ".join(f"{n}x{s}" for s, n in counts.items())
    ledger.rows.append(Row(f"/calls burst, 8 clients ({rate:.0f} req/s for 3 s)", "403/429", got))
    assert set(counts) <= {403, 429} and counts.get(429, 0) > 0, counts
