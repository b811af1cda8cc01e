"""Scripted analyst runs for the fake OpenAI server: list → read → write artifacts → check → answer."""

from __future__ import annotations

from pytest_agentloop.testing.fake_openai import Reply, ToolCall

from conftest import CONTRACT_ARTIFACTS


def analyst_steps(answer: str, *, read: str = "financials/p_and_l.csv", delay: float = 0.0) -> list[Reply]:
    """The replies of one good analyst run ending in ``answer``."""
    writes = tuple(ToolCall("write_artifact", {"name": n, "content": t}) for n, t in CONTRACT_ARTIFACTS.items())
    return [
        Reply(tool_calls=(ToolCall("list_files", {"folder": "financials"}),), delay=delay),
        Reply(tool_calls=(ToolCall("read_file", {"path": read}),), delay=delay),
        Reply(tool_calls=writes, delay=delay),
        Reply(tool_calls=(ToolCall("check_output_contract", {}),), delay=delay),
        Reply(text=answer, usage=(120, 40), delay=delay),
    ]


def escape_steps() -> list[Reply]:
    """A run whose model asks to read outside the dataroom."""
    return [
        Reply(tool_calls=(ToolCall("read_file", {"path": "../harness.yaml"}),)),
        Reply(text="should not be reached"),
    ]
