"""A call's checkpoint: what a new call actor needs to carry a call on after the old one died.

After each completed turn the call actor saves one (``CallSession`` builds it,
``voice_ai.pipeline.restore`` reads the chat context); the dispatcher, pinned to the head
node, holds the latest one per call, so it outlives the call actor and its node. This module
is plain data and JSON, with no livekit import: the dispatcher reads it without the pipeline.

    CallCheckpoint      the call's state after turn ``turn_count``
    SavedCheckpoint     the encoded form that crosses processes (bounded, versioned)
    ResumeOrder         "carry this call on": the checkpoint, when the old actor was lost, why
    CallHandedOver      a call actor stopped its part of a call at a turn boundary (drain)

Bounded: ``seal`` keeps the encoding under a byte limit by shortening the text of old items
first, then dropping the oldest ones (never the recent turns). Versioned: ``decode`` refuses
a version it does not know with ``CheckpointError`` saying which versions it reads.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from voice_ai.errors import VoiceAIError
from voice_ai.records import CallRecord, TurnTimings

__all__ = ["CHECKPOINT_VERSION", "CallCheckpoint", "CallHandedOver", "ChatEntry",
           "CheckpointError", "ResumeCause", "ResumeOrder", "SavedCheckpoint", "bridging_line",
           "decode", "seal"]

CHECKPOINT_VERSION = 1
"""Bump when the encoding changes; ``decode`` refuses versions it does not read."""
READABLE_VERSIONS = frozenset({1})
KEEP_WHOLE = 6  # the most recent chat items are never shortened or dropped
SHORT_TEXT = 200  # older items' text is cut to this many characters when over the limit

EntryKind = Literal["message", "function_call", "function_call_output"]


class CheckpointError(VoiceAIError):
    """A checkpoint that cannot be used: unknown version, malformed, another call's, or too
    large even after trimming. The message says which."""


class ResumeCause(StrEnum):
    ACTOR_LOST = "actor_lost"  # the call actor's process or node died
    DRAIN = "drain"  # its node is being drained (voice-ai drain): handed over at a turn end


@dataclass(frozen=True, slots=True)
class ChatEntry:
    """One chat context item the agent needs again: a message (user / assistant), or a tool
    call and its output (what the receptionist's booking in progress is made of)."""

    kind: EntryKind
    role: str = ""  # messages: "user" | "assistant"
    text: str = ""  # message text, or the tool's output
    name: str = ""  # tool name
    arguments: str = ""  # tool call arguments (JSON text)
    call_id: str = ""  # pairs a tool call with its output
    is_error: bool = False
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class CallCheckpoint:
    """The call after ``turn_count`` completed turns."""

    call_id: str
    saved_at: float  # unix s
    turn_count: int
    started_at: float  # admission time: the resumed call's record keeps it
    chat: tuple[ChatEntry, ...] = ()
    turns: tuple[TurnTimings, ...] = ()
    stt_provider: str = ""  # which providers served the last turn
    llm_provider: str = ""
    tts_provider: str = ""
    transport: str = ""  # what a new actor rejoins: "line:<call id>", "livekit:<room>"
    setup_s: float | None = None
    warm: bool = True
    resumes: int = 0  # times this call was carried on by a new actor so far
    version: int = CHECKPOINT_VERSION

    @property
    def last_user_text(self) -> str:
        for entry in reversed(self.chat):
            if entry.kind == "message" and entry.role == "user" and entry.text.strip():
                return entry.text.strip()
        return ""


@dataclass(frozen=True, slots=True)
class SavedCheckpoint:
    """A checkpoint as it crosses processes: ``data`` is ``decode``-able JSON."""

    call_id: str
    turn_count: int
    saved_at: float
    version: int
    data: bytes = field(repr=False)

    def newer_than(self, other: SavedCheckpoint | None) -> bool:
        return other is None or (self.turn_count, self.saved_at) > (other.turn_count,
                                                                    other.saved_at)


@dataclass(frozen=True, slots=True)
class ResumeOrder:
    """Carry a call on in a new call actor (``CallSpec.resume``)."""

    cause: ResumeCause
    lost_at: float  # unix s: when the supervisor learned the old actor was gone (or handed over)
    checkpoint: SavedCheckpoint | None = None  # None: lost before its first turn ended
    attempt: int = 1
    from_node: str = ""

    @property
    def bridging(self) -> bool:
        """A lost call apologises; a planned handover (drain) carries on without a word."""
        return self.cause is ResumeCause.ACTOR_LOST


class CallHandedOver(Exception):  # noqa: N818  # an outcome, raised through the call runner
    """The call actor stopped its part of the call at a turn boundary; another carries it on.
    ``record`` is the part run here (not stored: the last actor stores the whole call)."""

    def __init__(self, record: CallRecord) -> None:
        super().__init__(f"call {record.call_id} handed over")
        self.record = record


# --- encoding ------------------------------------------------------------------------------
def seal(checkpoint: CallCheckpoint, max_bytes: int) -> SavedCheckpoint:
    """Encode ``checkpoint`` within ``max_bytes``: old items' text is shortened, then old
    turns' transcripts go (the chat holds the words), then the oldest items are dropped;
    ``CheckpointError`` if it still does not fit."""
    cp = checkpoint
    data = _encode(cp)
    steps = (_shorten_old_text, _drop_old_turn_text, _drop_old_items)
    for step in steps:
        while len(data) > max_bytes:
            trimmed = step(cp, len(data) - max_bytes)
            if trimmed == cp:  # this step has nothing more to give
                break
            cp, data = trimmed, _encode(trimmed)
    if len(data) > max_bytes:
        raise CheckpointError(f"checkpoint of call {cp.call_id} is {len(data)} bytes after "
                              f"trimming (CHECKPOINT_MAX_BYTES={max_bytes})")
    return SavedCheckpoint(cp.call_id, cp.turn_count, cp.saved_at, cp.version, data)


def decode(saved: SavedCheckpoint | bytes, *, call_id: str | None = None) -> CallCheckpoint:
    """The checkpoint in ``saved``; ``CheckpointError`` for an unknown version, a malformed
    one, or one of another call than ``call_id``."""
    data = saved.data if isinstance(saved, SavedCheckpoint) else saved
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint is not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise CheckpointError("checkpoint is not a JSON object")
    version = raw.get("version")
    if version not in READABLE_VERSIONS:
        raise CheckpointError(f"checkpoint version {version!r} is not supported: this program "
                              f"reads version(s) {sorted(READABLE_VERSIONS)}")
    try:
        cp = CallCheckpoint(
            call_id=str(raw["call_id"]), saved_at=float(raw["saved_at"]),
            turn_count=int(raw["turn_count"]), started_at=float(raw["started_at"]),
            chat=tuple(ChatEntry(**e) for e in raw["chat"]),
            turns=tuple(TurnTimings(**t) for t in raw["turns"]),
            stt_provider=str(raw["stt_provider"]), llm_provider=str(raw["llm_provider"]),
            tts_provider=str(raw["tts_provider"]), transport=str(raw["transport"]),
            setup_s=None if raw["setup_s"] is None else float(raw["setup_s"]),
            warm=bool(raw["warm"]), resumes=int(raw["resumes"]), version=int(version))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"malformed checkpoint (version {version}): "
                              f"{type(e).__name__}: {e}") from None
    if cp.turn_count < 0 or cp.turn_count < len(cp.turns):
        raise CheckpointError(f"malformed checkpoint: turn_count {cp.turn_count} with "
                              f"{len(cp.turns)} turns")
    if call_id is not None and cp.call_id != call_id:
        raise CheckpointError(f"checkpoint of call {cp.call_id} offered to call {call_id}")
    return cp


def _encode(cp: CallCheckpoint) -> bytes:
    body: dict[str, Any] = asdict(cp)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _shorten_old_text(cp: CallCheckpoint, _over: int) -> CallCheckpoint:
    cut = max(0, len(cp.chat) - KEEP_WHOLE)
    chat = tuple(replace(e, text=_cut(e.text, SHORT_TEXT), arguments=_cut(e.arguments,
                                                                           SHORT_TEXT))
                 if i < cut else e for i, e in enumerate(cp.chat))
    return replace(cp, chat=chat)


def _drop_old_items(cp: CallCheckpoint, over: int) -> CallCheckpoint:
    """Drop the oldest items until about ``over`` bytes are gone, keeping the last
    ``KEEP_WHOLE``; what is kept starts at a user message (a tool output never loses its call,
    which an LLM API would refuse)."""
    chat, freed = list(cp.chat), 0
    while len(chat) > KEEP_WHOLE and freed < over:
        freed += len(json.dumps(asdict(chat.pop(0)), separators=(",", ":")))
    while chat and not (chat[0].kind == "message" and chat[0].role == "user"):
        chat.pop(0)
    return replace(cp, chat=tuple(chat))


def _drop_old_turn_text(cp: CallCheckpoint, _over: int) -> CallCheckpoint:
    keep = max(0, len(cp.turns) - 2)
    turns = tuple(replace(t, user_text="", agent_text="") if i < keep else t
                  for i, t in enumerate(cp.turns))
    return replace(cp, turns=turns)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- what the caller hears -------------------------------------------------------------------
_REFLECT = {"i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself",
            "i'm": "you're", "i'd": "you'd", "i'll": "you'll", "i've": "you've", "am": "are",
            "your": "our", "yours": "ours", "we": "you", "our": "your", "us": "you"}
_FILLERS = {"hi", "hello", "hey", "yes", "yeah", "no", "ok", "okay", "so", "um", "uh", "well",
            "oh", "right", "sure", "please", "thanks", "actually"}
_ASKING = {"can", "could", "would", "will", "do", "did"}
BRIDGE_WORDS = 12


def bridging_line(checkpoint: CallCheckpoint | None) -> str:
    """One short line for a caller who just heard silence: an apology and where the call was
    ("Sorry, I lost you for a second — you were asking what our opening hours are on
    Friday"), from the caller's last words with the pronouns turned around."""
    said = checkpoint.last_user_text if checkpoint is not None else ""
    words = re.findall(r"[\w'’-]+", said.replace("’", "'"))
    while words and words[0].lower() in _FILLERS:
        words.pop(0)
    if not words:
        return "Sorry, I lost you for a second. I'm back now — how can I help?"
    about = " ".join(_reflect(words[:BRIDGE_WORDS]))
    end = "…" if len(words) > BRIDGE_WORDS else "."
    verb = "asking" if said.rstrip().endswith("?") else "saying"
    return f"Sorry, I lost you for a second — you were {verb} {about}{end}"


def _reflect(words: list[str]) -> list[str]:
    """The caller's words as the agent says them back: "my" -> "your", "can you" -> "can I"."""
    out = []
    for i, word in enumerate(words):
        low = word.lower()
        if low == "you" and i and words[i - 1].lower() in _ASKING:
            out.append("I")
        else:
            out.append(_REFLECT.get(low, low if i == 0 else word))
    return out
