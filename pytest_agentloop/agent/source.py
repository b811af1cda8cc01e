"""Where an eval's run comes from when it is not the recorded one: the hook point the core asks.

Light on purpose (no SDK import): the core imports it to look up the source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pytest

from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.traces.store import TraceRecord


class RunPending(AgentloopError):
    """The fresh run an eval needs has not finished yet (asked without waiting)."""


class RunSource(Protocol):
    """Gives eval items the run to check, and where fresh verdicts go."""

    def record_for(self, item: pytest.Item, wait: bool = True) -> TraceRecord:
        """The run ``item`` checks; raises an AgentloopError (an eval error) if it failed or is not ready."""
        ...

    def verdicts_path(self, item: pytest.Item) -> Path:
        """The verdict store for ``item``'s rubric verdicts on this run."""
        ...


RUN_SOURCE_KEY = pytest.StashKey[RunSource]()
