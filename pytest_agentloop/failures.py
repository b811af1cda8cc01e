"""Failure reports in pytest's voice: which eval, which assertion, where, what was seen."""

from __future__ import annotations

from pathlib import Path

from pytest_agentloop.assertions.excerpts import head
from pytest_agentloop.judge.planner import RubricOutcome
from pytest_agentloop.results import AssertionResult, LiteralVerdict


class EvalFailed(AssertionError):
    """An eval whose literal assertions did not pass; carries the structured verdict."""

    def __init__(
        self, *, eval_id: str, title: str, trace: str, path: Path, verdict: LiteralVerdict, output: str
    ) -> None:
        super().__init__(f"eval {eval_id}: {verdict.explanation}")
        self.eval_id, self.title, self.trace, self.path = eval_id, title, trace, path
        self.verdict, self.output = verdict, output


def _assertion_lines(path: Path, result: AssertionResult, verbose: bool) -> list[str]:
    status = "PASSED" if result.passed else "FAILED"
    if result.weight == 0:
        status += " (weight 0, not counted)"
    target = f" on {result.artifact}" if result.artifact else ""
    lines = [f"{status} {path}:{result.line}: {result.type}{target}"]
    if not result.passed or verbose:
        lines.append(f"    expected: {result.expected}")
        lines.append(f"    seen:     {result.seen}")
    return lines


def format_failure(failure: EvalFailed, verbose: bool = False) -> str:
    """The long report pytest prints for a failed eval."""
    verdict = failure.verdict
    lines = [
        f"eval {failure.eval_id}: {failure.title}",
        f"  source trace: {failure.trace}",
        f"  {verdict.explanation}",
        "",
    ]
    for result in verdict.assertions:
        if verbose or not result.passed:
            lines.extend("  " + line for line in _assertion_lines(failure.path, result, verbose))
    if verdict.named_scores:
        lines.append("  metrics: " + ", ".join(f"{k}={v:.2f}" for k, v in verdict.named_scores.items()))
    lines += ["", f"  output: {head(failure.output, 300)}"]
    return "\n".join(lines)


class RubricFailed(AssertionError):
    """An eval whose rubric verdict did not pass."""

    def __init__(
        self, *, eval_id: str, title: str, trace: str, outcome: RubricOutcome, threshold: float, output: str
    ) -> None:
        super().__init__(f"eval {eval_id}: rubric failed ({outcome.source}, score {outcome.score:.2f})")
        self.eval_id, self.title, self.trace = eval_id, title, trace
        self.outcome, self.threshold, self.output = outcome, threshold, output


def format_rubric_failure(failure: RubricFailed) -> str:
    """The long report pytest prints for an eval the judge (or a person) failed."""
    outcome = failure.outcome
    votes = f", votes {outcome.votes}" + (", FLAKY" if outcome.flaky else "") if len(outcome.verdicts) > 1 else ""
    lines = [
        f"eval {failure.eval_id}: {failure.title}",
        f"  source trace: {failure.trace}",
        f"  rubric FAILED by {outcome.source}: score {outcome.score:.2f} (threshold {failure.threshold:g}){votes}",
        f"  reason: {outcome.reason}",
        "",
        f"  output: {head(failure.output, 300)}",
    ]
    return "\n".join(lines)
