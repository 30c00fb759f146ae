"""Tool schemas built once per process, not once per LLM request.

livekit's OpenAI plugin turns every function tool into its JSON schema on every request
(``ToolContext.parse_function_tools``: the signature read, the docstring parsed, a pydantic
model built): 4.9 ms for the receptionist's 8 tools on an idle core, before the request is
sent, for every reply and every preemptive generation. The schema depends only on the tool's
code, so it is built once and the plugin is handed a stand-in (a raw function tool carrying
that schema), which the plugin copies into the request as it is. The stand-in is never run:
the session runs the tool the agent has, found by the name the model answers with.
"""

from __future__ import annotations

from typing import Any

from livekit.agents import llm
from livekit.plugins import openai

__all__ = ["SchemaCachingLLM", "schema_stand_ins"]

_Tool = llm.FunctionTool[..., Any]
_StandIn = llm.RawFunctionTool[..., Any]
_stand_ins: dict[tuple[object, str, str | None, bool], _StandIn] = {}


async def _not_run(raw_arguments: dict[str, object]) -> None:
    raise RuntimeError("a tool schema stand-in was run: the session should run the agent's tool")


def _stand_in(tool: _Tool, *, strict: bool) -> _StandIn:
    # A tool's schema comes from its function's code (signature, docstring) and the name and
    # description it was declared with: the receptionist's tools are closures made per call
    # over the same code. Annotations computed at run time are not in the key: a tool whose
    # parameter types change from call to call must not use this class.
    code = getattr(getattr(tool, "__wrapped__", None), "__code__", None)
    if code is None:  # not a plain function: nothing to key a cache on
        return _build(tool, strict=strict)
    key = (code, tool.info.name, tool.info.description, strict)
    cached = _stand_ins.get(key)
    if cached is None:
        cached = _stand_ins[key] = _build(tool, strict=strict)
    return cached


def _build(tool: _Tool, *, strict: bool) -> _StandIn:
    schema = (llm.utils.build_strict_openai_schema(tool) if strict
              else llm.utils.build_legacy_openai_schema(tool))
    return llm.function_tool(_not_run, raw_schema=schema["function"])


def schema_stand_ins(tools: list[llm.Tool] | None, *, strict: bool) -> list[llm.Tool] | None:
    """``tools`` with every function tool replaced by a stand-in carrying its built schema."""
    if not tools:
        return tools
    return [_stand_in(t, strict=strict) if isinstance(t, llm.FunctionTool) else t
            for t in tools]


class SchemaCachingLLM(openai.LLM):
    """livekit's OpenAI plugin, given each tool's schema built once (module docstring)."""

    def chat(self, *, chat_ctx: llm.ChatContext, tools: list[llm.Tool] | None = None,
             **kwargs: Any) -> openai.llm.LLMStream:
        return super().chat(chat_ctx=chat_ctx,
                            tools=schema_stand_ins(tools, strict=self._strict_tool_schema),
                            **kwargs)
