"""Which items an xdist worker runs next: what the judge may start grading ahead there.

pytest tells a worker only the item it runs and the next one, which kept at
most two judge calls in flight per worker whatever ``--agentloop-concurrency``
said. pytest-xdist's worker keeps the indices the controller handed it in a
queue (``WorkerInteractor.torun``). Only its first half is graded ahead:
``--dist load`` never takes queued items back, and ``--dist worksteal`` takes
them from the end of the queue, at most half of it (a worker cannot tell
which scheduler sent its items; should a steal still reach an item graded
ahead, that item costs one call more, never a wrong verdict). That queue is
pytest-xdist's own, not an API: when it is not there as expected, nothing
more than the next item is graded ahead.
"""

from __future__ import annotations

from typing import Any

import pytest


def queued_items(config: pytest.Config, items: list[pytest.Item], limit: int) -> list[pytest.Item]:
    """Up to ``limit`` items from the first half of what this worker was handed and has not started ([] if unknown)."""
    queue = getattr(_interactor(config), "torun", None)
    lock = getattr(queue, "lock", None)
    if not callable(lock):
        return []
    try:
        with lock() as pending:
            indices = list(pending)[: min(limit, (len(pending) - 1) // 2)]
    except Exception:  # pytest-xdist changed its queue: fall back to the next item only
        return []
    return [items[i] for i in indices if isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(items)]


def _interactor(config: pytest.Config) -> Any:
    """pytest-xdist's worker-side plugin, registered without a name."""
    return next((p for p in config.pluginmanager.get_plugins() if type(p).__name__ == "WorkerInteractor"), None)
