from __future__ import annotations

import time

import pytest
from livekit import api

from tests.telephony_helpers import API_KEY, API_SECRET, telephony_settings
from voice_ai.errors import ConfigError
from voice_ai.telephony.tokens import mint_agent_token

pytestmark = pytest.mark.unit


def test_agent_token_joins_only_its_room_as_the_agent() -> None:
    settings = telephony_settings(agent_identity="voice-ai-agent", livekit_token_ttl_s=120)
    token = mint_agent_token(settings, "call-out-abc123")
    claims = api.TokenVerifier(API_KEY, API_SECRET).verify(token)
    assert claims.identity == "voice-ai-agent"
    assert claims.kind == "agent"
    assert claims.video is not None
    assert claims.video.room == "call-out-abc123"
    assert claims.video.room_join is True
    assert not claims.video.room_admin and not claims.video.room_create
    assert not claims.video.room_list


def test_agent_token_is_short_lived() -> None:
    import jwt

    token = mint_agent_token(telephony_settings(livekit_token_ttl_s=120), "call-1")
    payload = jwt.decode(token, API_SECRET, algorithms=["HS256"], issuer=API_KEY)
    assert 110 <= payload["exp"] - time.time() <= 125


def test_a_token_signed_for_another_secret_is_refused() -> None:
    token = mint_agent_token(telephony_settings(), "call-1")
    with pytest.raises(Exception, match="Signature verification failed"):
        api.TokenVerifier(API_KEY, "another-secret-for-tests-0123456789").verify(token)


def test_missing_credentials_name_the_variables() -> None:
    settings = telephony_settings(livekit_api_secret=None, livekit_url=None)
    with pytest.raises(ConfigError, match="LIVEKIT_URL, LIVEKIT_API_SECRET must be set"):
        mint_agent_token(settings, "call-1")
