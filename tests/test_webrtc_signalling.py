"""The browser's SDP offer is checked completely before anything starts: one clear line each."""

from __future__ import annotations

import json
import re

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

from voice_ai.webrtc.signalling import MAX_OFFER_BYTES, OfferError, SdpAnswer, SdpOffer

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def browser_sdp() -> str:
    """A real offer: microphone + data channel, as the page makes it (aiortc plays browser)."""
    import asyncio

    async def make() -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(AudioStreamTrack())
        pc.createDataChannel("events")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    return asyncio.run(make())


def _body(sdp: object, kind: object = "offer") -> bytes:
    return json.dumps({"type": kind, "sdp": sdp}).encode()


def test_a_browser_offer_is_accepted(browser_sdp: str) -> None:
    offer = SdpOffer.parse(_body(browser_sdp))
    assert offer.sdp == browser_sdp and offer.type == "offer"
    assert SdpAnswer(sdp="v=0").to_dict() == {"type": "answer", "sdp": "v=0"}


@pytest.mark.parametrize(("body", "message"), [
    (b"not json", "body must be JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (_body(""), "sdp must be a non-empty string"),
    (_body(42), "sdp must be a non-empty string"),
    (_body("v=0\r\n", kind="answer"), "type must be 'offer', got 'answer'"),
    (_body("v=0\r\n", kind=None), "type must be the string 'offer'"),
    (_body("hello"), "must start with 'v=0'"),
    (b"x" * (MAX_OFFER_BYTES + 1), "larger than 32768 bytes"),
])
def test_malformed_offers_are_refused_with_a_clear_line(body: bytes, message: str) -> None:
    with pytest.raises(OfferError, match=message):
        SdpOffer.parse(body)


def test_offers_the_call_cannot_use_are_refused(browser_sdp: str) -> None:
    lines = browser_sdp.splitlines()

    def without(*prefixes: str) -> str:
        return "\r\n".join(ln for ln in lines if not ln.startswith(prefixes)) + "\r\n"

    audio_start = next(i for i, ln in enumerate(lines) if ln.startswith("m=audio"))
    audio_end = next(i for i, ln in enumerate(lines) if ln.startswith("m=application"))
    no_audio = "\r\n".join(lines[:audio_start] + lines[audio_end:]) + "\r\n"
    no_audio = no_audio.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 1")
    cases = {
        no_audio: "no audio section",
        without("a=fingerprint"): "no DTLS fingerprint",
        without("a=ice-ufrag", "a=ice-pwd"): "no ICE credentials",
        browser_sdp.replace("opus/48000/2", "telephone-event/8000"): "no Opus codec",
        re.sub(r"m=audio \d+ ", "m=audio nine ", browser_sdp): "could not be parsed",
        browser_sdp + "x" * MAX_OFFER_BYTES: "SDP offer is larger than",
    }
    assert len(cases) == 6
    for sdp, message in cases.items():
        with pytest.raises(OfferError, match=message):
            SdpOffer(sdp=sdp)
