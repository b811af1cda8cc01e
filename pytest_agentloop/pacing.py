"""The one place model calls meet an endpoint's rate budget: an ``httpx`` client whose hooks pace every request.

Every model call the plugin makes to an endpoint (the judge, insights and
generation, a live agent run through the plugin's client) goes through an
``httpx.AsyncClient`` made here, so one :class:`~pytest_agentloop.ratelimit.RateBudget`
covers them all, retries included (each attempt is a request):

- the request hook waits for the budget (one request, and the call's estimated
  tokens against a tokens-per-minute limit) before anything is sent;
- the response hook hands the answer's ``x-ratelimit-*`` headers to the budget,
  so it slows down before a 429 rather than after.

An ``openai`` client takes it as ``AsyncOpenAI(http_client=paced_client(...))``.
Without a budget the client is a plain one, kept alive and sized to the calls
in flight.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from pytest_agentloop.ratelimit import RateBudget

_CAP = re.compile(rb'"max_(?:completion_|output_)?tokens"\s*:\s*(\d+)')
Hook = Callable[[Any], Awaitable[None]]


def request_tokens(request: httpx.Request) -> int:
    """What a request may cost against a tokens-per-minute limit: its body (~4 bytes a token) and its output cap."""
    try:
        body = request.content
    except httpx.RequestNotRead:  # a streamed upload: its declared length is all there is
        return int(request.headers.get("content-length") or 0) // 4
    cap = _CAP.search(body)
    return len(body) // 4 + (int(cap.group(1)) if cap else 0)


def paced_hooks(budget: RateBudget) -> dict[str, list[Hook]]:
    """``httpx`` event hooks that spend ``budget`` on each request and learn from each response's headers."""

    async def acquire(request: httpx.Request) -> None:
        await budget.acquire(request_tokens(request))

    async def observe(response: httpx.Response) -> None:
        budget.observe(response.headers)

    return {"request": [acquire], "response": [observe]}


def paced_client(budget: RateBudget | None, *, timeout: float, connections: int = 8) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` paced by ``budget`` (when there is one), with ``connections`` kept alive."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=max(connections, 1), keepalive_expiry=30)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        limits=limits,
        event_hooks=paced_hooks(budget) if budget is not None else None,
        follow_redirects=True,
    )
