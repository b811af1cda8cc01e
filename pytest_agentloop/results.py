"""The one result record every stage passes on: plain, JSON-safe data."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


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
    """One eval's row: what the gate, history and handoff read."""

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

    @property
    def passed(self) -> bool:
        """Whether the eval passed."""
        return self.outcome is Outcome.PASSED

    @property
    def broken(self) -> bool:
        """Failed or errored (a skip is neither)."""
        return self.outcome in (Outcome.FAILED, Outcome.ERROR)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form (for xdist, JUnit properties and files)."""
        data = asdict(self)
        data["outcome"] = self.outcome.value
        data["tags"] = list(self.tags)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalResult:
        """Inverse of :meth:`to_json`."""
        values = dict(data)
        values["outcome"] = Outcome(values["outcome"])
        values["tags"] = tuple(values.get("tags", ()))
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in values.items() if k in known})
