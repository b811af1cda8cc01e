"""The judge's HTTP client, made on a thread of its own while pytest collects, off the first call's path.

Importing ``httpx``, making a client (its TLS context loads the CA bundle) and
loading the asyncio network backend that ``httpx`` otherwise imports at a
client's first request all sat between the end of collection and the first
judge call leaving. Here they happen beside collection; the planner takes the
client when its endpoint is still the one the session judges with.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import threading
from typing import TYPE_CHECKING

from pytest_agentloop.judge.endpoint import JudgeEndpoint

if TYPE_CHECKING:
    from pytest_agentloop.judge.client import OpenAIJudge

# What httpx imports on a client's first request (its network backend for asyncio). Internal names: should a
# release move them, the import is skipped and happens at the first call, as it would without this module.
BACKEND_MODULES = ("httpcore._backends.anyio", "anyio._backends._asyncio")


class PreparedJudge:
    """A judge client being made for ``endpoint`` (``future`` holds it, or what making it raised)."""

    def __init__(self, endpoint: JudgeEndpoint, connections: int) -> None:
        self.endpoint = endpoint
        self.future: concurrent.futures.Future[OpenAIJudge] = concurrent.futures.Future()
        # Not a daemon: an import cut short at interpreter exit is worse than waiting for it in a session that
        # ends before it does.
        threading.Thread(target=self._make, args=(connections,), name="agentloop-warm-up").start()

    def _make(self, connections: int) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            from pytest_agentloop.judge.client import OpenAIJudge

            for name in BACKEND_MODULES:
                try:
                    importlib.import_module(name)
                except ImportError:
                    continue
            self.future.set_result(OpenAIJudge(self.endpoint, connections))
        except BaseException as exc:  # the planner makes the client again, where the error reaches the eval
            self.future.set_exception(exc)

    def for_endpoint(self, endpoint: JudgeEndpoint) -> concurrent.futures.Future[OpenAIJudge] | None:
        """The client being made, if it is for ``endpoint`` (a conftest met during collection may change it)."""
        return self.future if endpoint == self.endpoint else None
