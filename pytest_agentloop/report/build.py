"""ReportInputs from what a session or the run history holds: result records, eval files, the gate."""

from __future__ import annotations

import inspect
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.gate.baseline import SplitDiff, compare, load_baseline
from pytest_agentloop.gate.history import History, RunRow
from pytest_agentloop.report.model import (
    DIFF_KINDS,
    BaselineDiff,
    EvalRow,
    HandoffView,
    RunInfo,
    RunPoint,
    Trends,
)
from pytest_agentloop.report.traces import TEXT_LIMIT, cut
from pytest_agentloop.results import PYTHON_SCORING, AssertionResult, EvalResult
from pytest_agentloop.spec import EvalSpec, load_suite

TREND_RUNS = 20  # runs shown in the trend and in each eval's strip
MAX_EVAL_FILE_BYTES = 10_000_000


class Specs:
    """Eval definitions by node id (rubric, threshold, expected, line): those given, else each eval file read once."""

    def __init__(self, root: Path, known: dict[str, EvalSpec] | None = None) -> None:
        self.root = root
        self.known = known or {}
        self._files: dict[str, dict[str, EvalSpec]] = {}

    def get(self, nodeid: str) -> EvalSpec | None:
        """The definition behind ``nodeid``, or None (a Python eval, or a file that no longer loads)."""
        if nodeid in self.known:
            return self.known[nodeid]
        file, _, eval_id = nodeid.partition("::")
        if file not in self._files:
            try:
                suite = load_suite(self.root / file, MAX_EVAL_FILE_BYTES)
                self._files[file] = {spec.id: spec for spec in suite.evals}
            except (AgentloopError, OSError):
                self._files[file] = {}
        return self._files[file].get(eval_id)


def _assertion(item: Any) -> AssertionResult:
    """An assertion result (a dataclass or its JSON form) as a report row."""
    return AssertionResult.from_json(item) if isinstance(item, dict) else item


def eval_row(result: EvalResult, spec: EvalSpec | None) -> EvalRow:
    """One result record, with its definition's rubric and threshold when the eval file is at hand."""
    judge_reason = str(getattr(result, "judge_reason", "") or "")
    if not judge_reason and result.passed and result.verdict_source:
        judge_reason = result.explanation
    return EvalRow(
        nodeid=result.nodeid,
        eval_id=result.eval_id,
        title=result.title,
        outcome=result.outcome.value,
        score=result.score,
        explanation=result.explanation,
        tags=tuple(result.tags),
        split=result.split,
        must_pass=result.must_pass,
        scoring=result.scoring,
        duration=result.duration,
        verdict_source=result.verdict_source,
        repeats=result.repeats,
        flaky=result.flaky,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        baseline_status=result.baseline_status,
        trace_id=result.trace_id,
        trace_label=result.trace_label,
        trace_store=getattr(result, "trace_store", None),
        line=spec.line if spec else None,
        rubric=spec.rubric if spec else None,
        threshold=spec.threshold if spec and spec.scoring.needs_judge else None,
        expected=spec.expected if spec else "",
        judge_reason=judge_reason,
        assertions=tuple(_assertion(a) for a in getattr(result, "assertions", ()) or ()),
    )


def rows_of(results: list[EvalResult], root: Path, known: dict[str, EvalSpec] | None = None) -> tuple[EvalRow, ...]:
    """Report rows for results; definitions from ``known`` (collected items), else the eval files under ``root``."""
    specs = Specs(root, known)
    return tuple(eval_row(r, None if r.scoring == PYTHON_SCORING else specs.get(r.nodeid)) for r in results)


def diff_of(ref: str, diffs: dict[str, SplitDiff]) -> BaselineDiff:
    """The gate's per-split comparison as plain data."""
    return BaselineDiff(ref, {s: {k: tuple(getattr(d, k, ())) for k in DIFF_KINDS} for s, d in diffs.items()})


def diff_from_statuses(ref: str, results: list[EvalResult]) -> BaselineDiff | None:
    """The comparison rebuilt from the statuses stored with each result (removed evals are not stored)."""
    if not any(r.baseline_status for r in results):
        return None
    splits: dict[str, dict[str, list[str]]] = {}
    for result in results:
        kinds = splits.setdefault(result.split, {k: [] for k in DIFF_KINDS})
        if result.baseline_status in kinds:
            kinds[result.baseline_status].append(result.nodeid)
        if result.flaky and result.baseline_status != "flaky":
            kinds["flaky"].append(result.nodeid)
    return BaselineDiff(ref, {s: {k: tuple(v) for k, v in kinds.items()} for s, kinds in splits.items()})


def trends_of(history: History, nodeids: set[str], upto: str | None = None, runs: int = TREND_RUNS) -> Trends:
    """Pass rate per split for the last ``runs`` runs (up to run ``upto``), and each current eval's strip."""
    if not history.path.exists():
        return Trends()
    recorded = history.runs()
    ids = [r.run_id for r in recorded]
    if upto is not None:
        recorded = recorded[ids.index(upto) :] if upto in ids else []
    chosen = list(reversed(recorded[:runs]))
    if not chosen:
        return Trends()
    index = {r.run_id: i for i, r in enumerate(chosen)}
    counts: list[dict[str, Counter[str]]] = [{} for _ in chosen]
    per_eval: dict[str, list[tuple[int, str, float | None]]] = {}
    for run_id, nodeid, split, outcome, score in outcomes(history, list(index)):
        at = index[run_id]
        counter = counts[at].setdefault(split, Counter())
        counter["total"] += 1
        counter["passed"] += outcome == "passed"
        if nodeid in nodeids:
            per_eval.setdefault(nodeid, []).append((at, outcome, score))
    points = tuple(
        RunPoint(run.run_id, run.started, {s: (c["passed"], c["total"]) for s, c in counts[i].items()})
        for i, run in enumerate(chosen)
    )
    return Trends(points, {n: tuple((o, s) for _, o, s in sorted(v)) for n, v in per_eval.items()})


Outcomes = list[tuple[str, str, str, str, float | None]]


def outcomes(history: History, run_ids: list[str]) -> Outcomes:
    """(run id, node id, split, outcome, score) of every result of these runs.

    Read with one query over the columns every history version has: building full result
    records for 20 runs of 10,000 evals takes seconds. A database that cannot be read gives no trend.
    """
    marks = ",".join("?" * len(run_ids))
    query = f"SELECT run_id, nodeid, split, outcome, score FROM results WHERE run_id IN ({marks})"
    try:
        with closing(sqlite3.connect(f"{history.path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            return [(str(a), str(b), str(c), str(d), e) for a, b, c, d, e in conn.execute(query, run_ids)]
    except sqlite3.Error:
        return []


def run_info(run: RunRow | None, run_id: str, **extra: Any) -> RunInfo:
    """The run's facts from its history row (when it was recorded), plus what the caller knows."""
    if run is None:
        return RunInfo(run_id=run_id, **extra)
    options = {k: str(v) for k, v in sorted(run.options.items()) if v not in (None, "None", "", "()")}
    base: dict[str, Any] = {
        **run.facts(),
        "judge_model": options.get("judge_model"),
        "judge_mode": options.get("judge_mode"),
        "gate_policy": options.get("gate"),
        "options": options,
    }
    base.update(extra)
    return RunInfo(**base)


def handoff_view(path: Path, report_path: Path, limit: int = TEXT_LIMIT) -> HandoffView | None:
    """The handoff, linked relative to the report and embedded (cut at ``limit``)."""
    if not path.is_file():
        return None
    text, truncated = cut(path.read_text(encoding="utf-8", errors="replace"), limit)
    try:
        shown = path.resolve().relative_to(report_path.resolve().parent).as_posix()
    except ValueError:
        shown = str(path)
    return HandoffView(shown, text, truncated)


def history_diff(history: History, run_id: str, results: list[EvalResult], baseline: str | None) -> BaselineDiff | None:
    """For a recorded run: a fresh comparison with ``baseline``, else the statuses stored with the run."""
    if baseline:
        selected = {"selected": [r.nodeid for r in results]}
        # Newer gates pick a baseline that covers the run's selection; older ones take none.
        wants = "selected" in inspect.signature(load_baseline).parameters
        loaded = load_baseline(baseline, history, current_run=run_id, **(selected if wants else {}))
        return diff_of(loaded.ref, compare(results, loaded))
    stored = next((r for r in history.runs() if r.run_id == run_id), None)
    recorded = str(stored.options.get("baseline")) if stored else "None"
    ref = recorded if recorded not in ("None", "") else "the run's baseline"
    return diff_from_statuses(ref, results)
