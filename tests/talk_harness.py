"""The call page served in this process, for tests that need no Ray: the talk routes over an
in-process ``TalkCallPort`` (admission, the call actor's offer answer and call run, the store),
and uvicorn on a loopback port in the test's own event loop."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from deployments.talk_routes import build_talk_router
from voice_ai.config import Settings
from voice_ai.pipeline.admission import AdmissionControl, Decision
from voice_ai.pipeline.specs import CallSpec
from voice_ai.pipeline.transport import CallTransport
from voice_ai.pipeline.transports import answer_offer
from voice_ai.records import CallDirection, CallRecord, EndReason
from voice_ai.webrtc.signalling import OfferDecision, OfferResult, SdpOffer

RunCall = Callable[[CallSpec, CallTransport], Awaitable[CallRecord]]


class InProcessTalkCalls:
    """What the dispatcher and a call actor do for a browser offer, in one process: admit
    (limit, busy record), answer the SDP, run the call in the background, store the record."""

    def __init__(self, settings: Settings, run_call: RunCall,
                 store: Callable[[CallRecord], None]) -> None:
        self._settings = settings
        self._run_call = run_call
        self._store = store
        self._admission = AdmissionControl(settings.max_concurrent_calls)
        self.records: dict[str, CallRecord] = {}
        self.transports: dict[str, CallTransport] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def active(self) -> int:
        return self._admission.active

    async def offer_call(self, offer: SdpOffer) -> OfferResult:
        call_id = uuid.uuid4().hex[:16]
        decision, _ = self._admission.admit(call_id, call_id)
        now = time.time()
        if decision is Decision.REJECTED:
            self._finish(CallRecord(call_id=call_id, direction=CallDirection.WEBRTC,
                                    started_at=now, ended_at=now,
                                    end_reason=EndReason.REJECTED_BUSY))
            return OfferResult(OfferDecision.REJECTED, call_id)
        spec = CallSpec(call_id=call_id, webrtc_offer=offer, admitted_at=now)
        transport, answer = await answer_offer(spec, self._settings)
        self.transports[call_id] = transport
        task = asyncio.create_task(self._run(spec, transport))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return OfferResult(OfferDecision.ACCEPTED, call_id, answer)

    async def _run(self, spec: CallSpec, transport: CallTransport) -> None:
        try:
            record = await self._run_call(spec, transport)
        finally:
            self._admission.release(spec.call_id)
        self._finish(record)

    def _finish(self, record: CallRecord) -> None:
        self._store(record)
        self.records[record.call_id] = record

    async def wait_idle(self, timeout_s: float) -> None:
        if self._tasks:
            await asyncio.wait_for(asyncio.gather(*self._tasks), timeout_s)


@asynccontextmanager
async def serve_talk_page(settings: Settings, calls: InProcessTalkCalls) -> AsyncIterator[str]:
    """The talk routes on a free loopback port; yields the base URL."""
    app = FastAPI()
    app.include_router(build_talk_router(settings, calls))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110  # uvicorn offers no event to await
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
