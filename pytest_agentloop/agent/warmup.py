"""Getting a process ready for live runs: the SDK imported and frozen, then a dry run beside the first runs.

Importing the Agents SDK and HALO's span mapping builds about 200,000
long-lived objects (pydantic models, openai types) in about 3 s of CPU,
under the GIL. Left to the cyclic collector they cost three more times: it
scans them during the import (a tenth of the import), at every full
collection after it (pytest makes two at its end, 0.1 s each), and at exit
it frees them one by one (0.5 to 1 s after the session's last line).
:func:`import_sdk` pauses the collector for the import and then freezes
what exists (``gc.freeze``): frozen objects are never scanned nor freed
again, and the operating system takes the memory back at exit. Garbage made
by other threads while the collector is paused (a few seconds) is frozen
with the rest; it is small.

What the SDK and the openai client still build at their first use (response
models' schemas, transform caches: 0.2 to 0.4 s of CPU) would delay every
run's first reply; :func:`warm_beside_runs` pays it with an offline
:func:`dry_run` while the runs' first requests are on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_agentloop.gcfreeze import frozen_afterwards

if TYPE_CHECKING:
    from pytest_agentloop.agent.capture import CapturedRun

SDK_MODULES = (
    "agents",
    "openai.types.responses",
    "openai.resources.responses",  # what AsyncOpenAI.responses imports at a first request
    "agents.models.openai_responses",
    "engine.telemetry.local_processor",
    "engine.traces.models.canonical_span",
    "pytest_agentloop.agent.builtin",
    "pytest_agentloop.agent.routing",
    "pytest_agentloop.agent.capture",
)
IDLE_PROBE = 0.005  # seconds: the loop is idle when sleeps this short end on time...
QUIET_PROBES = 4  # ...this many times in a row
IDLE_WAIT = 10.0  # seconds to look for an idle moment before giving the warm-up up
_dry_run_done = False


def import_sdk() -> None:
    """Import what every run needs (a missing module fails the run that needs it, not this)."""
    with frozen_afterwards("agents-sdk"):
        for name in SDK_MODULES:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)


def _response(number: int, output: dict[str, Any]) -> dict[str, Any]:
    """A Responses-API body shaped as the API sends it (the fields a real reply carries)."""
    return {
        "id": f"resp_warm_{number}",
        "object": "response",
        "created_at": 0,
        "status": "completed",
        "model": "warm-up",
        "output": [output],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "reasoning": {"effort": None, "summary": None},
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "truncation": "disabled",
        "temperature": 1.0,
        "top_p": 1.0,
        "usage": {
            "input_tokens": 1,
            "output_tokens": 1,
            "total_tokens": 2,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


REPLIES = (
    _response(
        1,
        {
            "type": "function_call",
            "id": "fc_warm",
            "call_id": "call_warm",
            "name": "echo",
            "arguments": '{"text": "warm"}',
            "status": "completed",
        },
    ),
    _response(
        2,
        {
            "type": "message",
            "id": "msg_warm",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "warm", "annotations": []}],
        },
    ),
)


def echo(text: str) -> str:
    """Say it back (the dry run's tool)."""
    return text


async def dry_run() -> CapturedRun:
    """One canned run of a one-tool agent through the real client, SDK, span mapping and capture, offline.

    The first run of a process pays for what the SDK and the openai client build at first use: the
    response models' schemas, the request-transform caches, the tool-call and span-line paths (0.2 to
    0.4 s of CPU, at the first replies, when every run waits for it). A dry run pays it instead, while
    the session's first requests are on the wire. Its replies come from an ``httpx.MockTransport``;
    its capture goes to a temporary folder.
    """
    import agents
    import httpx
    from openai import AsyncOpenAI

    from pytest_agentloop.agent.capture import capture_run

    replies = iter(REPLIES)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=next(replies, REPLIES[-1]))

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    client = AsyncOpenAI(api_key="warm-up", base_url="http://warm-up.invalid/v1", http_client=http)
    agent = agents.Agent(name="warm-up", instructions="Answer.", model="warm-up", tools=[agents.function_tool(echo)])
    config = agents.RunConfig(model_provider=agents.OpenAIProvider(openai_client=client, use_responses=True))

    async def call(question: str, **_: Any) -> Any:
        return await agents.Runner.run(agent, question, max_turns=3, run_config=config)

    try:
        with tempfile.TemporaryDirectory(prefix="agentloop-warm-") as store:
            return await capture_run(call, "warm up", store=Path(store), label="warm-up")
    finally:
        await client.close()


async def warm_beside_runs(pending: Callable[[], bool]) -> tuple[float, float] | None:
    """The dry run, once a process, as soon as the running loop is idle while runs are ``pending``.

    Idle means the runs' requests are on the wire: the dry run's CPU then costs them nothing. When the
    runs have all ended by then, or the loop is never idle, there is nothing left to warm up for.
    A failed dry run only means no warm-up. Returns when the dry run began and ended (epoch seconds).
    """
    global _dry_run_done
    if _dry_run_done:
        return None
    _dry_run_done = True
    if not (await _idle_within(IDLE_WAIT) and pending()):
        return None
    began = time.time()
    with contextlib.suppress(Exception):
        await dry_run()
    return began, time.time()


async def _idle_within(seconds: float) -> bool:
    """Whether the running loop answers a few short sleeps in a row on time within ``seconds``."""
    deadline = time.monotonic() + seconds
    quiet = 0
    while quiet < QUIET_PROBES:
        if time.monotonic() > deadline:
            return False
        before = time.monotonic()
        await asyncio.sleep(IDLE_PROBE)
        quiet = quiet + 1 if time.monotonic() - before < 2 * IDLE_PROBE else 0
    return True
