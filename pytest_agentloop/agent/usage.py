"""Token usage of a run, as the plugin's client sees it in the model's answers.

An agent callable may return only its answer. When its model calls go
through the plugin's client (the built-in runner's, or
:func:`pytest_agentloop.agent.openai_client`), a response hook reads each
answer's ``usage`` block and adds it to the meter of the run the call belongs
to (a context variable, so concurrent runs on one loop keep theirs apart).
A run whose usage cannot be read in full (a streamed answer, an answer with
no ``usage``) has unknown usage: its cost is recorded as unknown, never as 0.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from pytest_agentloop.agent.cost import cost_of
from pytest_agentloop.agent.runner import Usage

BILLED_PATHS = ("/responses", "/chat/completions", "/completions", "/embeddings")


@dataclass
class UsageMeter:
    """Tokens counted for one run, by the model that answered, and how many billed answers could not be read."""

    by_model: dict[str, Usage] = field(default_factory=dict)
    unread: int = 0

    def add(self, model: str, input_tokens: int, output_tokens: int) -> None:
        """Count one answered model call."""
        self.by_model[model] = self.by_model.get(model, Usage()) + Usage(input_tokens, output_tokens, 1)

    def usage(self) -> Usage | None:
        """The run's usage; None when no call was seen or one could not be read."""
        if not self.by_model or self.unread:
            return None
        return sum(self.by_model.values(), Usage())

    def model(self) -> str | None:
        """The model that answered, when one did."""
        return next(iter(self.by_model)) if len(self.by_model) == 1 else None

    def cost(self, prices: dict[str, tuple[float, float]] | None) -> float | None:
        """What the counted calls cost (None: usage unknown, or a model the price table lacks)."""
        if self.usage() is None:
            return None
        costs = [cost_of(m, u.input_tokens, u.output_tokens, prices) for m, u in self.by_model.items()]
        return None if None in costs else sum(c for c in costs if c is not None)


_METER: ContextVar[UsageMeter | None] = ContextVar("agentloop_run_meter", default=None)


@contextlib.contextmanager
def metering() -> Iterator[UsageMeter]:
    """Model calls made in this context (and tasks started from it) count on the returned meter."""
    meter = UsageMeter()
    token = _METER.set(meter)
    try:
        yield meter
    finally:
        _METER.reset(token)


def usage_of(body: object) -> tuple[int, int] | None:
    """``(input, output)`` tokens from an answer's ``usage`` (Responses or Chat Completions names)."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return None
    given = usage.get("input_tokens", usage.get("prompt_tokens"))
    made = usage.get("output_tokens", usage.get("completion_tokens", 0))
    if not isinstance(given, int) or not isinstance(made, int):
        return None
    return given, made


async def meter_response(response: Any) -> None:
    """``httpx`` response hook: count a successful model answer's usage on the running run's meter."""
    meter = _METER.get()
    if meter is None or response.request.method != "POST" or response.status_code >= 400:
        return
    if not response.request.url.path.endswith(BILLED_PATHS):
        return
    if "text/event-stream" in response.headers.get("content-type", ""):
        meter.unread += 1  # a stream is read by the caller, event by event
        return
    await response.aread()  # httpx keeps the content: the caller reads the same bytes
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    tokens = usage_of(body)
    if tokens is None:
        meter.unread += 1
    else:
        meter.add(str(body.get("model") or ""), *tokens)
