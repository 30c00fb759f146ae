"""The public face's ASGI limits: bodies capped before reading, a deadline per request."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from deployments.ingress import DEFAULT_BODY_LIMIT, IngressLimits

pytestmark = pytest.mark.unit


def _client(timeout_s: float = 5.0) -> tuple[TestClient, list[int], list[tuple[str, int]]]:
    app = FastAPI()
    read: list[int] = []
    refused: list[tuple[str, int]] = []

    @app.post("/calls")
    async def calls(request: Request) -> dict[str, int]:
        body = await request.body()
        read.append(len(body))
        return {"read": len(body)}

    @app.post("/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(2.0)
        return {"status": "late"}

    app.add_middleware(IngressLimits, timeout_s=timeout_s,
                       on_refused=lambda route, status: refused.append((route, status)))
    return TestClient(app), read, refused


def test_a_declared_length_over_the_cap_is_refused_before_any_read() -> None:
    client, read, refused = _client()
    response = client.post("/calls", content=b"x" * (16 * 1024 + 1))
    assert response.status_code == 413
    assert response.json() == {"detail": "body over 16384 bytes"}
    assert read == [] and refused == [("/calls", 413)]


def test_a_chunked_body_is_cut_off_at_the_cap() -> None:
    client, read, _ = _client()

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"y" * 1024

    response = client.post("/calls", content=chunks())
    assert response.status_code == 413
    assert read == []


def test_bodies_within_the_cap_pass_untouched() -> None:
    client, read, refused = _client()
    assert client.post("/calls", content=b"z" * 16 * 1024).json() == {"read": 16384}
    assert read == [16384] and refused == []


def test_unknown_routes_get_the_default_cap_and_a_bad_length_is_400() -> None:
    client, _, _ = _client()
    assert client.post("/elsewhere", content=b"x" * (DEFAULT_BODY_LIMIT + 1)).status_code == 413
    bad = client.post("/calls", content=b"{}", headers={"Content-Length": "12abc"})
    assert bad.status_code == 400


def test_a_request_past_its_deadline_is_504() -> None:
    client, _, refused = _client(timeout_s=0.05)
    response = client.post("/slow")
    assert response.status_code == 504
    assert refused == [("/slow", 504)]
