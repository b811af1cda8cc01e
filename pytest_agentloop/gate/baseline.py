"""Baselines and the per-eval comparison that decides a gate in ``regressions`` mode.

A baseline is an exported results file, a run id (or unique prefix) or
``latest``: the newest run whose results cover every eval this run selected.
When no run covers the selection, the newest run is used and the summary says
which evals it lacked. Evals a run deselected (``-k``, ``-m``,
``--agentloop-split``) are neither new nor removed on either side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.gate.history import History
from pytest_agentloop.results import EvalResult, Outcome, Selection

EXPORT_FORMAT = 2
LATEST = "latest"


@dataclass(frozen=True)
class Baseline:
    """Results to compare against, where they came from, and what that run left out."""

    ref: str
    results: tuple[EvalResult, ...]
    selection: Selection = field(default_factory=Selection)
    lacking: tuple[str, ...] = ()
    """Evals of the current selection the baseline run has no result for (``latest`` without a covering run)."""


def export_document(run: dict[str, Any], results: list[EvalResult], selection: Selection | None = None) -> str:
    """The JSON a run is exported as (what ``--agentloop-baseline=FILE`` reads)."""
    document = {
        "format": EXPORT_FORMAT,
        "run": run,
        "selection": (selection or Selection()).to_json(),
        "results": [r.to_json() for r in results],
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def is_file_ref(ref: str) -> bool:
    """Whether ``ref`` names an exported file rather than a run."""
    path = Path(ref)
    return path.suffix == ".json" or path.is_file()


def load_export(path: Path) -> Baseline:
    """An exported results file; any problem is an :class:`AgentloopError` naming the file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or document.get("format", 1) not in (1, EXPORT_FORMAT):
            raise ValueError(f"unknown export format {document.get('format') if isinstance(document, dict) else ''!r}")
        results = tuple(EvalResult.from_json(r) for r in document["results"])
        selection = Selection.from_json(document.get("selection"))
        run_id = (document.get("run") or {}).get("run_id", "?")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AgentloopError(
            f"baseline is not a readable results export ({type(exc).__name__}: {exc}); "
            "make one with `agentloop export RUN -o FILE`",
            path=path,
        ) from None
    return Baseline(f"{path} (run {run_id})", results, selection)


def check_ref(ref: str, history: History, current_run: str | None = None) -> None:
    """Fail early (before any eval runs) when ``ref`` cannot give a baseline."""
    if is_file_ref(ref):
        load_export(Path(ref))
        return
    if not history.exists():
        raise AgentloopError(
            f"baseline {ref!r} asked for, but there is no run history at {history.path} yet; "
            "run once without --agentloop-baseline to record a run"
        )
    if history.resolve(ref, exclude=current_run) is None:
        raise AgentloopError(f"no run {ref!r} in the history at {history.path}; see `agentloop runs`")


def load_baseline(ref: str, history: History, selected: list[str], current_run: str | None = None) -> Baseline:
    """The baseline for a run that selected the evals ``selected``."""
    if is_file_ref(ref):
        return load_export(Path(ref))
    if ref == LATEST:
        return _latest_covering(history, set(selected), current_run)
    run_id = history.resolve(ref, exclude=current_run)
    if run_id is None:
        raise AgentloopError(f"no run {ref!r} in the history at {history.path}; see `agentloop runs`")
    return Baseline(run_id, tuple(history.results(run_id)), history.selection(run_id))


def _latest_covering(history: History, selected: set[str], current_run: str | None) -> Baseline:
    runs = [r.run_id for r in history.runs() if r.run_id != current_run]
    if not runs:
        raise AgentloopError(f"no run in the history at {history.path} to use as the 'latest' baseline")
    for run_id in runs:
        if selected <= history.evaluated(run_id):
            return Baseline(f"{run_id} (latest run covering this selection)", *_run_data(history, run_id))
    newest = runs[0]
    results, selection = _run_data(history, newest)
    lacking = tuple(sorted(selected - {r.nodeid for r in results}))
    return Baseline(f"{newest} (latest run; no run covers this selection)", results, selection, lacking)


def _run_data(history: History, run_id: str) -> tuple[tuple[EvalResult, ...], Selection]:
    return tuple(history.results(run_id)), history.selection(run_id)


@dataclass
class SplitDiff:
    """How one split moved against the baseline (node ids)."""

    regressions: list[str] = field(default_factory=list)
    newly_passing: list[str] = field(default_factory=list)
    still_failing: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    flaky: list[str] = field(default_factory=list)
    not_in_baseline: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Sizes of each list."""
        return {name: len(items) for name, items in vars(self).items()}


def compare(current: list[EvalResult], baseline: Baseline, selection: Selection | None = None) -> dict[str, SplitDiff]:
    """Per split: regressions, new passes, still failing, new, removed, flaky, and evals the baseline did not run."""
    before = {r.nodeid: r for r in baseline.results}
    skipped_before = set(baseline.selection.deselected)
    diffs: dict[str, SplitDiff] = {}
    for result in sorted(current, key=lambda r: r.nodeid):
        diff = diffs.setdefault(result.split, SplitDiff())
        old = before.get(result.nodeid)
        if result.flaky or (old is not None and old.flaky):
            diff.flaky.append(result.nodeid)
        if old is None:
            (diff.not_in_baseline if result.nodeid in skipped_before else diff.new).append(result.nodeid)
        elif old.passed and result.broken:
            diff.regressions.append(result.nodeid)
        elif old.broken and result.passed:
            diff.newly_passing.append(result.nodeid)
        elif old.broken and result.broken:
            diff.still_failing.append(result.nodeid)
    for old in _removed(current, baseline, selection or Selection()):
        diffs.setdefault(old.split, SplitDiff()).removed.append(old.nodeid)
    return diffs


def _removed(current: list[EvalResult], baseline: Baseline, selection: Selection) -> list[EvalResult]:
    """Baseline evals gone from a file this run collected (deselected ones are not gone)."""
    present = {r.nodeid for r in current} | set(selection.selected) | set(selection.deselected)
    files = {n.split("::")[0] for n in present}
    return [
        old
        for old in sorted(baseline.results, key=lambda r: r.nodeid)
        if old.nodeid not in present and old.nodeid.split("::")[0] in files
    ]


def annotate(results: list[EvalResult], diffs: dict[str, SplitDiff]) -> list[EvalResult]:
    """Each result with its place in the comparison (``regressions``, ``newly_passing``, ... or ``unchanged``)."""
    status: dict[str, str] = {}
    for diff in diffs.values():
        for name in ("new", "not_in_baseline", "still_failing", "newly_passing", "regressions", "flaky"):
            for nodeid in getattr(diff, name):
                status.setdefault(nodeid, name)
    return [replace(r, baseline_status=status.get(r.nodeid, "unchanged")) for r in results]


@dataclass(frozen=True)
class GateVerdict:
    """Whether the gate passes, every reason it does not, and the failures it excused."""

    passed: bool
    reasons: tuple[str, ...]
    excused: tuple[str, ...] = ()


def decide(current: list[EvalResult], diffs: dict[str, SplitDiff] | None) -> GateVerdict:
    """``regressions`` policy: regressions, errors and must-pass failures fail; older failures do not.

    An error (judge fault, missing verdict, unreadable trace) always fails, whatever the baseline said.
    """
    reasons = [f"error: {r.nodeid}" for r in current if r.outcome is Outcome.ERROR]
    reasons += [f"must-pass failed: {r.nodeid}" for r in current if r.must_pass and r.broken]
    failed = [r.nodeid for r in current if r.outcome is Outcome.FAILED and not r.must_pass]
    if diffs is None:
        reasons += [f"failed (no baseline to call it pre-existing): {n}" for n in failed]
        excused: list[str] = []
    else:
        regressions = [n for d in diffs.values() for n in d.regressions]
        reasons += [f"regression: {n}" for n in regressions]
        still = {n for d in diffs.values() for n in d.still_failing}
        reasons += [
            f"failed (not failing in the baseline): {n}" for n in failed if n not in still and n not in regressions
        ]
        excused = [n for n in failed if n in still]
    return GateVerdict(not reasons, tuple(dict.fromkeys(reasons)), tuple(excused))
