"""The user's agent: an async callable named by import path, and what it may return.

The callable's contract::

    async def run(question, *, metadata, workdir, harness) -> str | AgentReply | agents.RunResult

``question`` is a string, or a list of chat messages for multi-turn inputs;
``metadata`` the eval's or questions file's metadata; ``workdir`` a fresh,
empty folder whose files become the run's artifacts; ``harness`` the
:class:`~pytest_agentloop.agent.harness.Harness`. Tracing, timing, artifacts
and errors are the plugin's business.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_agentloop.agent.errors import AgentConfigError
from pytest_agentloop.agent.harness import Harness

Question = str | list[dict[str, Any]]
AgentCallable = Callable[..., Awaitable[Any]]
BUILTIN = "harness"
BUILTIN_PATH = "pytest_agentloop.agent.builtin:run"


@dataclass(frozen=True)
class Usage:
    """Token counts of one run."""

    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.requests + other.requests,
        )

    def to_json(self) -> dict[str, int]:
        """The ``usage`` block of a record."""
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens, "requests": self.requests}


@dataclass(frozen=True)
class AgentReply:
    """What an agent callable may return: the answer, and optionally its usage and model."""

    answer: str
    usage: Usage | None = None
    model: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def coerce_reply(value: object) -> AgentReply:
    """An :class:`AgentReply` from a string, an AgentReply, or an Agents SDK ``RunResult``."""
    if isinstance(value, AgentReply):
        return value
    if isinstance(value, str):
        return AgentReply(value)
    if hasattr(value, "final_output") and hasattr(value, "context_wrapper"):
        usage = value.context_wrapper.usage
        model = getattr(getattr(value, "last_agent", None), "model", None)
        return AgentReply(
            str(value.final_output),
            Usage(usage.input_tokens, usage.output_tokens, usage.requests),
            model if isinstance(model, str) else None,
        )
    raise AgentConfigError(
        f"the agent returned {type(value).__name__}; return the answer as a str, an AgentReply or a RunResult"
    )


def import_object(spec: str, root: Path | None, option: str) -> Any:
    """The object named ``module:attribute``, imported with the project root first on ``sys.path``.

    Every import-path setting (the agent, the redaction hook, the built-in runner's tools) resolves here, so a
    module of the user's own project loads the same way for each, without PYTHONPATH.
    """
    module_name, _, attribute = spec.strip().partition(":")
    if not module_name or not attribute:
        raise AgentConfigError(f"{option} {spec!r}: write it as 'package.module:function'")
    if root is not None and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise AgentConfigError(f"{option} {spec!r} cannot be loaded: {exc}") from None
    return target


def load_agent(spec: str, root: Path) -> AgentCallable:
    """The async callable named ``module:attribute`` (``harness`` names the built-in runner)."""
    path = BUILTIN_PATH if spec.strip() == BUILTIN else spec.strip()
    if not path.partition(":")[0] or not path.partition(":")[2]:
        raise AgentConfigError(f"agentloop_agent {spec!r}: write it as 'package.module:function' (or 'harness')")
    target = import_object(path, root, "agentloop_agent")
    if not inspect.iscoroutinefunction(target) and not inspect.iscoroutinefunction(type(target).__call__):
        raise AgentConfigError(f"agentloop_agent {spec!r} is not an async function (define it with `async def`)")
    return target  # type: ignore[no-any-return]


def question_text(question: Question) -> str:
    """The text a record keeps as its question: the string, or the last user message."""
    if isinstance(question, str):
        return question
    users = [m for m in question if isinstance(m, dict) and m.get("role") == "user"]
    content = (users or question or [{}])[-1].get("content", "")
    return content if isinstance(content, str) else str(content)


__all__ = [
    "BUILTIN",
    "AgentCallable",
    "AgentReply",
    "Harness",
    "Question",
    "Usage",
    "coerce_reply",
    "import_object",
    "load_agent",
]
