"""The internal face's routes (detailed health, API docs) without Ray: a fake health source."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from deployments.internal_face import build_internal_api
from tests.telephony_helpers import telephony_settings

pytestmark = pytest.mark.unit


class Components:
    def __init__(self, **statuses: str) -> None:
        self.statuses = statuses

    async def components(self) -> dict[str, dict[str, Any]]:
        return {name: {"status": status} for name, status in self.statuses.items()}


def test_detailed_health_is_503_when_a_component_is_unhealthy() -> None:
    client = TestClient(build_internal_api(telephony_settings(),
                                           Components(ray="healthy", call_pool="unhealthy")))
    response = client.get("/health/detailed")
    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy", "components": {
        "ray": {"status": "healthy"}, "call_pool": {"status": "unhealthy"}}}


def test_degraded_is_200_and_gzip_is_served_when_enabled_and_asked_for() -> None:
    settings = telephony_settings(enable_compression=True)
    client = TestClient(build_internal_api(settings, Components(stt_pool="degraded")))
    zipped = client.get("/health/detailed", headers={"Accept-Encoding": "gzip"})
    assert zipped.status_code == 200 and zipped.json()["status"] == "degraded"  # inflated
    assert zipped.headers["Content-Encoding"] == "gzip"
    plain = client.get("/health/detailed", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert plain.json() == zipped.json()


def test_the_api_docs_describe_the_public_face() -> None:
    client = TestClient(build_internal_api(telephony_settings(), Components(ray="healthy")))
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == {"/health", "/livekit/webhook", "/calls"}
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
