"""From pytest's reports to eval outcomes, and the session's terminal summary lines.

Plain functions the session coordinator calls; nothing here decides when.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter

import pytest

from pytest_agentloop.collect import JUDGE_OFF, NOT_ASKED, EvalItem
from pytest_agentloop.config import Settings
from pytest_agentloop.judge.planner import JudgePlanner
from pytest_agentloop.results import EvalResult, Outcome
from pytest_agentloop.spec import Split


def summary_lines(
    results: list[EvalResult], settings: Settings, planner: JudgePlanner | None
) -> list[tuple[str, str | None]]:
    """Counts by outcome, where rubric verdicts came from, judge calls, flaky evals."""
    counts = Counter("judge off" if is_judge_off(r) else r.outcome.value for r in results)
    order = ("passed", "failed", "error", "skipped", "judge off")
    lines: list[tuple[str, str | None]] = [
        (f"{len(results)} evals: " + ", ".join(f"{counts[k]} {k}" for k in order if counts[k]), None)
    ]
    sources = Counter(r.verdict_source.split(":")[0] for r in results if r.verdict_source)
    if sources:
        text = ", ".join(f"{n} {k}" for k, n in sorted(sources.items()))
        lines.append((f"rubric verdicts ({settings.judge_mode.value} mode): {text}", None))
    not_asked = sum(r.rubric_note == NOT_ASKED for r in results)
    if not_asked:
        lines.append((f"rubric not asked: {not_asked} (hybrid evals whose assertions failed)", None))
    stats = planner.stats if planner is not None else None
    if stats is not None and stats.calls:
        lines.append(
            (
                f"judge calls: {stats.calls} in {stats.calling_seconds:.2f}s "
                f"(concurrency {settings.concurrency}, {stats.errors} failed)",
                None,
            )
        )
    lines += [
        (f"flaky: {r.nodeid} (judge verdicts disagree: {r.judge_votes} passed)", "yellow") for r in results if r.flaky
    ]
    return lines


def is_judge_off(result: EvalResult) -> bool:
    """Whether an eval was skipped only because the judge is off."""
    return result.outcome is Outcome.SKIPPED and result.explanation.startswith(JUDGE_OFF)


def outcome_of(report: pytest.TestReport) -> Outcome:
    """An item's outcome from its first decisive report: a failure outside the call is an error."""
    if report.failed:
        return Outcome.FAILED if report.when == "call" else Outcome.ERROR
    return Outcome.SKIPPED if report.skipped else Outcome.PASSED


def explanation_of(report: pytest.TestReport, item: pytest.Item) -> str:
    """Why the eval (a YAML eval item or a Python eval) ended as it did, in a few lines."""
    if report.passed:
        rubric, verdict = getattr(item, "rubric", None), getattr(item, "verdict", None)
        return rubric.reason if rubric is not None else (verdict.explanation if verdict is not None else "")
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return _first_lines(report.longreprtext)


def lost_result(nodeid: str, outcome: str) -> EvalResult:
    """A record for an eval whose worker reported its outcome but died before handing over its record."""
    return EvalResult(
        eval_id=nodeid.split("::")[-1],
        nodeid=nodeid,
        title="",
        trace_id="",
        trace_label="",
        outcome=Outcome(outcome),
        score=None,
        explanation="no result record reached the controller (did an xdist worker crash?)",
        eval_file=nodeid.split("::")[0],
    )


def _first_lines(text: str, count: int = 6) -> str:
    """The start of a failure report, without xdist's ``[gw0] linux -- Python ...`` line."""
    lines = [line for line in text.splitlines() if line.strip() and not re.match(r"^\[gw\d+\] ", line)]
    return "\n".join(lines[:count])


class AgentloopWarning(pytest.PytestWarning):
    """A problem with the eval suite that does not stop the run."""


def warn_single_split_tags(evals: list[EvalItem]) -> None:
    """One warning naming the tags (of two or more evals) whose evals all sit in one split."""
    splits: dict[str, set[str]] = {}
    sizes: Counter[str] = Counter()
    for item in evals:
        for tag in item.spec.tags:
            splits.setdefault(tag, set()).add(item.spec.split.value)
            sizes[tag] += 1
    if len({s for found in splits.values() for s in found}) < len(Split):
        return
    lonely = sorted(tag for tag, found in splits.items() if len(found) == 1 and sizes[tag] > 1)
    if not lonely:
        return
    described = ", ".join(f"{t!r} ({next(iter(splits[t]))})" for t in lonely)
    first = next(i for i in evals if lonely[0] in i.spec.tags)
    message = (
        f"{len(lonely)} tag{'s' if len(lonely) != 1 else ''} with evals in only one split: {described}; "
        "no holdout check, or nothing to tune on. Assign splits with `agentloop split` or `split:` in the eval files"
    )
    warnings.warn_explicit(AgentloopWarning(message), AgentloopWarning, str(first.path), first.spec.line)
