"""Gathers eval outcomes from reports (xdist workers' included) and summarises them."""

from __future__ import annotations

from collections import Counter
from fnmatch import fnmatch
from pathlib import Path

import pytest

from pytest_agentloop.collect import RUBRIC_PENDING
from pytest_agentloop.config import settings_of


class AgentloopSession:
    """Registered as a plugin for one session; the controller alone writes the summary."""

    name = "agentloop-session"

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.outcomes: dict[str, str] = {}
        self.pending_rubric = 0
        self.broken_eval_files = 0
        self.other_collect_errors = 0

    @pytest.hookimpl
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """Count broken eval files apart from other collection errors."""
        if not report.failed:
            return
        patterns = settings_of(self.config).eval_patterns
        if any(fnmatch(Path(report.fspath).name, p) for p in patterns):
            self.broken_eval_files += 1
        else:
            self.other_collect_errors += 1

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Let the other evals run when the only collection errors are broken eval files.

        A broken Python test module still interrupts the session, as pytest does;
        a broken eval file is reported as one error and fails the run.
        """
        if self.broken_eval_files and not self.other_collect_errors:
            self.config.option.continue_on_collection_errors = True

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Record each eval's final outcome (setup errors and skips included)."""
        props = dict(report.user_properties)
        if "eval_id" not in props:
            return
        if report.when == "call" or report.outcome != "passed":
            outcome: str = "error" if report.failed and report.when != "call" else report.outcome
            if outcome == "skipped" and RUBRIC_PENDING in str(report.longrepr):
                self.pending_rubric += 1
                outcome = "pending"
            self.outcomes.setdefault(report.nodeid, outcome)

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """One short section: evals by outcome."""
        if not self.outcomes:
            return
        counts = Counter(self.outcomes.values())
        parts = [f"{counts[k]} {k}" for k in ("passed", "failed", "error", "skipped") if counts[k]]
        if counts["pending"]:
            parts.append(f"{counts['pending']} with literal checks passed and rubric pending")
        terminalreporter.section("agentloop")
        terminalreporter.line(f"{len(self.outcomes)} evals: " + ", ".join(parts))
