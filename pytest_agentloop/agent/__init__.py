"""Running the user's agent: capture of runs into a trace store, the built-in runner, live runs.

Nothing here imports the Agents SDK or HALO at import time: they are the
optional extras ``[agents]`` and ``[halo]``, imported inside the functions that
need them.

An agent of your own (``agentloop_agent = "mypkg.agent:run"``) makes its model
calls through :func:`openai_client` (or, with the Agents SDK,
``RunConfig(model_provider=model_provider())``) to be paced by
``--agentloop-rate`` / ``agentloop record --rate`` like the built-in runner.
"""

from __future__ import annotations

from typing import Any


def openai_client() -> Any:
    """The running event loop's ``openai.AsyncOpenAI`` (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``), made once per loop.

    Inside a live or recorded run with a rate, its requests wait for the
    endpoint's rate budget (the one the judge and the built-in runner draw
    on); otherwise it is a plain client. Call it inside the agent callable,
    on the loop the run is on: a client is bound to the loop that made it.
    """
    from pytest_agentloop.agent.builtin import loop_client

    return loop_client()


def model_provider() -> Any:
    """An Agents SDK ``OpenAIProvider`` over :func:`openai_client` (Responses API), for ``RunConfig``."""
    from agents import OpenAIProvider

    return OpenAIProvider(openai_client=openai_client(), use_responses=True)


__all__ = ["model_provider", "openai_client"]
