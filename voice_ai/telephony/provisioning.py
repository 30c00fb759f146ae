"""SIP provisioning: one inbound trunk and one per-caller dispatch rule, from a YAML file.

``provision`` is idempotent: trunk and rule are found by name, created when missing, replaced
when they differ from the file, and left alone otherwise, so a second run reports
``unchanged`` twice and sends no write. Everything is validated before the first request: a
bad file changes nothing.

LiveKit need not echo a trunk's password back, so the trunk's metadata carries a fingerprint
of it to tell whether it changed: an HMAC-SHA256 keyed with a key that never leaves our side
(``SIP_FINGERPRINT_KEY``, or ``DATA_DIR/sip_fingerprint.key`` made on first use, mode 0600).
Whoever can read trunk metadata cannot test password guesses against it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from livekit import api
from livekit.protocol.sip import (
    CreateSIPDispatchRuleRequest,
    CreateSIPInboundTrunkRequest,
    ListSIPDispatchRuleRequest,
    ListSIPInboundTrunkRequest,
    SIPDispatchRule,
    SIPDispatchRuleIndividual,
    SIPDispatchRuleInfo,
    SIPInboundTrunkInfo,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from voice_ai.config import Settings
from voice_ai.telephony.phone import parse_e164

__all__ = [
    "Action",
    "DispatchRuleSpec",
    "ProvisionError",
    "ProvisionResult",
    "ProvisionSpec",
    "SipOverview",
    "TrunkSpec",
    "load_fingerprint_key",
    "load_spec",
    "provision",
    "show",
]

Action = Literal["created", "updated", "unchanged"]
MANAGED_BY = "voice-ai"


class ProvisionError(Exception):
    """The provisioning file is unusable, or LiveKit's state is ambiguous. Nothing was sent."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrunkSpec(_Spec):
    name: str = Field(min_length=1)
    numbers: list[str] = Field(min_length=1)
    allowed_addresses: list[str] = Field(default_factory=list)
    auth_username: str = ""
    auth_password_env: str | None = None
    """Name of the environment variable that holds the SIP password (never the password)."""
    krisp_enabled: bool = False

    @field_validator("numbers")
    @classmethod
    def _e164(cls, numbers: list[str]) -> list[str]:
        return [parse_e164(n) for n in numbers]

    @field_validator("allowed_addresses")
    @classmethod
    def _ip_or_cidr(cls, addresses: list[str]) -> list[str]:
        for address in addresses:
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise ValueError(f"{address!r} is not an IP address or CIDR range") from None
        return addresses

    @model_validator(mode="after")
    def _not_open(self) -> TrunkSpec:
        if not self.allowed_addresses and not self.auth_username:
            raise ValueError(
                "set allowed_addresses or auth_username: an open trunk accepts calls from anyone"
            )
        if bool(self.auth_username) != bool(self.auth_password_env):
            raise ValueError("auth_username and auth_password_env go together")
        return self


class DispatchRuleSpec(_Spec):
    name: str = Field(min_length=1)
    room_prefix: str = Field("call-", pattern=r"^[a-z0-9][a-z0-9-]*$")
    pin: str = Field("", pattern=r"^\d{0,12}$")


class ProvisionSpec(_Spec):
    trunk: TrunkSpec
    dispatch_rule: DispatchRuleSpec


@dataclass(frozen=True, slots=True)
class ProvisionResult:
    trunk_id: str
    trunk_action: Action
    rule_id: str
    rule_action: Action

    @property
    def changed(self) -> bool:
        return (self.trunk_action, self.rule_action) != ("unchanged", "unchanged")


@dataclass(frozen=True, slots=True)
class SipOverview:
    trunks: list[SIPInboundTrunkInfo]
    rules: list[SIPDispatchRuleInfo]


def _describe(error: ValidationError) -> str:
    parts = []
    for err in error.errors():
        where = ".".join(str(p) for p in err["loc"]) or "file"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def _yaml_problem(error: yaml.YAMLError) -> str:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"{error.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(error).replace("\n", " ")


def load_spec(path: Path, env: Mapping[str, str]) -> tuple[ProvisionSpec, str]:
    """Read and validate a provisioning file; return the spec and the SIP password from
    ``env`` (empty when the trunk uses no auth). Raises ``ProvisionError`` with one line."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ProvisionError(f"{path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ProvisionError(f"{path}: not valid YAML: {_yaml_problem(e)}") from None
    try:
        spec = ProvisionSpec.model_validate(raw if raw is not None else {})
    except ValidationError as e:
        raise ProvisionError(f"{path}: {_describe(e)}") from None
    password = ""
    if spec.trunk.auth_password_env:
        password = env.get(spec.trunk.auth_password_env, "")
        if not password:
            raise ProvisionError(
                f"{path}: trunk.auth_password_env names {spec.trunk.auth_password_env}, "
                "which is not set in the environment"
            )
    return spec, password


FINGERPRINT_KEY_FILE = "sip_fingerprint.key"


def load_fingerprint_key(settings: Settings) -> bytes:
    """``SIP_FINGERPRINT_KEY``, else the key in ``DATA_DIR/sip_fingerprint.key`` (created with
    32 random bytes and mode 0600 the first time)."""
    if settings.sip_fingerprint_key is not None:
        key = settings.sip_fingerprint_key.get_secret_value().encode()
        if len(key) < 16:
            raise ProvisionError("SIP_FINGERPRINT_KEY is too short: use at least 16 characters")
        return key
    path = settings.data_dir / FINGERPRINT_KEY_FILE
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as e:
        raise ProvisionError(f"{path}: not a fingerprint key ({type(e).__name__}); "
                             "delete it to make a new one") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex())
    return key


def _metadata(spec: TrunkSpec, password: str, key: bytes) -> str:
    fingerprint = hmac.new(key, f"{MANAGED_BY}:{spec.name}:{password}".encode(),
                           hashlib.sha256).hexdigest() if password else ""
    return json.dumps({"managed_by": MANAGED_BY, "auth": fingerprint}, sort_keys=True)


def _desired_trunk(spec: TrunkSpec, password: str, key: bytes) -> SIPInboundTrunkInfo:
    return SIPInboundTrunkInfo(
        name=spec.name,
        metadata=_metadata(spec, password, key),
        numbers=spec.numbers,
        allowed_addresses=spec.allowed_addresses,
        auth_username=spec.auth_username,
        auth_password=password,
        krisp_enabled=spec.krisp_enabled,
    )


def _trunk_matches(have: SIPInboundTrunkInfo, want: SIPInboundTrunkInfo) -> bool:
    return (
        list(have.numbers) == list(want.numbers)
        and list(have.allowed_addresses) == list(want.allowed_addresses)
        and have.auth_username == want.auth_username
        and have.metadata == want.metadata
        and have.krisp_enabled == want.krisp_enabled
    )


def _desired_rule(spec: DispatchRuleSpec, trunk_id: str) -> SIPDispatchRuleInfo:
    individual = SIPDispatchRuleIndividual(room_prefix=spec.room_prefix, pin=spec.pin)
    return SIPDispatchRuleInfo(
        name=spec.name,
        metadata=json.dumps({"managed_by": MANAGED_BY}),
        rule=SIPDispatchRule(dispatch_rule_individual=individual),
        trunk_ids=[trunk_id],
    )


def _rule_matches(have: SIPDispatchRuleInfo, want: SIPDispatchRuleInfo) -> bool:
    return (
        have.rule == want.rule
        and list(have.trunk_ids) == list(want.trunk_ids)
        and have.metadata == want.metadata
    )


_Named = TypeVar("_Named", SIPInboundTrunkInfo, SIPDispatchRuleInfo)


def _by_name(items: list[_Named], what: str, name: str) -> _Named | None:
    found = [item for item in items if item.name == name]
    if len(found) > 1:
        raise ProvisionError(f"{len(found)} {what}s are named {name!r}; rename or delete extras")
    return found[0] if found else None


async def _ensure_trunk(
    lk: api.LiveKitAPI, spec: TrunkSpec, password: str, key: bytes
) -> tuple[str, Action]:
    listed = await lk.sip.list_inbound_trunk(ListSIPInboundTrunkRequest())
    have = _by_name(list(listed.items), "inbound trunk", spec.name)
    want = _desired_trunk(spec, password, key)
    if have is None:
        created = await lk.sip.create_inbound_trunk(CreateSIPInboundTrunkRequest(trunk=want))
        return created.sip_trunk_id, "created"
    if _trunk_matches(have, want):
        return have.sip_trunk_id, "unchanged"
    want.sip_trunk_id = have.sip_trunk_id
    await lk.sip.update_inbound_trunk(have.sip_trunk_id, want)
    return have.sip_trunk_id, "updated"


async def _ensure_rule(
    lk: api.LiveKitAPI, spec: DispatchRuleSpec, trunk_id: str
) -> tuple[str, Action]:
    listed = await lk.sip.list_dispatch_rule(ListSIPDispatchRuleRequest())
    have = _by_name(list(listed.items), "dispatch rule", spec.name)
    want = _desired_rule(spec, trunk_id)
    if have is None:
        request = CreateSIPDispatchRuleRequest(dispatch_rule=want)
        created = await lk.sip.create_dispatch_rule(request)
        return created.sip_dispatch_rule_id, "created"
    if _rule_matches(have, want):
        return have.sip_dispatch_rule_id, "unchanged"
    want.sip_dispatch_rule_id = have.sip_dispatch_rule_id
    await lk.sip.update_dispatch_rule(have.sip_dispatch_rule_id, want)
    return have.sip_dispatch_rule_id, "updated"


async def provision(lk: api.LiveKitAPI, spec: ProvisionSpec, password: str = "", *,
                    fingerprint_key: bytes) -> ProvisionResult:
    """Create or update the inbound trunk, then the dispatch rule that points at it.
    ``fingerprint_key``: ``load_fingerprint_key(settings)``."""
    trunk_id, trunk_action = await _ensure_trunk(lk, spec.trunk, password, fingerprint_key)
    rule_id, rule_action = await _ensure_rule(lk, spec.dispatch_rule, trunk_id)
    return ProvisionResult(trunk_id, trunk_action, rule_id, rule_action)


async def show(lk: api.LiveKitAPI) -> SipOverview:
    """All inbound trunks and dispatch rules, as LiveKit reports them."""
    trunks = await lk.sip.list_inbound_trunk(ListSIPInboundTrunkRequest())
    rules = await lk.sip.list_dispatch_rule(ListSIPDispatchRuleRequest())
    return SipOverview(list(trunks.items), list(rules.items))
