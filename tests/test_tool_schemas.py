"""Tool schemas are built once per process: the receptionist's tools are made per call, over
the same code, and livekit's OpenAI plugin would otherwise build each schema per request."""

from __future__ import annotations

from pathlib import Path

import pytest
from livekit.agents import llm

from voice_ai.agent import (
    InMemoryAppointmentBook,
    RecordingCallActions,
    build_receptionist,
    load_profile,
)
from voice_ai.providers.cloud import tool_schemas
from voice_ai.providers.cloud.tool_schemas import schema_stand_ins

PROFILE = load_profile(Path(__file__).resolve().parent.parent / "agent.yaml")


def _calls_tools(call_id: str) -> list[llm.Tool]:
    agent = build_receptionist(PROFILE, InMemoryAppointmentBook(), RecordingCallActions(),
                               call_id=call_id)
    return list(agent.tools)


@pytest.mark.parametrize("strict", [True, False])
def test_two_calls_requests_build_each_schema_once(strict: bool,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tool_schemas, "_stand_ins", {})
    built: list[str] = []
    name = "build_strict_openai_schema" if strict else "build_legacy_openai_schema"
    real = getattr(llm.utils, name)

    def counting(tool: llm.FunctionTool) -> dict[str, object]:
        built.append(tool.info.name)
        return real(tool)  # type: ignore[no-any-return]

    monkeypatch.setattr(llm.utils, name, counting)
    first, second = _calls_tools("call-1"), _calls_tools("call-2")
    sent = [schema_stand_ins(tools, strict=strict) for tools in (first, first, second)]
    assert sorted(built) == sorted(t.info.name for t in first)  # once per tool, not per request
    monkeypatch.setattr(llm.utils, name, real)
    for tools, stand_ins in zip((first, first, second), sent, strict=True):
        assert llm.ToolContext(stand_ins).parse_function_tools("openai", strict=strict) == \
            llm.ToolContext(tools).parse_function_tools("openai", strict=strict)


def test_a_tool_declared_with_another_description_gets_its_own_schema() -> None:
    def make(description: str) -> llm.FunctionTool:
        async def lookup(day: str) -> str:
            """Look a day up."""
            return day

        return llm.function_tool(lookup, description=description)

    monday, tuesday = (schema_stand_ins([make(d)], strict=True) or [] for d in
                       ("Mondays only.", "Tuesdays only."))
    assert [t.info.raw_schema["description"] for t in (*monday, *tuesday)] == \
        ["Mondays only.", "Tuesdays only."]


async def test_a_stand_in_is_never_run_in_place_of_the_tool() -> None:
    (stand_in, *_) = schema_stand_ins(_calls_tools("call-1"), strict=True) or []
    assert isinstance(stand_in, llm.RawFunctionTool)
    with pytest.raises(RuntimeError, match="stand-in was run"):
        await stand_in(raw_arguments={})


def test_no_tools_stay_no_tools() -> None:
    assert schema_stand_ins(None, strict=True) is None
    assert schema_stand_ins([], strict=True) == []
