"""Keeping the cyclic garbage collector off the objects that live as long as the process.

A session builds tens of thousands of long-lived objects (pytest, openai's
types, pydantic models; the Agents SDK adds 200,000). The collector scans
them at every full collection (pytest makes two at its end) and the
interpreter frees them one by one at exit: 0.3 to 1 s after the session's
last line. Frozen objects (``gc.freeze``) are never scanned nor freed again;
the operating system takes the memory back at exit.

Each reason freezes once a process (after collection; after the SDK
import), so a process running many sessions (pytester) freezes the garbage
of the moment at most that often. A frozen object in a reference cycle is
not finalized at exit, so the plugin closes its files and clients itself.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_DONE: set[str] = set()


def freeze_once(reason: str) -> None:
    """Freeze every object that exists now, unless ``reason`` already did in this process."""
    if reason not in _DONE:
        _DONE.add(reason)
        gc.freeze()


@contextlib.contextmanager
def frozen_afterwards(reason: str) -> Iterator[None]:
    """Run the body with the collector paused (it would scan what the body builds), then :func:`freeze_once`."""
    if reason in _DONE:
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        freeze_once(reason)
