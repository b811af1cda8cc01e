"""The plain records an HTML report is built from (no pytest, no database: easy to make in tests)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pytest_agentloop.results import AssertionResult

# Outcomes per run, one letter each, in the per-eval history strips.
OUTCOME_LETTERS = {"passed": "P", "failed": "F", "error": "E", "skipped": "S"}


AssertionRow = AssertionResult
"""One literal assertion as run: the result record's own type (expected and seen included)."""


@dataclass(frozen=True)
class EvalRow:
    """One eval's result with what a reviewer needs to judge it."""

    nodeid: str
    eval_id: str
    title: str
    outcome: str
    score: float | None = None
    explanation: str = ""
    tags: tuple[str, ...] = ()
    split: str = "optimization"
    must_pass: bool = False
    scoring: str = "deterministic"
    duration: float = 0.0
    verdict_source: str | None = None
    repeats: int = 1
    flaky: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None
    baseline_status: str | None = None
    trace_id: str = ""
    trace_label: str = ""
    trace_store: str | None = None
    line: int | None = None
    rubric: str | None = None
    threshold: float | None = None
    expected: str = ""
    judge_reason: str = ""
    assertions: tuple[AssertionRow, ...] = ()

    @property
    def file(self) -> str:
        """The eval file (or test module) part of the node id."""
        return self.nodeid.split("::")[0]


@dataclass(frozen=True)
class RunInfo:
    """The session the report is about."""

    run_id: str
    started: str = ""
    finished: str = ""
    git_commit: str | None = None
    git_branch: str | None = None
    harness_version: str | None = None
    exit_status: int | None = None
    judge_model: str | None = None
    judge_mode: str | None = None
    gate_policy: str | None = None
    gate_passed: bool | None = None
    gate_reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)


# The baseline diff's lists, most urgent first (names as in gate.baseline.SplitDiff).
DIFF_KINDS = ("regressions", "newly_passing", "still_failing", "new", "removed", "flaky", "not_in_baseline")


@dataclass(frozen=True)
class BaselineDiff:
    """How this run moved against its baseline: per split, per kind, the node ids."""

    ref: str
    splits: Mapping[str, Mapping[str, tuple[str, ...]]]


@dataclass(frozen=True)
class RunPoint:
    """One run in the trend: per split, (passed, total)."""

    run_id: str
    started: str
    splits: Mapping[str, tuple[int, int]]


@dataclass(frozen=True)
class Trends:
    """Pass rate per run (oldest first) and, per node id, its last outcomes and scores (oldest first)."""

    runs: tuple[RunPoint, ...] = ()
    per_eval: Mapping[str, tuple[tuple[str, float | None], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ArtifactView:
    """A file the run wrote: its size, and its text (cut at the limit) when it is text."""

    name: str
    size: int
    text: str | None = None
    truncated: bool = False
    path: str = ""


@dataclass(frozen=True)
class SpanView:
    """One span, placed in its tree."""

    span_id: str
    parent_id: str
    name: str
    kind: str
    start: str
    duration_ms: float | None
    input_tokens: int | None = None
    output_tokens: int | None = None
    model: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class TraceView:
    """A recorded run as the report shows it."""

    trace_id: str
    label: str
    question: str = ""
    answer: str = ""
    answer_size: int = 0
    answer_truncated: bool = False
    answer_path: str = ""
    harness_version: str | None = None
    model: str | None = None
    artifacts: tuple[ArtifactView, ...] = ()
    spans: tuple[SpanView, ...] = ()
    problem: str | None = None


@dataclass(frozen=True)
class HandoffView:
    """The handoff the run wrote: where, and its text when embedded."""

    path: str
    text: str | None = None
    truncated: bool = False


@dataclass(frozen=True)
class ReportInput:
    """Everything one HTML report shows."""

    run: RunInfo
    rows: tuple[EvalRow, ...]
    diff: BaselineDiff | None = None
    trends: Trends = field(default_factory=Trends)
    load_trace: Callable[[EvalRow], TraceView | None] = field(default=lambda row: None)
    handoff: HandoffView | None = None
    title: str = "agentloop report"
