"""The built-in runner: an Agents SDK agent built from the harness YAML, so a plain agent needs no Python.

Harness keys read::

    name: diligence-analyst           # the agent's name (default: agent)
    system_prompt: ...                # the instructions
    model_settings:                   # model, and the SDK's ModelSettings fields
      model: gpt-5.1
      reasoning_effort: medium        # becomes ModelSettings(reasoning=Reasoning(effort=...))
    tools:                            # function tools by import path, `module:attribute`
      - analyst.tools:list_files      # (the harness file's folder and the rootdir are importable)
    max_turns: 20

Tools receive an :class:`AgentContext` (``ctx.context``) holding the run's
working directory, the dataroom and the metadata. Each event loop gets its
own ``AsyncOpenAI`` client (the SDK's shared client fails on a second loop),
reused by the runs on it; the client reads ``OPENAI_API_KEY`` and
``OPENAI_BASE_URL``, and with ``--agentloop-rate`` waits for the endpoint's
rate budget (:mod:`~pytest_agentloop.agent.pacing`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_agentloop.agent import model_provider
from pytest_agentloop.agent.errors import AgentConfigError, require
from pytest_agentloop.agent.harness import Harness
from pytest_agentloop.agent.pacing import Pacing, run_http_client
from pytest_agentloop.agent.runner import Question, import_object

DEFAULT_MAX_TURNS = 20


@dataclass
class AgentContext:
    """What the built-in runner's tools see as ``ctx.context``."""

    workdir: Path
    dataroom: Path | None
    metadata: dict[str, Any] = field(default_factory=dict)
    harness: Harness | None = None


def model_settings(harness: Harness) -> Any:
    """The SDK's ``ModelSettings`` from ``model_settings:`` (``model`` aside)."""
    agents = require("agents")
    given = dict(harness.data.get("model_settings") or {})
    given.pop("model", None)
    effort = given.pop("reasoning_effort", None)
    known = {f.name for f in dataclasses.fields(agents.ModelSettings)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise AgentConfigError(
            f"model_settings: unknown key(s) {', '.join(unknown)} "
            f"(known: reasoning_effort, {', '.join(sorted(known))})",
            path=harness.path,
        )
    if effort is not None:
        from openai.types.shared import Reasoning

        given["reasoning"] = Reasoning(effort=effort)
    return agents.ModelSettings(**given)


def load_tool(ref: str, harness: Harness) -> Any:
    """The function tool at ``module:attribute`` (a plain function is wrapped with ``function_tool``)."""
    agents = require("agents")
    try:  # the harness file's folder is importable, as the project root is for the agent
        tool = import_object(ref, harness.path.parent if harness.path else None, "tools:")
    except AgentConfigError as exc:
        raise AgentConfigError(str(exc), path=harness.path) from None
    if inspect.isfunction(tool):
        return agents.function_tool(tool)
    return tool


def build_agent(harness: Harness) -> Any:
    """An ``agents.Agent`` from the harness."""
    agents = require("agents")
    tools = [load_tool(str(ref), harness) for ref in harness.data.get("tools") or []]
    return agents.Agent(
        name=str(harness.data.get("name") or "agent"),
        instructions=str(harness.data.get("system_prompt") or ""),
        model=harness.model,
        model_settings=model_settings(harness),
        tools=tools,
    )


async def run_sdk_agent(
    agent: Any,
    question: Question,
    *,
    metadata: dict[str, Any],
    workdir: Path,
    harness: Harness,
    max_turns: int | None = None,
) -> Any:
    """Run an ``agents.Agent`` with a client of its own; returns the SDK's ``RunResult``."""
    agents = require("agents")
    provider = model_provider()
    context = AgentContext(workdir=workdir, dataroom=harness.dataroom, metadata=metadata, harness=harness)
    turns = max_turns or int(harness.data.get("max_turns") or DEFAULT_MAX_TURNS)
    return await agents.Runner.run(
        agent, question, context=context, max_turns=turns, run_config=agents.RunConfig(model_provider=provider)
    )


_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], Any]] = weakref.WeakKeyDictionary()
_PACING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pacing] = weakref.WeakKeyDictionary()


def pace_loop(pacing: Pacing | None) -> None:
    """Clients made on the running loop from now on wait for the endpoint's rate budget (``--agentloop-rate``)."""
    if pacing is not None:
        _PACING[asyncio.get_running_loop()] = pacing


def loop_client() -> Any:
    """One ``AsyncOpenAI`` client per event loop (and endpoint): made once, as its TLS setup is costly."""
    from openai import AsyncOpenAI

    base_url = os.environ.get("OPENAI_BASE_URL", "")
    key = (base_url, os.environ.get("OPENAI_API_KEY", ""))
    loop = asyncio.get_running_loop()
    clients = _CLIENTS.setdefault(loop, {})
    if key not in clients:
        http_client = run_http_client(_PACING.get(loop), base_url or None)
        clients[key] = AsyncOpenAI(http_client=http_client)
    return clients[key]


async def close_loop_clients() -> None:
    """Close the running loop's clients, so none is left for the interpreter's exit to collect half torn down."""
    for client in _CLIENTS.pop(asyncio.get_running_loop(), {}).values():
        await client.close()


_BUILT: list[tuple[Harness, Any]] = []


def agent_for(harness: Harness) -> Any:
    """The harness's agent, built once for all its runs (an Agent is configuration: runs keep no state in it).

    Building it again for every run would wrap a plain-function tool again each time (its schema: 2 ms).
    """
    built = _BUILT[0] if _BUILT else None
    if built is None or built[0] is not harness:
        built = (harness, build_agent(harness))
        _BUILT[:] = [built]
    return built[1]


async def run(question: Question, *, metadata: dict[str, Any], workdir: Path, harness: Harness) -> Any:
    """The built-in agent callable (``agentloop_agent = harness``)."""
    return await run_sdk_agent(agent_for(harness), question, metadata=metadata, workdir=workdir, harness=harness)
