"""``--agentloop-live-repeat=K``: each eval checked on K fresh runs; pass@k and the majority decide.

The eval item checks its first run that did not fail as usual (its failure
report is the one shown); the other runs are checked here with the same
literal assertions and rubric. A run that raised, timed out or was not
started is a failing sample, not an error: only when all K runs failed is
the eval an error. The majority of the K runs is the eval's outcome; pass@k
(any of the K runs passed; failed runs count as not passing) and the pass
count go to the report's properties, and an eval whose runs disagree is
flagged flaky, as judge repeats are.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_agentloop.collect import EvalItem
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.evaluate import evaluate_literals
from pytest_agentloop.judge.planner import GradeRequest, JudgeAnswerError, JudgeError, JudgePlanner, MissingVerdict
from pytest_agentloop.traces.store import TraceRecord


@dataclass(frozen=True)
class RepeatOutcome:
    """How an eval did on each of its K runs."""

    passes: tuple[bool, ...]
    errors: int = 0
    """Runs that failed (raised, timed out, not started): counted among the failing samples."""

    @property
    def k(self) -> int:
        """How many runs."""
        return len(self.passes)

    @property
    def majority(self) -> bool:
        """More than half the runs passed."""
        return sum(self.passes) * 2 > self.k

    @property
    def flaky(self) -> bool:
        """The runs disagree."""
        return len(set(self.passes)) > 1

    def properties(self) -> list[tuple[str, object]]:
        """User properties for the report (JUnit, history)."""
        return [
            ("live_repeats", str(self.k)),
            ("live_passes", f"{sum(self.passes)}/{self.k}"),
            (f"live_pass_at_{self.k}", str(any(self.passes)).lower()),
            ("live_flaky", str(self.flaky).lower()),
            ("live_run_errors", str(self.errors)),
        ]


def repeat_request(item: EvalItem, record: TraceRecord, number: int) -> GradeRequest:
    """The rubric request for the eval on its ``number``-th run."""
    return dataclasses.replace(
        item.grade_request(),
        nodeid=f"{item.nodeid}#r{number}",
        output=record.answer,
        question=record.question,
        artifacts_dir=record.artifacts_dir,
    )


def passes_on(item: EvalItem, record: TraceRecord, number: int, planner: JudgePlanner | None) -> bool:
    """Whether the eval passes on one more run (literal assertions, then the rubric)."""
    artifacts = record.artifacts_dir if record.artifacts_dir.is_dir() else None
    if item.spec.assertions and not evaluate_literals(item.spec, record.answer, artifacts, _dataroom(item)).passed:
        return False
    if not item.judged or planner is None:
        return True
    try:
        return planner.outcome(repeat_request(item, record, number)).passed
    except (MissingVerdict, JudgeError, JudgeAnswerError):
        return False


def _dataroom(item: EvalItem) -> Path | None:
    return item.suite.dataroom_dir


def combine_report(item: pytest.Item, report: pytest.TestReport, outcome: RepeatOutcome) -> None:
    """Make the majority the report's outcome; say so when it differs from the first run's."""
    report.user_properties.extend(outcome.properties())
    item.user_properties.extend(outcome.properties())  # the teardown report's, which JUnit XML reads
    first = report.passed
    if outcome.majority and not first:
        report.outcome = "passed"
        report.longrepr = None
    elif not outcome.majority and first:
        report.outcome = "failed"
        failed_runs = f" ({outcome.errors} of the runs failed)" if outcome.errors else ""
        report.longrepr = (
            f"the live run checked first passed, but the majority of {outcome.k} runs failed: "
            f"{sum(outcome.passes)}/{outcome.k} passed{failed_runs}"
        )


def other_passes(
    item: EvalItem, records: list[TraceRecord | AgentloopError], planner: JudgePlanner | None
) -> list[bool]:
    """Pass or fail on the other runs (a failed run fails)."""
    return [
        not isinstance(record, AgentloopError) and passes_on(item, record, number, planner)
        for number, record in enumerate(records, 2)
    ]
