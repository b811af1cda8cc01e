"""The one place assertion types are registered and looked up.

An assertion family is a module that calls :func:`register` for each type it
offers. Every type gets a negated ``not-<type>`` form unless it opts out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Target = Literal["text", "artifacts"]


@dataclass(frozen=True)
class CheckInput:
    """What a check looks at: the graded text and where the run's files are."""

    text: str
    artifacts_dir: Path | None
    dataroom_dir: Path | None
    artifact: str | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class Outcome:
    """What one check found: pass/fail, a 0-1 score, and human-readable evidence."""

    passed: bool
    expected: str
    seen: str
    score: float | None = None

    @property
    def value(self) -> float:
        """The score, defaulting to 1.0 for a pass and 0.0 for a failure."""
        if self.score is not None:
            return self.score
        return 1.0 if self.passed else 0.0


Check = Callable[[object, CheckInput], Outcome]
Validate = Callable[[object], object]
"""Raises ValueError for a bad value; whatever it returns is ignored."""


@dataclass(frozen=True)
class AssertionType:
    """A registered assertion type: how to validate its value and how to run it."""

    name: str
    check: Check
    validate: Validate
    target: Target = "text"
    negatable: bool = True
    needs_artifact: bool = False


_REGISTRY: dict[str, AssertionType] = {}
NEGATION_PREFIX = "not-"


def register(kind: AssertionType) -> AssertionType:
    """Add an assertion type; a second registration of a name is a bug."""
    if kind.name in _REGISTRY:
        raise RuntimeError(f"assertion type {kind.name!r} registered twice")
    _REGISTRY[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a type registered by a plugin (at the end of its session)."""
    _REGISTRY.pop(name, None)


def lookup(name: str) -> tuple[AssertionType, bool] | None:
    """The type for ``name`` and whether it is negated, or None if unknown."""
    if name in _REGISTRY:
        return _REGISTRY[name], False
    if name.startswith(NEGATION_PREFIX):
        base = _REGISTRY.get(name[len(NEGATION_PREFIX) :])
        if base is not None and base.negatable:
            return base, True
    return None


def names() -> list[str]:
    """Every accepted type name, negated forms included, sorted."""
    found = set(_REGISTRY)
    found.update(NEGATION_PREFIX + k for k, v in _REGISTRY.items() if v.negatable)
    return sorted(found)


def negate(outcome: Outcome) -> Outcome:
    """The outcome of the ``not-`` form of a check."""
    return Outcome(
        passed=not outcome.passed,
        expected=f"NOT ({outcome.expected})",
        seen=outcome.seen,
        score=None if outcome.score is None else 1.0 - outcome.score,
    )
