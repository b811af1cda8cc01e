"""Extension points of pytest-agentloop, added to pytest through ``pytest_addhooks``.

Implement them in a ``conftest.py`` or a plugin, like any pytest hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_agentloop.assertions.registry import AssertionType
    from pytest_agentloop.handoff.produce import HandoffOutcome
    from pytest_agentloop.results import EvalResult


@pytest.hookspec
def pytest_agentloop_assertion_types(config: pytest.Config) -> list[AssertionType]:  # type: ignore[empty-body]
    """Return assertion types eval files may use (each with its ``not-`` form).

    Asked per folder when an eval file is collected, through the hooks that apply there: installed
    plugins, and ``conftest.py`` files of that folder and its parents (at any depth). The ``agentloop``
    command asks the same way, through pytest's own collection. Types are never registered
    process-wide; a name that clashes with a built-in or another plugin's is an error.
    """


@pytest.hookspec
def pytest_agentloop_results(config: pytest.Config, results: list[EvalResult]) -> None:
    """Called once at the end of a session (on the xdist controller) with every eval's result row."""


@pytest.hookspec
def pytest_agentloop_handoff(config: pytest.Config, outcome: HandoffOutcome) -> None:
    """Called after a handoff (or its evidence-only fallback) has been written."""
