"""The one place assertion types are registered and looked up.

A built-in assertion family is a module that calls :func:`register` for each
type it offers. Plugins and conftests add types through the
``pytest_agentloop_assertion_types`` hook; those live in an
:class:`AssertionRegistry` per folder, made active with :func:`using` while a
file is loaded or an eval runs, so no session changes process-wide state.
Every type gets a negated ``not-<type>`` form unless it opts out.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pytest_agentloop.scoped import bound

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


NEGATION_PREFIX = "not-"
_BUILTINS: dict[str, AssertionType] = {}


def register(kind: AssertionType) -> AssertionType:
    """Add a built-in assertion type (called by the built-in families at import; a second name is a bug).

    Types from plugins and conftests come through the ``pytest_agentloop_assertion_types`` hook
    instead, into an :class:`AssertionRegistry` of their own.
    """
    if kind.name in _BUILTINS:
        raise RuntimeError(f"assertion type {kind.name!r} registered twice")
    _BUILTINS[kind.name] = kind
    return kind


class AssertionTypeClash(ValueError):
    """Two sources offer the same assertion type name."""


@dataclass(frozen=True)
class AssertionRegistry:
    """The assertion types one eval file can use: the built-ins plus what its plugins and conftests add.

    Immutable; built per folder at collection time (and by the CLI the same way). Nothing process-wide
    changes when a session adds types.
    """

    extra: tuple[AssertionType, ...] = ()

    @classmethod
    def with_types(cls, kinds: list[AssertionType]) -> AssertionRegistry:
        """Built-ins plus ``kinds``; a name offered twice (or a built-in's name) is an error."""
        seen: dict[str, AssertionType] = {}
        for kind in kinds:
            if kind.name in _BUILTINS or (kind.name in seen and seen[kind.name] is not kind):
                raise AssertionTypeClash(f"assertion type {kind.name!r} is already registered")
            seen[kind.name] = kind
        return cls(tuple(seen.values()))

    def _table(self) -> dict[str, AssertionType]:
        return {**_BUILTINS, **{k.name: k for k in self.extra}}

    def lookup(self, name: str) -> tuple[AssertionType, bool] | None:
        """The type for ``name`` and whether it is negated, or None if unknown."""
        table = self._table()
        if name in table:
            return table[name], False
        if name.startswith(NEGATION_PREFIX):
            base = table.get(name[len(NEGATION_PREFIX) :])
            if base is not None and base.negatable:
                return base, True
        return None

    def names(self) -> list[str]:
        """Every accepted type name, negated forms included, sorted."""
        table = self._table()
        found = set(table)
        found.update(NEGATION_PREFIX + k for k, v in table.items() if v.negatable)
        return sorted(found)

    def merged(self, other: AssertionRegistry) -> AssertionRegistry:
        """Both registries' types (the CLI's view over several folders)."""
        return AssertionRegistry.with_types([*self.extra, *other.extra])


BUILTIN = AssertionRegistry()
_ACTIVE: ContextVar[AssertionRegistry] = ContextVar("agentloop_assertion_types", default=BUILTIN)


def using(registry: AssertionRegistry) -> AbstractContextManager[AssertionRegistry]:
    """Make ``registry`` the one :func:`lookup` and :func:`names` read, for the ``with`` block only."""
    return bound(_ACTIVE, registry)


def active() -> AssertionRegistry:
    """The registry in effect (the built-ins outside any :func:`using` block)."""
    return _ACTIVE.get()


def lookup(name: str) -> tuple[AssertionType, bool] | None:
    """The type for ``name`` in the active registry and whether it is negated, or None if unknown."""
    return _ACTIVE.get().lookup(name)


def names() -> list[str]:
    """Every type name the active registry accepts, sorted."""
    return _ACTIVE.get().names()


def negate(outcome: Outcome) -> Outcome:
    """The outcome of the ``not-`` form of a check."""
    return Outcome(
        passed=not outcome.passed,
        expected=f"NOT ({outcome.expected})",
        seen=outcome.seen,
        score=None if outcome.score is None else 1.0 - outcome.score,
    )
