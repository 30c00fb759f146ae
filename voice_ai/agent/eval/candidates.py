"""The embedded-default candidates compared in docs/agent.md, each a livekit ``llm.LLM``.

- ``router``: ``ReceptionistLLM`` (deterministic routing, replies from the profile).
- ``<model>-prompt``: a small GGUF chat model with the profile in its system prompt, free text
  (it cannot call tools: llama.cpp's chat completion here has no tool calling for these models).
- ``<model>-grammar``: the same model choosing the next step as JSON constrained by a llama.cpp
  grammar (``{"action": <tool or "reply">, day, time, ...}``); the tool then runs through
  AgentSession and its answer is spoken as it is, like the router's.

Only the eval imports this module (``llama_cpp`` loads the weights given).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, llm, utils
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from voice_ai.agent.engine import conversation
from voice_ai.agent.profile import BusinessProfile
from voice_ai.agent.receptionist import instructions_for
from voice_ai.agent.router import speak_tool_result
from voice_ai.agent.tools import TOOL_NAMES

__all__ = ["LlamaCandidate"]

_ARGS = ("day", "time", "part_of_day", "service", "caller_name", "new_day", "new_time",
         "digits")
_SCHEMA = {
    "type": "object",
    "properties": {
        "action": {"enum": [*TOOL_NAMES, "reply"]},
        **{a: {"type": "string"} for a in _ARGS},
        "reply": {"type": "string"},
    },
    "required": ["action"],
}
_TOOL_ARGS = {
    "get_opening_hours": ("day",), "find_free_slots": ("day", "part_of_day"),
    "book_appointment": ("day", "time", "service", "caller_name"),
    "cancel_appointment": ("day", "time"),
    "move_appointment": ("day", "time", "new_day", "new_time"),
    "transfer_to_person": (), "end_call": (), "send_dtmf": ("digits",),
}
_GRAMMAR_PROMPT = (
    " Decide the next step and answer ONLY with JSON: {\"action\": one of "
    + ", ".join(TOOL_NAMES) + " or reply, plus its arguments (day as a weekday name, time as "
    "HH:MM) or, for reply, \"reply\": the sentence to say}."
)


class LlamaCandidate(llm.LLM[Any]):
    """A GGUF model through llama-cpp-python, in ``mode`` "prompt" or "grammar"."""

    def __init__(self, profile: BusinessProfile, model_path: Path, *, mode: str,
                 chat_format: str | None = None, threads: int = 2, max_tokens: int | None = None
                 ) -> None:
        super().__init__()
        from llama_cpp import Llama
        from llama_cpp.llama_grammar import LlamaGrammar

        self.profile = profile
        self.mode = mode
        # a spoken reply is short; JSON needs room for the reply field as well, or it is cut
        self.max_tokens = max_tokens or (160 if mode == "grammar" else 64)
        self._llm = Llama(model_path=str(model_path), n_ctx=4096, n_threads=threads,
                          chat_format=chat_format, verbose=False)
        self._grammar = LlamaGrammar.from_json_schema(json.dumps(_SCHEMA), verbose=False)
        self._lock = asyncio.Lock()

    @property
    def model(self) -> str:
        return f"llama-{self.mode}"

    def chat(self, *, chat_ctx: llm.ChatContext, tools: list[llm.Tool] | None = None,
             conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
             parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
             tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
             extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN) -> llm.LLMStream:
        return _CandidateStream(self, chat_ctx=chat_ctx, tools=tools or [],
                                conn_options=conn_options)

    def complete(self, messages: list[dict[str, str]], grammar: bool) -> str:
        out = self._llm.create_chat_completion(
            messages=messages,  # type: ignore[arg-type]  # llama_cpp's TypedDicts
            max_tokens=self.max_tokens, temperature=0.0,
            grammar=self._grammar if grammar else None)
        return str(out["choices"][0]["message"]["content"] or "")  # type: ignore[index]


class _CandidateStream(llm.LLMStream):
    _llm: LlamaCandidate

    async def _run(self) -> None:
        cand = self._llm
        items = conversation(self._chat_ctx)
        results = []
        for item in reversed(items):
            if item.role != "tool":
                break
            results.append(item)
        delta: llm.ChoiceDelta
        if results:  # a tool ran: its answer is spoken as it is, as the router does
            text = " ".join(speak_tool_result(r) for r in reversed(results))
            delta = llm.ChoiceDelta(role="assistant", content=text)
        else:
            system = instructions_for(cand.profile)
            if cand.mode == "grammar":
                system += _GRAMMAR_PROMPT
            messages = [{"role": "system", "content": system}] + [
                {"role": i.role, "content": i.text} for i in items if i.role != "tool"]
            async with cand._lock:
                raw = await asyncio.to_thread(cand.complete, messages, cand.mode == "grammar")
            delta = _step(raw) if cand.mode == "grammar" else llm.ChoiceDelta(
                role="assistant", content=raw.strip() or "Sorry?")
        self._event_ch.send_nowait(llm.ChatChunk(id=utils.shortuuid("cand_"), delta=delta))


def _step(raw: str) -> llm.ChoiceDelta:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return llm.ChoiceDelta(role="assistant", content="Sorry, could you say that again?")
    action = str(data.get("action", "reply"))
    if action not in _TOOL_ARGS:
        return llm.ChoiceDelta(role="assistant",
                               content=str(data.get("reply") or "Sorry, could you repeat?"))
    args = {k: str(data.get(k, "")) for k in _TOOL_ARGS[action]}
    call = llm.FunctionToolCall(name=action, arguments=json.dumps(args),
                                call_id=utils.shortuuid("call_"))
    return llm.ChoiceDelta(role="assistant", tool_calls=[call])
