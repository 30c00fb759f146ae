"""Provisioning against the loopback fake of LiveKit's Twirp API."""

from __future__ import annotations

from pathlib import Path

import pytest
from livekit import api

from tests.fakes.livekit_server import FakeLiveKitServer
from tests.telephony_helpers import API_KEY, API_SECRET
from voice_ai.telephony.provisioning import ProvisionError, load_spec, provision, show

pytestmark = pytest.mark.integration

SPEC_YAML = """\
trunk:
  name: novofon-inbound
  numbers: ["+15550100067"]
  allowed_addresses: ["203.0.113.0/24", "198.51.100.7"]
  auth_username: agent-trunk
  auth_password_env: SIP_TRUNK_PASSWORD
dispatch_rule:
  name: novofon-calls
  room_prefix: call-
"""
OPEN_TRUNK_YAML = "\n".join(
    line for line in SPEC_YAML.splitlines() if not line.startswith(("  auth_", "  allowed_"))
)
ENV = {"SIP_TRUNK_PASSWORD": "trunk-password-for-tests"}
KEY = bytes(range(32))  # a test-only fingerprint key


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sip.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _client(server: FakeLiveKitServer) -> api.LiveKitAPI:
    return api.LiveKitAPI(server.url, API_KEY, API_SECRET, failover=False)


async def test_provision_creates_then_changes_nothing_the_second_time(tmp_path: Path) -> None:
    spec, password = load_spec(_write(tmp_path, SPEC_YAML), ENV)
    async with FakeLiveKitServer() as server:
        lk = _client(server)
        try:
            first = await provision(lk, spec, password, fingerprint_key=KEY)
            writes_after_first = list(server.writes)
            second = await provision(lk, spec, password, fingerprint_key=KEY)
        finally:
            await lk.aclose()

    assert (first.trunk_action, first.rule_action) == ("created", "created")
    assert (second.trunk_action, second.rule_action) == ("unchanged", "unchanged")
    assert not second.changed
    assert (second.trunk_id, second.rule_id) == (first.trunk_id, first.rule_id)
    assert writes_after_first == ["CreateSIPInboundTrunk", "CreateSIPDispatchRule"]
    assert server.writes == writes_after_first  # the second run sent no write at all

    (trunk_req,) = server.calls("CreateSIPInboundTrunk")
    assert list(trunk_req.trunk.numbers) == ["+15550100067"]
    assert list(trunk_req.trunk.allowed_addresses) == ["203.0.113.0/24", "198.51.100.7"]
    assert trunk_req.trunk.auth_username == "agent-trunk"
    assert trunk_req.trunk.auth_password == "trunk-password-for-tests"
    assert "trunk-password" not in trunk_req.trunk.metadata
    (rule_req,) = server.calls("CreateSIPDispatchRule")
    rule = rule_req.dispatch_rule
    assert rule.rule.dispatch_rule_individual.room_prefix == "call-"
    assert list(rule.trunk_ids) == [first.trunk_id]


async def test_a_changed_file_updates_only_what_changed(tmp_path: Path) -> None:
    spec, password = load_spec(_write(tmp_path, SPEC_YAML), ENV)
    changed_text = SPEC_YAML.replace('["+15550100067"]', '["+15550100067", "+15550100068"]')
    changed, _ = load_spec(_write(tmp_path, changed_text), ENV)
    async with FakeLiveKitServer() as server:
        lk = _client(server)
        try:
            await provision(lk, spec, password, fingerprint_key=KEY)
            result = await provision(lk, changed, password, fingerprint_key=KEY)
            new_password = await provision(lk, changed, "rotated-password-for-tests",
                                           fingerprint_key=KEY)
            overview = await show(lk)
        finally:
            await lk.aclose()

    assert (result.trunk_action, result.rule_action) == ("updated", "unchanged")
    assert new_password.trunk_action == "updated"
    (trunk,) = overview.trunks
    assert list(trunk.numbers) == ["+15550100067", "+15550100068"]
    assert trunk.auth_password == "rotated-password-for-tests"
    (rule,) = overview.rules
    assert rule.name == "novofon-calls"
    updates = server.calls("UpdateSIPInboundTrunk")
    assert [u.sip_trunk_id for u in updates] == [result.trunk_id] * 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SPEC_YAML.replace('  numbers: ["+15550100067"]\n', ""), r"trunk\.numbers: Field required"),
        (SPEC_YAML.replace("dispatch_rule:\n  name: novofon-calls\n", "dispatch_rule:\n"),
         r"dispatch_rule"),
        (SPEC_YAML.replace("+15550100067", "555-0100"), r"trunk\.numbers: not an E\.164"),
        (SPEC_YAML.replace("198.51.100.7", "sip.example.invalid"), r"not an IP address or CIDR"),
        (OPEN_TRUNK_YAML, r"open trunk accepts calls from anyone"),
        (SPEC_YAML + "extra_field: 1\n", r"extra_field: Extra inputs are not permitted"),
        ("trunk: [unclosed", r"not valid YAML"),
        ("", r"trunk: Field required"),
    ],
)
def test_a_bad_file_is_refused_with_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ProvisionError, match=message) as info:
        load_spec(_write(tmp_path, text), ENV)
    assert "\n" not in str(info.value)


def test_a_password_variable_that_is_not_set_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProvisionError, match="SIP_TRUNK_PASSWORD, which is not set"):
        load_spec(_write(tmp_path, SPEC_YAML), {})


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProvisionError, match="cannot read"):
        load_spec(tmp_path / "nope.yaml", ENV)


async def test_two_trunks_with_our_name_stop_provisioning(tmp_path: Path) -> None:
    spec, password = load_spec(_write(tmp_path, SPEC_YAML), ENV)
    async with FakeLiveKitServer() as server:
        lk = _client(server)
        try:
            await provision(lk, spec, password, fingerprint_key=KEY)
            existing = next(iter(server.state.inbound_trunks.values()))
            twin = api.SIPInboundTrunkInfo()
            twin.CopyFrom(existing)
            twin.sip_trunk_id = "ST_twin"
            server.state.inbound_trunks["ST_twin"] = twin
            writes = list(server.writes)
            with pytest.raises(ProvisionError, match="2 inbound trunks are named"):
                await provision(lk, spec, password, fingerprint_key=KEY)
        finally:
            await lk.aclose()
    assert server.writes == writes


async def test_the_password_fingerprint_is_an_hmac_with_a_local_key(tmp_path: Path) -> None:
    import hashlib
    import json

    spec, password = load_spec(_write(tmp_path, SPEC_YAML), ENV)
    async with FakeLiveKitServer() as server:
        lk = _client(server)
        try:
            await provision(lk, spec, password, fingerprint_key=KEY)
            first = json.loads((await show(lk)).trunks[0].metadata)["auth"]
            other_key = await provision(lk, spec, password, fingerprint_key=b"k" * 32)
            second = json.loads((await show(lk)).trunks[0].metadata)["auth"]
        finally:
            await lk.aclose()
    # without the key nobody can test a password guess against the metadata
    for guess in (password, f"voice-ai:{spec.trunk.name}:{password}"):
        assert hashlib.sha256(guess.encode()).hexdigest()[:16] not in first
        assert hashlib.sha256(guess.encode()).hexdigest() != first
    assert len(first) == 64 and first != second
    assert other_key.trunk_action == "updated"  # another key: re-sent once, then stable


def test_the_local_key_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    import stat

    from tests.telephony_helpers import telephony_settings
    from voice_ai.telephony.provisioning import load_fingerprint_key

    settings = telephony_settings(data_dir=tmp_path / "data")
    key = load_fingerprint_key(settings)
    path = tmp_path / "data" / "sip_fingerprint.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 32 and load_fingerprint_key(settings) == key
    configured = telephony_settings(sip_fingerprint_key="a-key-from-the-environment")
    assert load_fingerprint_key(configured) == b"a-key-from-the-environment"
    with pytest.raises(ProvisionError, match="too short"):
        load_fingerprint_key(telephony_settings(sip_fingerprint_key="short"))
