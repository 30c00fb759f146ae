"""A loopback fake of LiveKit's server API (Twirp), for livekit-api clients.

It speaks what ``livekit.api`` sends: ``POST /twirp/livekit.<Service>/<Method>`` with a binary
protobuf body (JSON is accepted too), ``Authorization: Bearer <JWT>`` signed with the API
secret. It answers like livekit-server: protobuf on success, a Twirp JSON error otherwise
(``unauthenticated`` 401, ``permission_denied`` 403, ``not_found`` 404, ``invalid_argument``
400, ``bad_route`` 404). It keeps state (rooms, participants, inbound trunks, dispatch rules)
so a list after a create returns what was created, and records every request it received.

Also here: ``sign_webhook`` / ``webhook_json``, which build a webhook exactly as LiveKit
sends it (protojson body, JWT with the body's sha256 in ``Authorization``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from livekit import api
from livekit.protocol import models, room, sip

__all__ = ["FakeLiveKitServer", "Recorded", "sign_webhook", "webhook_json"]


@dataclass(frozen=True)
class Recorded:
    service: str
    method: str
    request: Any  # the decoded protobuf request message
    identity: str
    status: int


class TwirpFailure(Exception):
    def __init__(self, status: int, code: str, msg: str, meta: dict[str, str] | None = None):
        super().__init__(msg)
        self.status, self.code, self.msg, self.meta = status, code, msg, meta or {}


Handler = Callable[[Any, api.access_token.Claims], Awaitable[Message]]


@dataclass
class _State:
    rooms: dict[str, models.Room] = field(default_factory=dict)
    participants: dict[str, dict[str, models.ParticipantInfo]] = field(default_factory=dict)
    inbound_trunks: dict[str, sip.SIPInboundTrunkInfo] = field(default_factory=dict)
    dispatch_rules: dict[str, sip.SIPDispatchRuleInfo] = field(default_factory=dict)


class FakeLiveKitServer:
    """``async with FakeLiveKitServer() as lk_server: lk_server.url ...``"""

    def __init__(
        self,
        api_key: str = "devkey",
        api_secret: str = "secret-for-tests-only-0123456789",
        *,
        outbound_trunk_ids: tuple[str, ...] = ("ST_outbound_test",),
    ) -> None:
        self.api_key, self.api_secret = api_key, api_secret
        self.outbound_trunk_ids = set(outbound_trunk_ids)
        self.state = _State()
        self.requests: list[Recorded] = []
        self._ids = itertools.count(1)
        self._failures: dict[str, TwirpFailure] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""
        self._routes: dict[tuple[str, str], tuple[type[Message], Handler]] = {
            ("RoomService", "CreateRoom"): (room.CreateRoomRequest, self._create_room),
            ("RoomService", "ListRooms"): (room.ListRoomsRequest, self._list_rooms),
            ("RoomService", "DeleteRoom"): (room.DeleteRoomRequest, self._delete_room),
            ("RoomService", "RemoveParticipant"): (
                room.RoomParticipantIdentity, self._remove_participant),
            ("SIP", "CreateSIPInboundTrunk"): (
                sip.CreateSIPInboundTrunkRequest, self._create_trunk),
            ("SIP", "ListSIPInboundTrunk"): (sip.ListSIPInboundTrunkRequest, self._list_trunks),
            ("SIP", "UpdateSIPInboundTrunk"): (
                sip.UpdateSIPInboundTrunkRequest, self._update_trunk),
            ("SIP", "CreateSIPDispatchRule"): (
                sip.CreateSIPDispatchRuleRequest, self._create_rule),
            ("SIP", "ListSIPDispatchRule"): (sip.ListSIPDispatchRuleRequest, self._list_rules),
            ("SIP", "UpdateSIPDispatchRule"): (
                sip.UpdateSIPDispatchRuleRequest, self._update_rule),
            ("SIP", "CreateSIPParticipant"): (
                sip.CreateSIPParticipantRequest, self._create_sip_participant),
            ("SIP", "TransferSIPParticipant"): (
                sip.TransferSIPParticipantRequest, self._transfer_sip_participant),
        }
        # what the next TransferSIPParticipant reports (FAILED: the target did not answer)
        self.transfer_status = sip.SIPTransferStatus.STS_TRANSFER_SUCCESSFUL

    # --- lifecycle ------------------------------------------------------------------------
    async def __aenter__(self) -> FakeLiveKitServer:
        app = web.Application()
        app.router.add_post("/twirp/livekit.{service}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @contextmanager
    def threaded(self) -> Iterator[FakeLiveKitServer]:
        """Serve from a background thread's loop, for sync tests (CLI, TestClient)."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="fake-livekit", daemon=True)
        thread.start()
        asyncio.run_coroutine_threadsafe(self.__aenter__(), loop).result(timeout=10)
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.__aexit__(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()

    # --- test controls ----------------------------------------------------------------------
    def fail_next(self, method: str, status: int, code: str, msg: str,
                  meta: dict[str, str] | None = None) -> None:
        """The next call of ``method`` fails with this Twirp error."""
        self._failures[method] = TwirpFailure(status, code, msg, meta)

    def add_participant(self, room_name: str, identity: str, *, sip_caller: bool = False) -> None:
        kinds = models.ParticipantInfo.Kind
        kind = kinds.SIP if sip_caller else kinds.STANDARD
        self._ensure_room(room_name)
        self.state.participants[room_name][identity] = models.ParticipantInfo(
            sid=self._id("PA_"), identity=identity, kind=kind)

    def calls(self, method: str) -> list[Any]:
        """Decoded requests of ``method`` that the server accepted (status 200)."""
        return [r.request for r in self.requests if r.method == method and r.status == 200]

    @property
    def writes(self) -> list[str]:
        """Accepted requests that changed state, by method name."""
        return [r.method for r in self.requests
                if r.status == 200 and not r.method.startswith(("List", "Get"))]

    # --- request plumbing ----------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    def _claims(self, request: web.Request) -> api.access_token.Claims:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            raise TwirpFailure(401, "unauthenticated", "authorization header missing")
        try:
            return api.TokenVerifier(self.api_key, self.api_secret).verify(auth[7:])
        except Exception as e:  # any jwt failure is "unauthenticated", as in livekit-server
            raise TwirpFailure(401, "unauthenticated", f"invalid token: {e}") from None

    async def _handle(self, request: web.Request) -> web.Response:
        service, method = request.match_info["service"], request.match_info["method"]
        binary = request.content_type == "application/protobuf"
        decoded: Any = None
        identity = ""
        try:
            route = self._routes.get((service, method))
            if route is None:
                raise TwirpFailure(404, "bad_route", f"no handler for {service}/{method}")
            claims = self._claims(request)
            identity = claims.identity
            message_type, handler = route
            decoded = self._decode(message_type, await request.read(), binary)
            if method in self._failures:
                raise self._failures.pop(method)
            reply = await handler(decoded, claims)
        except TwirpFailure as f:
            self.requests.append(Recorded(service, method, decoded, identity, f.status))
            body = {"code": f.code, "msg": f.msg, **({"meta": f.meta} if f.meta else {})}
            return web.json_response(body, status=f.status)
        self.requests.append(Recorded(service, method, decoded, identity, 200))
        if binary:
            return web.Response(
                body=reply.SerializeToString(), content_type="application/protobuf"
            )
        return web.Response(text=json_format.MessageToJson(reply), content_type="application/json")

    @staticmethod
    def _decode(message_type: type[Message], raw: bytes, binary: bool) -> Message:
        message = message_type()
        try:
            if binary:
                message.ParseFromString(raw)
            else:
                json_format.Parse(raw.decode() or "{}", message)
        except (DecodeError, json_format.ParseError, UnicodeDecodeError) as e:
            raise TwirpFailure(400, "malformed", f"cannot decode request: {e}") from None
        return message

    @staticmethod
    def _need(ok: bool | None, what: str) -> None:
        if not ok:
            raise TwirpFailure(403, "permission_denied", f"token lacks {what}")

    # --- RoomService -----------------------------------------------------------------------
    def _ensure_room(self, name: str, empty_timeout: int = 300) -> models.Room:
        if name not in self.state.rooms:
            self.state.rooms[name] = models.Room(
                sid=self._id("RM_"), name=name, empty_timeout=empty_timeout,
                creation_time=int(time.time()))
            self.state.participants[name] = {}
        return self.state.rooms[name]

    async def _create_room(self, req: room.CreateRoomRequest, claims: Any) -> Message:
        self._need(claims.video and claims.video.room_create, "roomCreate")
        if not req.name:
            raise TwirpFailure(400, "invalid_argument", "room name is required")
        return self._ensure_room(req.name, req.empty_timeout or 300)

    async def _list_rooms(self, req: room.ListRoomsRequest, claims: Any) -> Message:
        self._need(claims.video and claims.video.room_list, "roomList")
        rooms = [r for n, r in self.state.rooms.items() if not req.names or n in req.names]
        return room.ListRoomsResponse(rooms=rooms)

    async def _delete_room(self, req: room.DeleteRoomRequest, claims: Any) -> Message:
        self._need(claims.video and claims.video.room_create, "roomCreate")
        self.state.rooms.pop(req.room, None)
        self.state.participants.pop(req.room, None)
        return room.DeleteRoomResponse()

    async def _remove_participant(self, req: room.RoomParticipantIdentity, claims: Any) -> Message:
        video = claims.video
        allowed = video and video.room_admin and video.room == req.room
        self._need(allowed, f"roomAdmin on {req.room}")
        people = self.state.participants.get(req.room, {})
        if req.identity not in people:
            raise TwirpFailure(404, "not_found", "participant not found")
        del people[req.identity]
        return room.RemoveParticipantResponse()

    # --- SIP ----------------------------------------------------------------------------------
    async def _create_trunk(self, req: sip.CreateSIPInboundTrunkRequest, claims: Any) -> Message:
        self._need(claims.sip and claims.sip.admin, "sip admin")
        if req.trunk.sip_trunk_id:
            raise TwirpFailure(400, "invalid_argument", "trunk ID must be empty")
        trunk = sip.SIPInboundTrunkInfo()
        trunk.CopyFrom(req.trunk)
        trunk.sip_trunk_id = self._id("ST_")
        self.state.inbound_trunks[trunk.sip_trunk_id] = trunk
        return trunk

    async def _list_trunks(self, req: sip.ListSIPInboundTrunkRequest, claims: Any) -> Message:
        self._need(claims.sip and claims.sip.admin, "sip admin")
        return sip.ListSIPInboundTrunkResponse(items=list(self.state.inbound_trunks.values()))

    async def _update_trunk(self, req: sip.UpdateSIPInboundTrunkRequest, claims: Any) -> Message:
        self._need(claims.sip and claims.sip.admin, "sip admin")
        trunk = self.state.inbound_trunks.get(req.sip_trunk_id)
        if trunk is None:
            raise TwirpFailure(404, "not_found", "requested sip trunk does not exist")
        if req.WhichOneof("action") != "replace":
            raise TwirpFailure(400, "invalid_argument", "only replace is supported by the fake")
        trunk.CopyFrom(req.replace)
        trunk.sip_trunk_id = req.sip_trunk_id
        return trunk

    async def _create_rule(self, req: sip.CreateSIPDispatchRuleRequest, claims: Any) -> Message:
        self._need(claims.sip and claims.sip.admin, "sip admin")
        rule = sip.SIPDispatchRuleInfo()
        if req.HasField("dispatch_rule"):
            rule.CopyFrom(req.dispatch_rule)
        else:  # the older flat form
            rule.rule.CopyFrom(req.rule)
            rule.trunk_ids.extend(req.trunk_ids)
            rule.name, rule.metadata = req.name, req.metadata
        if rule.rule.WhichOneof("rule") is None:
            raise TwirpFailure(400, "invalid_argument", "dispatch rule is required")
        unknown = [t for t in rule.trunk_ids if t not in self.state.inbound_trunks]
        if unknown:
            raise TwirpFailure(400, "invalid_argument", f"unknown trunk ids {unknown}")
        rule.sip_dispatch_rule_id = self._id("SDR_")
        self.state.dispatch_rules[rule.sip_dispatch_rule_id] = rule
        return rule

    async def _list_rules(self, req: sip.ListSIPDispatchRuleRequest, claims: Any) -> Message:
        self._need(claims.sip and claims.sip.admin, "sip admin")
        return sip.ListSIPDispatchRuleResponse(items=list(self.state.dispatch_rules.values()))

    async def _update_rule(self, req: sip.UpdateSIPDispatchRuleRequest, claims: Any) -> Message:
        self._need(claims.sip and claims.sip.admin, "sip admin")
        rule = self.state.dispatch_rules.get(req.sip_dispatch_rule_id)
        if rule is None:
            raise TwirpFailure(404, "not_found", "requested sip dispatch rule does not exist")
        if req.WhichOneof("action") != "replace":
            raise TwirpFailure(400, "invalid_argument", "only replace is supported by the fake")
        rule.CopyFrom(req.replace)
        rule.sip_dispatch_rule_id = req.sip_dispatch_rule_id
        return rule

    async def _create_sip_participant(
        self, req: sip.CreateSIPParticipantRequest, claims: Any
    ) -> Message:
        self._need(claims.sip and claims.sip.call, "sip call")
        if req.sip_trunk_id not in self.outbound_trunk_ids:
            raise TwirpFailure(404, "not_found", "requested sip trunk does not exist")
        if not req.sip_call_to or not req.room_name:
            raise TwirpFailure(400, "invalid_argument", "sip_call_to and room_name are required")
        identity = req.participant_identity or f"sip_{req.sip_call_to}"
        self.add_participant(req.room_name, identity, sip_caller=True)
        participant = self.state.participants[req.room_name][identity]
        return sip.SIPParticipantInfo(
            participant_id=participant.sid, participant_identity=identity,
            room_name=req.room_name, sip_call_id=self._id("SCL_"))


    async def _transfer_sip_participant(
        self, req: sip.TransferSIPParticipantRequest, claims: Any
    ) -> Message:
        video = claims.video
        self._need(video and video.room_admin and video.room == req.room_name,
                   f"roomAdmin on {req.room_name}")
        self._need(claims.sip and claims.sip.call, "sip call")
        people = self.state.participants.get(req.room_name, {})
        person = people.get(req.participant_identity)
        if person is None:
            raise TwirpFailure(404, "not_found", "participant not found")
        if person.kind != models.ParticipantInfo.Kind.SIP:
            raise TwirpFailure(400, "invalid_argument", "participant is not a SIP participant")
        if not req.transfer_to.startswith(("tel:", "sip:")):
            raise TwirpFailure(400, "invalid_argument", "transfer_to must be a tel: or sip: URI")
        if self.transfer_status == sip.SIPTransferStatus.STS_TRANSFER_SUCCESSFUL:
            del people[req.participant_identity]  # the caller's leg now goes to the target
        return sip.TransferSIPParticipantResponse(
            transfer_id=self._id("TR_"), status=self.transfer_status)


# --- webhooks as LiveKit sends them --------------------------------------------------------
def webhook_json(event: str, room_name: str = "", identity: str = "", *, sip_caller: bool = True,
                 phone: str = "", event_id: str | None = None,
                 created_at: float | None = None) -> str:
    """A webhook body in LiveKit's protojson form: a fresh event id and ``createdAt`` now
    unless given (the receiver de-duplicates by event id)."""
    kind = models.ParticipantInfo.Kind.SIP if sip_caller else models.ParticipantInfo.Kind.STANDARD
    message = api.WebhookEvent(
        event=event, id=event_id if event_id is not None else f"EV_{secrets.token_hex(6)}",
        created_at=int(time.time() if created_at is None else created_at))
    if room_name:
        message.room.CopyFrom(models.Room(sid="RM_hook", name=room_name))
    if identity:
        attributes = {"sip.phoneNumber": phone} if phone else {}
        message.participant.CopyFrom(models.ParticipantInfo(
            sid="PA_hook", identity=identity, kind=kind, attributes=attributes))
    return json_format.MessageToJson(message)


def sign_webhook(body: str, api_key: str = "devkey",
                 api_secret: str = "secret-for-tests-only-0123456789", *,
                 ttl_s: float = 300.0) -> str:
    """The ``Authorization`` header value LiveKit sends with ``body`` (valid for 5 minutes, as
    LiveKit signs them; a negative ``ttl_s`` makes an expired one)."""
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    return (api.AccessToken(api_key, api_secret).with_sha256(digest)
            .with_ttl(timedelta(seconds=ttl_s)).to_jwt())
