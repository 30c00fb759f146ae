"""The call page's routes with an in-memory TalkCallPort: what the browser gets for each answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack
from fastapi import FastAPI
from fastapi.testclient import TestClient
from ray.exceptions import RayActorError

from deployments.talk_routes import RayTalkCalls, build_talk_router, talk_url
from voice_ai.config import Settings
from voice_ai.telephony.dispatch import DispatcherUnavailable
from voice_ai.webrtc.signalling import (
    MAX_OFFER_BYTES,
    OfferDecision,
    OfferResult,
    SdpAnswer,
    SdpOffer,
)

pytestmark = pytest.mark.unit


class FakeTalkCalls:
    """Answers offers with a scripted decision and records what reached it."""

    def __init__(self) -> None:
        self.offers: list[SdpOffer] = []
        self.decision = OfferDecision.ACCEPTED
        self.unavailable = False

    async def offer_call(self, offer: SdpOffer) -> OfferResult:
        if self.unavailable:
            raise DispatcherUnavailable(retry_after_s=2.5)
        self.offers.append(offer)
        answer = SdpAnswer(sdp="v=0\r\nanswer\r\n")
        if self.decision is OfferDecision.ACCEPTED:
            return OfferResult(OfferDecision.ACCEPTED, "c-1", answer)
        return OfferResult(self.decision, "c-1", reason="" if self.decision is
                           OfferDecision.REJECTED else "call actor did not answer in 10 s")


@pytest.fixture(scope="module")
def offer_body() -> bytes:
    import asyncio

    async def make() -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(AudioStreamTrack())
        pc.createDataChannel("events")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    return json.dumps({"type": "offer", "sdp": asyncio.run(make())}).encode()


@pytest.fixture
def calls() -> FakeTalkCalls:
    return FakeTalkCalls()


@pytest.fixture
def client(calls: FakeTalkCalls) -> Iterator[TestClient]:
    settings = Settings(_env_file=None, busy_message="All lines are busy.")  # type: ignore[call-arg]
    app = FastAPI()
    app.include_router(build_talk_router(settings, calls))
    with TestClient(app) as test_client:
        yield test_client


def test_the_page_and_its_assets_are_served(client: TestClient) -> None:
    root = client.get("/", follow_redirects=False)
    assert root.status_code == 303 and root.headers["location"] == "/talk"
    page = client.get("/talk")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for needed in ('id="call"', 'id="hangup"', 'id="transcript"', 'id="turns"',
                   "/talk/static/talk.js"):
        assert needed in page.text
    js = client.get("/talk/static/talk.js")
    assert js.status_code == 200 and "text/javascript" in js.headers["content-type"]
    assert "/talk/offer" in js.text and "iceServers: []" in js.text
    assert client.get("/talk/static/talk.css").status_code == 200
    assert client.get("/talk/static/..%2Fapp.py").status_code == 404
    assert client.get("/talk/static/index.html").status_code == 404


def test_an_accepted_offer_returns_the_agents_answer(
    client: TestClient, calls: FakeTalkCalls, offer_body: bytes
) -> None:
    reply = client.post("/talk/offer", content=offer_body)
    assert reply.status_code == 200
    assert reply.json() == {"status": "accepted", "call_id": "c-1",
                            "answer": {"type": "answer", "sdp": "v=0\r\nanswer\r\n"}}
    assert len(calls.offers) == 1


@pytest.mark.parametrize(("body", "detail"), [
    (b"{not json", "body must be JSON"),
    (json.dumps({"type": "offer", "sdp": "hello"}).encode(), "must start with 'v=0'"),
    (json.dumps({"type": "offer", "sdp": "v=0\r\n" + "a=x\r\n" * (MAX_OFFER_BYTES // 5)}).encode(),
     "larger than 32768 bytes"),
])
def test_a_bad_offer_is_400_and_starts_nothing(
    client: TestClient, calls: FakeTalkCalls, body: bytes, detail: str
) -> None:
    reply = client.post("/talk/offer", content=body)
    assert reply.status_code == 400
    assert detail in reply.json()["detail"]
    assert calls.offers == []


def test_over_the_limit_the_page_gets_the_busy_message(
    client: TestClient, calls: FakeTalkCalls, offer_body: bytes
) -> None:
    calls.decision = OfferDecision.REJECTED
    reply = client.post("/talk/offer", content=offer_body)
    assert reply.status_code == 503 and reply.headers["retry-after"] == "30"
    assert reply.json() == {"status": "rejected", "call_id": "c-1",
                            "message": "All lines are busy.",
                            "reason": "over MAX_CONCURRENT_CALLS"}


def test_no_call_actor_or_no_dispatcher_is_503(
    client: TestClient, calls: FakeTalkCalls, offer_body: bytes
) -> None:
    calls.decision = OfferDecision.FAILED
    failed = client.post("/talk/offer", content=offer_body)
    assert failed.status_code == 503
    assert failed.json()["detail"] == "call actor did not answer in 10 s"
    calls.unavailable = True
    down = client.post("/talk/offer", content=offer_body)
    assert down.status_code == 503 and down.headers["retry-after"] == "3"


def test_the_printed_url_is_one_a_person_can_open() -> None:
    settings = Settings(_env_file=None, http_host="0.0.0.0", http_port=8123)  # type: ignore[call-arg]
    assert talk_url(settings) == "http://127.0.0.1:8123/talk"


class _Method:
    def __init__(self, reply: object) -> None:
        self.reply, self.specs = reply, []  # type: ignore[var-annotated]

    def remote(self, spec: object) -> object:
        self.specs.append(spec)

        async def answer() -> object:
            if isinstance(self.reply, BaseException):
                raise self.reply
            if self.reply == "hang":
                await asyncio.Event().wait()
            return self.reply
        return answer()


class _FakeDispatcherHandle:
    """Stands in for the dispatcher actor handle: ``offer_call.remote(spec)``."""

    def __init__(self, reply: object) -> None:
        self.offer_call = _Method(reply)


async def test_the_ray_port_sends_a_browser_call_spec_and_maps_a_lost_dispatcher(
    offer_body: bytes,
) -> None:
    offer = SdpOffer.parse(offer_body)
    accepted = OfferResult(OfferDecision.ACCEPTED, "c-9", SdpAnswer(sdp="v=0"))
    handle = _FakeDispatcherHandle(accepted)
    assert await RayTalkCalls(handle).offer_call(offer) == accepted
    (spec,) = handle.offer_call.specs
    assert spec.webrtc_offer == offer and spec.kind == "webrtc" and len(spec.call_id) == 16
    with pytest.raises(DispatcherUnavailable, match="RayActorError"):
        await RayTalkCalls(_FakeDispatcherHandle(RayActorError())).offer_call(offer)
    with pytest.raises(DispatcherUnavailable, match="DeadlineExceeded"):
        await RayTalkCalls(_FakeDispatcherHandle("hang"), deadline_s=0.05).offer_call(offer)
