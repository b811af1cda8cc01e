"""The gate's part of one session: inputs checked before any eval runs, then decide, record, summarise.

Honesty rules: a baseline that was asked for and cannot be read (or names a
run that does not exist) stops the session before it starts; a history that
cannot be written is an error, failing the session whenever a baseline or a
gate policy was asked for; nothing claims a write that did not happen.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from pytest_agentloop.config import Settings
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.gate.baseline import Baseline, check_ref, load_baseline
from pytest_agentloop.gate.finish import GateOutcome, GitHead, RunInfo, judge_gate, record_run, write_summaries
from pytest_agentloop.gate.history import History, HistoryError
from pytest_agentloop.results import EvalResult, Selection


def new_run_id() -> str:
    """Time-ordered and unique: ``20261122-141502-a1b2c3``."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


@dataclass
class GateRun:
    """Owns the history and the baseline for one session (on the process that writes the summary)."""

    settings: Settings
    root: Path
    run_id: str
    outcome: GateOutcome | None = None
    errors: list[str] = field(default_factory=list)
    """Problems that stop the gate or the history write, each one line."""
    recorded: Path | None = None
    head: GitHead | None = None
    """The commit and branch, looked up from the session's start (see :meth:`start`)."""

    @property
    def history(self) -> History:
        """The run history this session reads and writes."""
        return History(self.settings.history_path(self.root))

    def start(self) -> None:
        """Look up the commit and branch the run will be recorded with while the evals run."""
        self.head = GitHead(self.root)

    def check_inputs(self) -> None:
        """Before any eval runs: the baseline must be readable, and the history writable when the gate is asked for.

        Raises :class:`AgentloopError` naming the problem.
        """
        if self.settings.baseline:
            check_ref(self.settings.baseline, self.history, current_run=self.run_id)
        if self.settings.gate_requested:
            self.history.check_writable()

    def decide(self, results: list[EvalResult], selection: Selection, exit_status: int, outside: list[str]) -> int:
        """Compare with the baseline and apply the policy; returns the session's exit status."""
        baseline: Baseline | None = None
        if self.settings.baseline:
            try:
                evals = [r.nodeid for r in results]
                baseline = load_baseline(self.settings.baseline, self.history, evals, self.run_id)
            except AgentloopError as exc:
                self.errors.append(f"baseline not loaded: {exc}")
                self.outcome = GateOutcome(results=results, exit_status=exit_status)
                return max(exit_status, 1)
        self.outcome = judge_gate(self.settings, baseline, results, selection, exit_status, outside)
        return exit_status if self.outcome.exit_status is None else self.outcome.exit_status

    def record(self, run: RunInfo, selection: Selection, exit_status: int) -> int:
        """Write the run to the history; returns the exit status.

        A failed write fails the session when a baseline or the gate was asked for.
        """
        assert self.outcome is not None
        try:
            record_run(
                self.settings, self.history, self.root, run, self.outcome.results, selection, exit_status, self.head
            )
        except HistoryError as exc:
            self.errors.append(f"run history not written: {exc}")
            return max(exit_status, 1) if self.settings.gate_requested else exit_status
        self.recorded = self.history.path
        return exit_status

    def summaries(self, results: list[EvalResult], handoff: Path | None) -> None:
        """The markdown summary for CI ($GITHUB_STEP_SUMMARY, --agentloop-report)."""
        assert self.outcome is not None
        try:
            written = write_summaries(self.settings, self.root, results, self.outcome, handoff)
        except OSError as exc:
            self.errors.append(f"gate summary not written: {type(exc).__name__}: {exc}")
            return
        self.outcome.notes += [f"gate summary written to {p}" for p in written]

    def lines(self) -> list[tuple[str, str | None]]:
        """Terminal lines: errors first (red), the comparison and verdict, then where the run was recorded."""
        lines: list[tuple[str, str | None]] = [(f"agentloop: {e}", "red") for e in self.errors]
        if self.outcome is not None:
            lines += self.outcome.summary(self.settings.gate.value)
        if self.recorded is not None:
            lines.append((f"run {self.run_id} recorded in {self.recorded}", None))
        return lines
