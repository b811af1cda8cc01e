"""A pytest plugin for ``bench/judge.py --phases``: when each part of a judged session ends, as wall-clock time.

Loaded with ``-p phase_clock`` (the bench puts this folder on ``PYTHONPATH``); ``-p`` plugins load before the
entry-point plugins, so "imported" marks the end of the interpreter's and pytest's own start-up. The times go,
as one JSON object, to the file named by ``$AGENTLOOP_PHASES``.
"""

from __future__ import annotations

import atexit
import json
import os
import time

import pytest

MARKS: dict[str, float] = {"imported": time.time()}


def _mark(name: str) -> None:
    MARKS.setdefault(name, time.time())


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Every plugin configured."""
    _mark("configured")


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    """Session start hooks done."""
    _mark("collecting")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Collection done; judging not yet planned."""
    _mark("collected")


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    """The last item's reports are out (overwritten until the last one)."""
    MARKS["last_item"] = time.time()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Every plugin's end of session done (the agentloop session's first: it is tryfirst)."""
    _mark("finished")
    from pytest_agentloop.judge.planner import PLANNER_KEY

    planner = session.config.stash.get(PLANNER_KEY, None)
    if planner is not None and planner.stats.first_call is not None and planner.stats.last_answer is not None:
        offset = time.time() - time.monotonic()
        MARKS["first_call"] = planner.stats.first_call + offset
        MARKS["last_answer"] = planner.stats.last_answer + offset


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """The terminal summary written; pytest's own clean-up (its garbage collection passes) comes after."""
    _mark("unconfigured")


def _write() -> None:
    _mark("exiting")
    path = os.environ.get("AGENTLOOP_PHASES")
    if path:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(MARKS, handle)


atexit.register(_write)  # registered before pytest's own handlers: runs after them, as the interpreter tears down
