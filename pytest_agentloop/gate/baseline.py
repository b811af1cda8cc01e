"""Baselines and the per-eval comparison that decides a gate in ``regressions`` mode."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.gate.history import History
from pytest_agentloop.results import EvalResult

EXPORT_FORMAT = 1


@dataclass(frozen=True)
class Baseline:
    """Results to compare against, and where they came from."""

    ref: str
    results: tuple[EvalResult, ...]


def export_document(run: dict[str, Any], results: list[EvalResult]) -> str:
    """The JSON a run is exported as (what `--agentloop-baseline=FILE` reads)."""
    document = {"format": EXPORT_FORMAT, "run": run, "results": [r.to_json() for r in results]}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def load_baseline(ref: str, history: History, current_run: str | None = None) -> Baseline:
    """``ref`` is an exported results file, a run id (or unique prefix), or ``latest``."""
    path = Path(ref)
    if path.suffix == ".json" or path.is_file():
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            results = tuple(EvalResult.from_json(r) for r in document["results"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise AgentloopError(
                f"not a results export ({type(exc).__name__}: {exc}); make one with `agentloop export RUN`", path=path
            ) from None
        return Baseline(f"{path} (run {document.get('run', {}).get('run_id', '?')})", results)
    run_id = history.resolve(ref, exclude=current_run)
    if run_id is None:
        raise AgentloopError(f"no run {ref!r} in the history at {history.path}; see `agentloop runs`")
    return Baseline(run_id, tuple(history.results(run_id)))


@dataclass
class SplitDiff:
    """How one split moved against the baseline (node ids)."""

    regressions: list[str] = field(default_factory=list)
    newly_passing: list[str] = field(default_factory=list)
    still_failing: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    flaky: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Sizes of each list."""
        return {name: len(items) for name, items in vars(self).items()}


def compare(current: list[EvalResult], baseline: Baseline) -> dict[str, SplitDiff]:
    """Per split: regressions, new passes, still failing, new, removed and flaky evals."""
    before = {r.nodeid: r for r in baseline.results}
    files = {r.nodeid.split("::")[0] for r in current}
    diffs: dict[str, SplitDiff] = {}
    for result in sorted(current, key=lambda r: r.nodeid):
        diff = diffs.setdefault(result.split, SplitDiff())
        old = before.get(result.nodeid)
        if result.flaky or (old is not None and old.flaky):
            diff.flaky.append(result.nodeid)
        if old is None:
            diff.new.append(result.nodeid)
        elif old.passed and result.broken:
            diff.regressions.append(result.nodeid)
        elif old.broken and result.passed:
            diff.newly_passing.append(result.nodeid)
        elif old.broken and result.broken:
            diff.still_failing.append(result.nodeid)
    seen = {r.nodeid for r in current}
    for old in sorted(baseline.results, key=lambda r: r.nodeid):
        if old.nodeid not in seen and old.nodeid.split("::")[0] in files:
            diffs.setdefault(old.split, SplitDiff()).removed.append(old.nodeid)
    return diffs


def annotate(results: list[EvalResult], diffs: dict[str, SplitDiff]) -> list[EvalResult]:
    """Each result with its place in the comparison (``regressions``, ``newly_passing``, ... or ``unchanged``)."""
    status: dict[str, str] = {}
    for diff in diffs.values():
        for name in ("new", "still_failing", "newly_passing", "regressions", "flaky"):
            for nodeid in getattr(diff, name):
                status.setdefault(nodeid, name)
    return [replace(r, baseline_status=status.get(r.nodeid, "unchanged")) for r in results]


@dataclass(frozen=True)
class GateVerdict:
    """Whether the gate passes, and every reason it does not."""

    passed: bool
    reasons: tuple[str, ...]


def decide(current: list[EvalResult], diffs: dict[str, SplitDiff] | None) -> GateVerdict:
    """``regressions`` policy: regressions, errors and must-pass failures fail; older failures do not."""
    reasons = [f"error: {r.nodeid}" for r in current if r.outcome.value == "error"]
    reasons += [f"must-pass failed: {r.nodeid}" for r in current if r.must_pass and r.broken]
    if diffs is None:
        reasons += [
            f"failed (no baseline to call it pre-existing): {r.nodeid}"
            for r in current
            if r.outcome.value == "failed" and not r.must_pass
        ]
    else:
        reasons += [f"regression: {n}" for d in diffs.values() for n in d.regressions]
    return GateVerdict(not reasons, tuple(dict.fromkeys(reasons)))
