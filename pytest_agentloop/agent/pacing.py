"""The HTTP client of agent runs: ``--agentloop-rate`` pacing, and the usage meter.

The Agents SDK makes its model calls itself, so the budget sits in the HTTP
client handed to it: an httpx request hook takes a call from the endpoint's
:class:`~pytest_agentloop.ratelimit.RateBudget` before each request leaves (SDK
retries included), and a response hook lets it learn from the
``x-ratelimit-*`` headers. No SDK internals are patched. The budget is the
judge's when both reach the same endpoint with the same key variable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_agentloop.judge.endpoint import DEFAULT_BASE_URL
from pytest_agentloop.ratelimit import RateLimit, endpoint_budget


@dataclass(frozen=True)
class Pacing:
    """The session's rate (``--agentloop-rate``), where budgets live, and the agent's key variable."""

    limit: RateLimit
    state_dir: Path
    key_env: str


def run_http_client(pacing: Pacing | None, base_url: str | None) -> Any:
    """The ``httpx.AsyncClient`` (the openai client's defaults) of agent runs' model calls.

    Its response hook counts each answer's usage on the run's meter
    (:mod:`~pytest_agentloop.agent.usage`); with ``pacing``, its requests also
    wait for the endpoint's budget.
    """
    from openai import DefaultAsyncHttpxClient

    from pytest_agentloop.agent.usage import meter_response

    hooks: dict[str, list[Any]] = {"request": [], "response": [meter_response]}
    if pacing is not None:
        from pytest_agentloop.pacing import paced_hooks  # httpx: imported only when live runs are paced

        budget = endpoint_budget(base_url or DEFAULT_BASE_URL, pacing.key_env, pacing.limit, pacing.state_dir)
        assert budget is not None  # a Pacing always has a rate and a folder
        for event, added in paced_hooks(budget).items():
            hooks[event] += added
    return DefaultAsyncHttpxClient(event_hooks=hooks)
