"""Bounds on what one check may cost: a time limit, and the error raised past it.

Every built-in check is linear in its input, so the time limit is a backstop
for patterns that opt into Python's backtracking ``re`` (``engine: python``)
and for custom assertion types. It uses ``SIGALRM`` and therefore works in the
main thread on POSIX systems; elsewhere :func:`time_limit` runs the check
without a limit and :func:`can_interrupt` says so, so that checks that need a
limit can refuse to run instead of hanging.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from pytest_agentloop.errors import AgentloopError

DEFAULT_CHECK_SECONDS = 10.0
MAX_CHECK_SECONDS = 600.0


class CheckAborted(AgentloopError):
    """A check that could not reach a verdict: past its time limit, or input beyond a documented limit.

    It is an infrastructure-style fault of the eval, reported as a pytest
    *error* (never a pass and never a plain failure), naming the eval, the file
    and the line of the assertion.
    """


class CheckTimedOut(CheckAborted):
    """A check stopped at its time limit."""


class _Expired(BaseException):
    """Raised inside the check by the alarm; BaseException so a check's own ``except Exception`` cannot swallow it."""


def can_interrupt() -> bool:
    """Whether :func:`time_limit` can stop a running check here (POSIX, main thread)."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _raise_expired(signum: int, frame: FrameType | None) -> None:
    raise _Expired


@contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Run the body for at most ``seconds``; past it, raise :class:`CheckAborted` naming ``what``.

    An interval timer set by someone else (pytest-timeout, say) is restored
    afterwards with the time that remains on it.
    """
    if not can_interrupt() or not math.isfinite(seconds) or seconds <= 0:
        yield
        return
    previous_handler = signal.signal(signal.SIGALRM, _raise_expired)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    except _Expired:
        raise CheckTimedOut(
            f"{what} ran past its time limit of {seconds:g} s and was stopped; "
            f"`timeout:` on the assertion raises the limit (up to {MAX_CHECK_SECONDS:g} s)"
        ) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay > 0:
            remaining = max(previous_delay - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, remaining, previous_interval)
