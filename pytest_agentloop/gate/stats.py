"""Per-eval figures across runs: pass rate, scores, flakiness, saturation."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from pytest_agentloop.results import EvalResult, Outcome


@dataclass(frozen=True)
class EvalStats:
    """One eval's figures over the runs that included it."""

    nodeid: str
    runs: int
    pass_rate: float
    min_score: float | None
    max_score: float | None
    mean_score: float | None
    flip_rate: float
    passing_streak: int
    passing_since: str | None
    errors: int = 0
    """Runs where the eval could not be judged (judge fault, missing verdict, unreadable trace): not outcomes."""


def eval_stats(nodeid: str, results: list[EvalResult]) -> EvalStats:
    """Figures for one eval; ``results`` oldest first.

    Only outcomes count (passed, failed): an error is an infrastructure fault, not a flip, and a skip is nothing.
    """
    judged = [r for r in results if r.outcome in (Outcome.PASSED, Outcome.FAILED)]
    scores = [r.score for r in judged if r.score is not None]
    flips = sum(a.passed != b.passed for a, b in pairwise(judged))
    streak, since = 0, None
    for result in reversed(judged):
        if not result.passed:
            break
        streak, since = streak + 1, result.run_started
    return EvalStats(
        nodeid=nodeid,
        runs=len(judged),
        pass_rate=sum(r.passed for r in judged) / len(judged) if judged else 0.0,
        min_score=min(scores) if scores else None,
        max_score=max(scores) if scores else None,
        mean_score=sum(scores) / len(scores) if scores else None,
        flip_rate=flips / (len(judged) - 1) if len(judged) > 1 else 0.0,
        passing_streak=streak,
        passing_since=since,
        errors=sum(r.outcome is Outcome.ERROR for r in results),
    )


def table(series: dict[str, list[EvalResult]], tag: str | None = None, split: str | None = None) -> list[EvalStats]:
    """Stats for every eval matching the filters (tag and split of its latest result)."""
    rows = []
    for nodeid, results in sorted(series.items()):
        latest = results[-1]
        if (tag and tag not in latest.tags) or (split and latest.split != split):
            continue
        rows.append(eval_stats(nodeid, results))
    return rows
