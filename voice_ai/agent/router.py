"""Deterministic routing: what the caller asked, mapped to a tool call or a reply.

The local answering engine's brain. It reads the conversation so far (``Exchange`` items),
recognises the caller's intent with keyword rules that tolerate speech-to-text spelling and
half sentences, carries what an earlier turn started ("I'd like to book" ... "Tuesday at 10"),
and returns either a ``ToolCall`` (run by AgentSession through the ``@function_tool``s) or a
``Reply`` built from the business profile. It never invents: a fact comes from the profile or
a tool's answer, anything else gets "I can help with ..." or an offer of a person.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from voice_ai.agent.profile import BusinessProfile, Service
from voice_ai.agent.when import (
    find_day,
    find_days,
    find_part_of_day,
    find_time,
    find_times,
)

__all__ = ["OFFER_PERSON", "Exchange", "Reply", "ToolCall", "route", "speak_tool_result"]

Intent = Literal["transfer", "end", "dtmf", "cancel", "move", "book", "slots", "hours",
                 "address", "price", "faq", "greet", "yes", "no", "thanks"]
OFFER_PERSON = "Would you like me to put you through to a colleague?"


@dataclass(frozen=True, slots=True)
class Exchange:
    """One conversation item as the router sees it."""

    role: Literal["user", "assistant", "tool"]
    text: str = ""
    tool: str = ""
    args: dict[str, str] = field(default_factory=dict)
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    args: dict[str, str]


@dataclass(frozen=True, slots=True)
class Reply:
    text: str


def _has(text: str, *patterns: str) -> bool:
    return any(re.search(p, text) for p in patterns)


_TRANSFER = (r"\b(real|actual|live) (person|human)\b", r"\bhuman\b", r"\bsomeone\b",
             r"\bsomebody\b", r"\b(a|the|to a|with a) person\b", r"\breceptionist\b",
             r"\boperator\b", r"\bcolleague\b", r"\bmanager\b", r"\bput me through\b",
             r"\btransfer me\b", r"\bstaff\b", r"\bspeak (to|with) (the )?(dentist|doctor)\b",
             r"\bnot a (robot|machine|bot)\b")
_END = (r"\bgood ?bye\b", r"\bbye\b", r"\bthat'?s all\b", r"\bthat is all\b",
        r"\bnothing else\b", r"\bhang up\b")
_CANCEL = (r"\bcancel", r"\bcall off\b", r"\bcan'?t make (it|my)\b", r"\bcannot make\b")
_MOVE = (r"\bmove\b", r"\breschedul", r"\bchange (my|the|our) (appointment|booking)\b",
         r"\bpostpone\b", r"\bbring (it|my appointment) forward\b", r"\bdifferent (day|time)\b",
         r"\banother (day|time)\b", r"\binstead\b", r"\bmake (it|that)\b")
_BOOK = (r"\bbook", r"\bappointment\b", r"\bschedule\b", r"\bcome in\b", r"\bsee (the|a) "
         r"(dentist|hygienist)\b", r"\bmake an? (appointment|booking)\b", r"\bslot")
_SLOTS = (r"\bfree\b", r"\bavailab", r"\banything (on|for|left)\b", r"\bany (times|space|room)\b",
          r"\bwhen can\b")
_HOURS = (r"\bopen", r"\bhours\b", r"\bclos(e|ed|ing)\b", r"\bwhat time do you\b",
          r"\bwhen do you\b", r"\bwhen are you\b")
_ADDRESS = (r"\baddress\b", r"\bwhere (are|is) (you|the)\b", r"\blocat", r"\bfind you\b",
            r"\bdirections?\b", r"\bget (there|to you)\b", r"\bwhere exactly\b")
_PRICE = (r"\bprice", r"\bcost", r"\bhow much\b", r"\bcharge", r"\bfees?\b", r"\bexpensive\b")
_GREET = (r"^(hello|hi|hey|good (morning|afternoon|evening))\b",)
_YES = (r"^(yes|yeah|yep|sure|ok(ay)?|please|go ahead|that would be (great|good|fine)|"
        r"yes please)\b",)
_NO = (r"^(no|nope|not really|no thanks?)\b",)
_THANKS = (r"\bthank(s| you)\b",)
_DTMF_MENU = re.compile(r"(?:for ([a-z ,]+?),? press (\d|one|two|three|four|five|six|seven|"
                        r"eight|nine|zero|star|hash)|press (\d|one|two|three|four|five|six|"
                        r"seven|eight|nine|zero) (?:for|to) ([a-z ]+))")
_DIGITS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
           "six": "6", "seven": "7", "eight": "8", "nine": "9", "star": "*", "hash": "#"}
_NAME = re.compile(r"\b(?:my name is|my name's|name is|this is|it's|it is)\s+"
                   r"([a-z][a-z'-]+(?:\s+[a-z][a-z'-]+)?)", re.IGNORECASE)
_NOT_NAMES = {"about", "for", "a", "the", "to", "just", "really", "regarding", "joe"}


def _clean(text: str) -> str:
    t = text.lower().replace("’", "'")
    t = re.sub(r"\b(um+|uh+|erm*|er|ah+|hmm+)\b[,.]?", " ", t)
    return re.sub(r"\s+", " ", t).strip()


def _intent(t: str) -> Intent | None:
    if _DTMF_MENU.search(t):
        return "dtmf"
    if _has(t, *_TRANSFER):
        return "transfer"
    if _has(t, *_CANCEL):
        return "cancel"
    if _has(t, *_MOVE) and (_has(t, *_BOOK) or find_day(t) or find_time(t)
                            or _has(t, r"\bmove (it|my)\b")):
        return "move"
    if _has(t, *_END):
        return "end"
    if _has(t, *_PRICE) and not _has(t, r"\bbook"):  # "how much is an appointment"
        return "price"
    if _has(t, *_BOOK):
        return "book"
    if _has(t, *_HOURS):
        return "hours"
    if _has(t, *_SLOTS) and (find_day(t) or find_part_of_day(t)):
        return "slots"
    if _has(t, *_ADDRESS):
        return "address"
    if _has(t, *_YES):
        return "yes"
    if _has(t, *_NO):
        return "no"
    if _has(t, *_THANKS):
        return "thanks"
    if _has(t, *_GREET):
        return "greet"
    return None


def _implied(t: str, frame: _Frame) -> Intent | None:
    """A line with a day and a time and no other intent, outside any request under way, is a
    booking ("...check up on Tuesday at 10" as whisper may write "book a check-up")."""
    if frame.intent not in _CARRIED and find_day(t) and find_time(t):
        return "book"
    return None


def _service(profile: BusinessProfile, t: str) -> Service | None:
    best: tuple[int, Service] | None = None
    for s in profile.services:
        for word in (s.name, *s.aliases):
            m = re.search(r"\b" + re.escape(word.lower()) + r"\b", t)
            if m and (best is None or len(word) > best[0]):
                best = (len(word), s)
    return best[1] if best else None


def _name(text: str) -> str:
    m = _NAME.search(text)
    if not m:
        return ""
    words = [w for w in m.group(1).split() if w.lower() not in _NOT_NAMES]
    return " ".join(w.capitalize() for w in words)


def _faq(profile: BusinessProfile, t: str) -> str | None:
    for entry in profile.faq:
        if any(re.search(r"\b" + re.escape(k.lower()) + r"\b", t) for k in entry.keywords):
            return entry.answer
    return None


@dataclass(frozen=True, slots=True)
class _Frame:
    """A request being put together over turns."""

    intent: Intent | None = None
    days: tuple[str, ...] = ()
    times: tuple[str, ...] = ()
    part: str = ""
    service: str = ""
    name: str = ""
    booked: tuple[str, str] | None = None
    """The appointment booked (or moved) earlier in this call: what "instead" changes."""

    def merge(self, intent: Intent | None, t: str, profile: BusinessProfile) -> _Frame:
        svc = _service(profile, t)
        return _Frame(
            intent=intent or self.intent,
            days=self.days + tuple(find_days(t)),
            times=self.times + tuple(find_times(t)),
            part=find_part_of_day(t) or self.part,
            service=svc.name if svc else self.service,
            name=_name(t) or self.name,
            booked=self.booked,
        )


_CARRIED: tuple[Intent, ...] = ("book", "slots", "cancel", "move")
_DONE_TOOLS = {"book_appointment", "cancel_appointment", "move_appointment",
               "transfer_to_person", "end_call"}


def _adds_detail(profile: BusinessProfile, text: str) -> bool:
    """Does a line with no intent of its own say a day, time, service or name?"""
    t = _clean(text)
    return bool(find_day(t) or find_time(t) or find_part_of_day(t) or _name(text)
                or _service(profile, t))


def _frame(profile: BusinessProfile, history: list[Exchange]) -> _Frame:
    """What the earlier turns started and did not finish."""
    frame = _Frame()
    for item in history:
        if item.role == "tool":
            if item.tool in ("book_appointment", "move_appointment") and not item.is_error:
                day = item.args.get("new_day") or item.args.get("day", "")
                at = item.args.get("new_time") or item.args.get("time", "")
                frame = _Frame(name=frame.name, booked=(day, at))
            elif item.tool in _DONE_TOOLS and not item.is_error:
                frame = _Frame(name=frame.name, booked=frame.booked)
            elif item.tool == "find_free_slots" and not item.is_error:
                frame = replace(frame, intent="book", days=(item.args.get("day", ""),),
                                times=())
            elif item.tool in ("book_appointment", "move_appointment") and item.is_error:
                # the time was refused: keep the day, ask for another time
                frame = replace(frame, times=frame.times[:-1])
        elif item.role == "user":
            t = _clean(item.text)
            intent = _intent(t) or _implied(t, frame)
            if intent in _CARRIED:
                if intent != frame.intent and not (intent == "slots" and frame.intent == "book"):
                    frame = _Frame(name=frame.name, booked=frame.booked)
                frame = frame.merge(intent if intent != "slots" else "book", t, profile)
            elif intent in (None, "yes") and frame.intent in _CARRIED:
                if intent == "yes" or _adds_detail(profile, item.text):
                    frame = frame.merge(None, t, profile)
            else:
                frame = _Frame(name=frame.name or _name(t), booked=frame.booked)
    return frame


def route(profile: BusinessProfile, conversation: list[Exchange],
          tools: frozenset[str]) -> ToolCall | Reply:
    """Decide the agent's next step after the caller's latest words."""
    last_user = next((i for i in range(len(conversation) - 1, -1, -1)
                      if conversation[i].role == "user"), None)
    if last_user is None:
        return Reply(profile.greeting)
    text = conversation[last_user].text
    t = _clean(text)
    frame = _frame(profile, conversation[: last_user + 1])
    intent = _intent(t) or _implied(t, _frame(profile, conversation[:last_user]))
    last_agent = next((c.text for c in reversed(conversation[:last_user])
                       if c.role == "assistant"), "")

    def call(name: str, **args: str) -> ToolCall | Reply:
        if name in tools:
            return ToolCall(name, args)
        return Reply(f"Sorry, I cannot do that on this line. {OFFER_PERSON}")

    if intent == "dtmf":
        return call("send_dtmf", digits=_menu_choice(t))
    if intent == "transfer" or (intent == "yes" and "put you through" in last_agent):
        return call("transfer_to_person")
    if intent == "end":
        return call("end_call")
    if frame.intent in _CARRIED and (intent in _CARRIED or intent == "yes"
                                     or (intent is None and _adds_detail(profile, text))):
        return _appointment_step(frame, call)
    last_tool = next((c.tool for c in reversed(conversation[:last_user]) if c.role == "tool"),
                     "")
    follow_up = intent is None and len(re.findall(r"[a-z]+", t)) <= 6
    if intent == "hours" or (follow_up and find_day(t) and last_tool == "get_opening_hours"):
        day = find_day(t) or ("today" if _has(t, r"\bnow\b", r"\bright now\b") else "")
        return call("get_opening_hours", day=day)
    if follow_up and _service(profile, t) is not None:  # "And whitening?" after a price
        intent = "price"
    if intent == "price":
        return Reply(_price(profile, t))
    if intent == "address":
        return Reply(f"We are at {profile.address}. {profile.directions}".strip())
    answer = _faq(profile, t)
    if answer is not None:
        return Reply(answer)
    if intent == "no":
        return Reply("No problem. Is there anything else I can help you with?")
    if intent == "thanks":
        return Reply("You are welcome. Is there anything else I can help you with?")
    if intent in ("greet", "yes"):
        return Reply("Hello! How can I help you? I can tell you our opening hours, prices "
                     "and address, or book an appointment.")
    if len(re.findall(r"[a-z]+", t)) < 3:
        return Reply("Sorry, I did not catch that. Could you say it again?")
    return Reply(f"Sorry, I can only help with {profile.name}: opening hours, prices, our "
                 f"address and appointments. {OFFER_PERSON}")


def _appointment_step(frame: _Frame, call: Callable[..., ToolCall | Reply]) -> ToolCall | Reply:
    day = frame.days[-1] if frame.days else ""
    time_ = frame.times[-1] if frame.times else ""
    if frame.intent == "book":
        if day and time_:
            return call("book_appointment", day=day, time=time_, service=frame.service,
                        caller_name=frame.name)
        if day:
            return call("find_free_slots", day=day, part_of_day=frame.part)
        if time_:
            return Reply(f"Which day would you like to come in at {_said(time_)}?")
        what = f"a {frame.service}" if frame.service else "an appointment"
        return Reply(f"Of course, I can book {what}. Which day and time would suit you?")
    if frame.intent == "cancel":
        if day and time_:
            return call("cancel_appointment", day=day, time=time_)
        return Reply("Which day and time is the appointment you would like to cancel?")
    # move: the first day/time named is the current appointment, the last the new one
    if len(frame.days) >= 2 and len(frame.times) >= 2:
        return call("move_appointment", day=frame.days[0], time=frame.times[0],
                    new_day=frame.days[-1], new_time=frame.times[-1])
    if len(frame.days) >= 2 and len(frame.times) == 1:
        return call("move_appointment", day=frame.days[0], time=frame.times[0],
                    new_day=frame.days[-1], new_time=frame.times[0])
    if frame.booked is not None and frame.days and frame.times:  # "make that 2 pm instead"
        return call("move_appointment", day=frame.booked[0], time=frame.booked[1],
                    new_day=frame.days[-1], new_time=frame.times[-1])
    if frame.booked is not None and frame.times:
        return call("move_appointment", day=frame.booked[0], time=frame.booked[1],
                    new_day=frame.booked[0], new_time=frame.times[-1])
    if frame.days and frame.times:
        return Reply("And which day and time would you like to move it to?")
    return Reply("Which appointment would you like to move, and to when?")


def _said(hhmm: str) -> str:
    from datetime import time

    from voice_ai.agent.when import say_time

    h, m = (int(x) for x in hhmm.split(":"))
    return say_time(time(h, m))


def _price(profile: BusinessProfile, t: str) -> str:
    def one(s: Service) -> str:
        note = f"{s.price_note} " if s.price_note else ""
        return f"{s.name} {note}{s.price:g} {profile.currency}"

    svc = _service(profile, t)
    if svc is not None:
        note = f"{svc.price_note} " if svc.price_note else ""
        return f"A {svc.name} costs {note}{svc.price:g} {profile.currency}."
    items = [one(s) for s in profile.services]
    return "Our prices: " + ", ".join(items[:-1]) + f", and {items[-1]}."


_MENU_WANTED = ("reception", "receptionist", "appointments", "appointment", "operator",
                "person", "other", "enquiries")


def _menu_choice(t: str) -> str:
    """The key for reception / a person in a phone menu (a label as speech-to-text spells
    it: "resetching" is close enough to "reception"), else the first option offered."""
    options: list[tuple[str, str]] = []
    for m in _DTMF_MENU.finditer(t):
        if m.group(1) is not None:
            options.append((m.group(1), m.group(2)))
        else:
            options.append((m.group(4), m.group(3)))
    best: tuple[float, str] | None = None
    for label, key in options:
        for word in label.split():
            score = max(difflib.SequenceMatcher(None, word, w).ratio() for w in _MENU_WANTED)
            if score >= 0.6 and (best is None or score > best[0]):
                best = (score, key)
    if best is not None:
        return _DIGITS.get(best[1], best[1])
    return _DIGITS.get(options[0][1], options[0][1]) if options else "0"


def speak_tool_result(item: Exchange) -> str:
    """What to say after a tool ran: its answer, or an apology and the offer of a person."""
    if item.is_error:
        reason = item.text.strip() or "I could not do that."
        if item.tool == "transfer_to_person":
            return f"I am sorry, {reason[0].lower()}{reason[1:]} Please call back later."
        return f"I am sorry. {reason} {OFFER_PERSON}"
    return item.text


