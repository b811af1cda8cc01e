"""The one result record every stage passes on: plain, JSON-safe, versioned data.

An :class:`EvalResult` is made once, where the eval ran (an xdist worker or the
only process), travels to the controller in ``config.workeroutput`` as
:meth:`EvalResult.to_json`, and is what the gate, the run history, exports,
the handoff and the results hook read. Other producers (shards, Promptfoo)
make the same record. JUnit properties are output only; nothing reads them back.

Format 2 added per-assertion results, the trace's store, question and harness
version, the literal and judge scores, the judge's reason and cost; a format-1
record (no ``format`` key) still loads, those fields empty.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, fields
from typing import Any

RESULT_FORMAT = 2
PYTHON_SCORING = "python"
"""The ``scoring`` of a Python eval: a pytest test that reads a recorded run through ``agentloop_trace``."""


class Outcome(enum.StrEnum):
    """How an eval ended, in pytest's words."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class AssertionResult:
    """One literal assertion, run."""

    type: str
    line: int
    passed: bool
    score: float
    weight: float
    expected: str
    seen: str
    metric: str | None = None
    artifact: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AssertionResult:
        """Inverse of ``dataclasses.asdict``; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class LiteralVerdict:
    """What the literal assertions of one eval decided together."""

    passed: bool
    score: float
    explanation: str
    assertions: tuple[AssertionResult, ...] = ()
    named_scores: dict[str, float] = field(default_factory=dict)

    @property
    def failures(self) -> list[AssertionResult]:
        """The assertions that failed and count (weight above zero)."""
        return [a for a in self.assertions if not a.passed and a.weight > 0]


@dataclass(frozen=True)
class EvalResult:
    """One eval's row: what the gate, history, exports and handoff read."""

    eval_id: str
    nodeid: str
    title: str
    trace_id: str
    trace_label: str
    outcome: Outcome
    score: float | None
    explanation: str
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
    run_started: str | None = field(default=None, compare=False)
    eval_file: str = ""
    trace_store: str | None = None
    question: str | None = None
    harness_version: str | None = None
    literal_score: float | None = None
    judge_score: float | None = None
    judge_reason: str | None = None
    cost: float | None = None
    judge_votes: str | None = None
    """``k/n``: how many of the judge's n verdicts passed (None without a rubric verdict)."""
    assertions: tuple[AssertionResult, ...] = ()
    rubric_note: str | None = None
    """Why an eval whose scoring has a rubric has no rubric verdict: e.g. a ``hybrid`` eval's assertions failed,
    so the rubric was not asked. Not a history column."""

    @property
    def passed(self) -> bool:
        """Whether the eval passed."""
        return self.outcome is Outcome.PASSED

    @property
    def broken(self) -> bool:
        """Failed or errored (a skip is neither)."""
        return self.outcome in (Outcome.FAILED, Outcome.ERROR)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form, with ``format`` (for xdist, exports and files).

        Every field is a plain value but the tags and assertions, so a shallow copy does what
        ``dataclasses.asdict`` did at a tenth of the cost (the history writes one per eval).
        """
        data = {name: getattr(self, name) for name in _RESULT_FIELDS}
        data["outcome"] = self.outcome.value
        data["tags"] = list(self.tags)
        data["assertions"] = [asdict(a) for a in self.assertions]
        data["format"] = RESULT_FORMAT
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalResult:
        """Inverse of :meth:`to_json`; reads format 1 and 2. Raises ValueError for a newer format."""
        version = data.get("format", 1)
        if not isinstance(version, int) or version > RESULT_FORMAT:
            raise ValueError(f"result format {version!r} is newer than this plugin reads ({RESULT_FORMAT})")
        values = dict(data)
        values["outcome"] = Outcome(values["outcome"])
        values["tags"] = tuple(values.get("tags") or ())
        values["assertions"] = tuple(AssertionResult.from_json(a) for a in values.get("assertions") or ())
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


_RESULT_FIELDS = tuple(f.name for f in fields(EvalResult))


@dataclass(frozen=True)
class Selection:
    """Which items a run selected and which it deselected (``-k``, ``-m``, ``--agentloop-split``), by node id."""

    selected: tuple[str, ...] = ()
    deselected: tuple[str, ...] = ()

    def to_json(self) -> dict[str, list[str]]:
        """JSON-safe form."""
        return {"selected": list(self.selected), "deselected": list(self.deselected)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Selection:
        """Inverse of :meth:`to_json` (None reads as an unknown, empty selection)."""
        data = data or {}
        return cls(tuple(data.get("selected") or ()), tuple(data.get("deselected") or ()))

    def merged(self, other: Selection) -> Selection:
        """Both selections (xdist workers each report theirs), in first-seen order."""
        selected = tuple(dict.fromkeys([*self.selected, *other.selected]))
        deselected = tuple(dict.fromkeys([*self.deselected, *other.deselected]))
        return Selection(selected, tuple(n for n in deselected if n not in set(selected)))
