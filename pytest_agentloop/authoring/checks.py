"""Checks on generated eval definitions: collection's own validation, human verdicts, duplicates.

- :func:`load_text` runs the very code collection runs (``spec.load_suite``
  and collection's trace check) on the exact text to be written, from a
  temporary file beside the target so relative paths resolve the same.
- :func:`contradictions` runs each literal assertion on its source trace's
  output: one that fails on an output a person rated ``good``, or an eval whose
  checks all pass on an output a person rated ``bad``, contradicts the human.
- :func:`near_duplicate` finds an existing eval on the same trace with nearly the
  same rubric or the same assertions.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rapidfuzz import fuzz

from pytest_agentloop.authoring.feedback import Feedback
from pytest_agentloop.collect import _check_traces
from pytest_agentloop.evaluate import run_assertion
from pytest_agentloop.fileio import write_atomic
from pytest_agentloop.spec import EvalSpec, SuiteSpec, load_suite
from pytest_agentloop.traces.store import TraceStore

MAX_BYTES = 10_000_000
RUBRIC_SIMILARITY = 90.0


def _temp_beside(folder: Path, text: str) -> Path:
    """A file beside the target, so relative paths in the eval file (traces, sources root) resolve as there."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=".agentloop-generate.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(name)


def _load(path: Path, store: TraceStore) -> SuiteSpec:
    suite = load_suite(path, MAX_BYTES)
    _check_traces(suite, store)
    return suite


def load_text(text: str, folder: Path, store: TraceStore) -> SuiteSpec:
    """Validate ``text`` as an eval file in ``folder``; raises collection's own SpecError."""
    path = _temp_beside(folder, text)
    try:
        return _load(path, store)
    finally:
        path.unlink(missing_ok=True)


def write_checked(target: Path, text: str, store: TraceStore) -> SuiteSpec:
    """Validate ``text`` and replace ``target`` with it atomically (keeping its mode); nothing half-written."""
    suite = load_text(text, target.parent, store)
    write_atomic(target, text)
    return suite


@dataclass(frozen=True)
class Contradiction:
    """A literal check that disagrees with a person's rating of the output."""

    feedback_id: str
    rating: str
    detail: str


def contradictions(
    spec: EvalSpec, suite: SuiteSpec, store: TraceStore, ratings: Sequence[Feedback]
) -> list[Contradiction]:
    """Checks of ``spec`` that fail on an output rated good, or all pass on one rated bad."""
    if not spec.assertions or not ratings:
        return []
    record = store.get(spec.trace)
    artifacts = record.artifacts_dir if record.artifacts_dir.is_dir() else None
    results = [run_assertion(a, record.answer, artifacts, suite.dataroom_dir) for a in spec.assertions]
    found = []
    for item in ratings:
        if item.rating == "good":
            found += [
                Contradiction(item.id, "good", f"{r.type} fails: expected {r.expected}; seen {r.seen}")
                for r in results
                if not r.passed and r.weight > 0
            ]
        elif item.rating == "bad" and all(r.passed for r in results):
            found.append(Contradiction(item.id, "bad", f"all {len(results)} literal checks pass on it"))
    return found


def _assertion_set(spec: EvalSpec) -> frozenset[str]:
    return frozenset(json.dumps([a.type, a.value, a.artifact], sort_keys=True, default=str) for a in spec.assertions)


def near_duplicate(spec: EvalSpec, existing: Iterable[EvalSpec], store: TraceStore) -> EvalSpec | None:
    """An existing eval on the same trace with nearly the same rubric, or the same assertions."""
    trace = store.get(spec.trace).trace_id
    for other in existing:
        if other.trace not in store or store.get(other.trace).trace_id != trace:
            continue
        if spec.rubric and other.rubric and fuzz.token_sort_ratio(spec.rubric, other.rubric) >= RUBRIC_SIMILARITY:
            return other
        if spec.assertions and _assertion_set(spec) == _assertion_set(other):
            return other
    return None
