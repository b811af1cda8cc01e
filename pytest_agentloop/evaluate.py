"""Running an eval's literal assertions against a recorded run.

Scoring follows Promptfoo: the score is the weighted mean of assertion scores
(weight 0 assertions are shown but do not count); with an
``assertion_threshold`` the eval passes when the score reaches it, otherwise
every counted assertion must pass.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from pytest_agentloop.assertions import CheckInput, lookup
from pytest_agentloop.assertions.artifacts import UnsafePath, safe_join
from pytest_agentloop.assertions.limits import CheckAborted, CheckTimedOut, time_limit
from pytest_agentloop.assertions.registry import AssertionType, Outcome, negate
from pytest_agentloop.assertions.text import Pattern
from pytest_agentloop.results import AssertionResult, LiteralVerdict
from pytest_agentloop.spec import AssertionSpec, EvalSpec


def needs_artifacts(spec: EvalSpec) -> bool:
    """Whether any assertion reads the run's artifact folder."""
    return any(a.artifact or _kind(a)[0].target == "artifacts" for a in spec.assertions)


def _kind(assertion: AssertionSpec) -> tuple[AssertionType, bool]:
    found = lookup(assertion.type)
    if found is None:  # spec validation makes this unreachable
        raise KeyError(assertion.type)
    return found


def _text_for(assertion: AssertionSpec, answer: str, artifacts_dir: Path | None) -> str | Outcome:
    """The text a text check reads: the answer, or a named artifact's content."""
    if assertion.artifact is None:
        return answer
    expected = f"artifact {assertion.artifact} readable as text"
    if artifacts_dir is None:
        return Outcome(False, expected, "the run has no artifacts folder")
    try:
        path = safe_join(artifacts_dir, assertion.artifact)
    except UnsafePath as exc:
        return Outcome(False, expected, str(exc))
    if not path.is_file():
        return Outcome(False, expected, f"{assertion.artifact} is missing")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return Outcome(False, expected, f"{assertion.artifact} is not UTF-8 (byte {exc.start})")


def _value(assertion: AssertionSpec, kind: AssertionType, citations: Mapping[str, str] | None) -> object:
    """The value the check receives: the regex engine and the suite's artifact contract folded in."""
    if kind.name == "regex" and assertion.engine:
        return Pattern(str(assertion.value), assertion.engine)
    if kind.name == "sources-resolve" and assertion.value is None and citations:
        return dict(citations)
    return assertion.value


def run_assertion(
    assertion: AssertionSpec,
    answer: str,
    artifacts_dir: Path | None,
    dataroom_dir: Path | None,
    citations: Mapping[str, str] | None = None,
) -> AssertionResult:
    """Run one assertion under its time limit and record what it found.

    A check that runs out of time or meets input past a documented limit
    raises :class:`CheckAborted`: the eval is an error, never a pass or a
    plain failure.
    """
    kind, negated = _kind(assertion)
    text = _text_for(assertion, answer, artifacts_dir) if kind.target == "text" else ""
    if isinstance(text, Outcome):
        outcome = text
    else:
        given = CheckInput(text, artifacts_dir, dataroom_dir, assertion.artifact, assertion.threshold)
        with time_limit(assertion.timeout, f"the {assertion.type} assertion"):
            outcome = kind.check(_value(assertion, kind, citations), given)
        outcome = negate(outcome) if negated else outcome
    return AssertionResult(
        type=assertion.type,
        line=assertion.line,
        passed=outcome.passed,
        score=outcome.value,
        weight=assertion.weight,
        expected=outcome.expected,
        seen=outcome.seen,
        metric=assertion.metric,
        artifact=assertion.artifact,
    )


def literal_verdict(spec: EvalSpec, results: list[AssertionResult]) -> LiteralVerdict:
    """Combine assertion results the way Promptfoo does."""
    counted = [r for r in results if r.weight > 0]
    total = sum(r.weight for r in counted)
    score = sum(r.score * r.weight for r in counted) / total if total else 1.0
    failed = [r for r in counted if not r.passed]
    if spec.assertion_threshold is None:
        passed = not failed
        rule = "all assertions must pass"
    else:
        passed = score >= spec.assertion_threshold
        rule = f"weighted score must reach {spec.assertion_threshold:g}"
    explanation = f"{len(counted) - len(failed)}/{len(counted)} assertions passed, score {score:.2f} ({rule})"
    return LiteralVerdict(passed, score, explanation, tuple(results), _named_scores(counted))


def _named_scores(results: list[AssertionResult]) -> dict[str, float]:
    groups: dict[str, list[AssertionResult]] = defaultdict(list)
    for result in results:
        if result.metric:
            groups[result.metric].append(result)
    return {
        name: sum(r.score * r.weight for r in rs) / sum(r.weight for r in rs) for name, rs in sorted(groups.items())
    }


def evaluate_literals(
    spec: EvalSpec, answer: str, artifacts_dir: Path | None, dataroom_dir: Path | None
) -> LiteralVerdict:
    """Run every literal assertion of ``spec`` and combine them.

    Raises :class:`CheckAborted` naming the eval, its file and the assertion's
    line when a check cannot reach a verdict; the item reports it as an error.
    """
    results = []
    for assertion in spec.assertions:
        try:
            results.append(run_assertion(assertion, answer, artifacts_dir, dataroom_dir, spec.citations))
        except CheckAborted as exc:
            message = exc.message if isinstance(exc, CheckTimedOut) else f"{assertion.type} assertion: {exc.message}"
            raise type(exc)(message, path=spec.path, line=assertion.line) from None
    return literal_verdict(spec, results)
