"""Assigning evals to the optimization and holdout sets: deterministic, stratified per tag, written back.

Each eval is stratified by its first tag. Within a tag, evals are ordered by a
hash of file name and id, and the first ``round(n * fraction)`` go to the
holdout set (at least one, and at least one left to tune on, when the tag has
two or more). Edits are textual, so comments and layout survive.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from pytest_agentloop.assertions.registry import AssertionRegistry, using
from pytest_agentloop.fileio import write_atomic
from pytest_agentloop.spec import EvalSpec, Split, load_suite

_SPLIT_VALUE = re.compile(r"(\bsplit:\s*)([A-Za-z_]+)")


@dataclass(frozen=True)
class Assignment:
    """Where one eval should be, and where it is."""

    spec: EvalSpec
    target: Split

    @property
    def changes(self) -> bool:
        """Whether the file needs an edit."""
        return self.spec.split is not self.target or "split" not in self.spec.field_lines


def _order(spec: EvalSpec) -> str:
    return hashlib.sha256(f"{spec.path.name}::{spec.id}".encode()).hexdigest()


def assign(specs: list[EvalSpec], fraction: float) -> list[Assignment]:
    """Holdout choice per tag (the first tag; untagged evals form one group)."""
    groups: dict[str, list[EvalSpec]] = defaultdict(list)
    for spec in specs:
        groups[spec.tags[0] if spec.tags else ""].append(spec)
    assignments = []
    for members in groups.values():
        ordered = sorted(members, key=_order)
        count = round(len(ordered) * fraction)
        if len(ordered) >= 2:
            count = min(max(count, 1), len(ordered) - 1)
        assignments += [
            Assignment(s, Split.HOLDOUT if i < count else Split.OPTIMIZATION) for i, s in enumerate(ordered)
        ]
    return sorted(assignments, key=lambda a: (str(a.spec.path), a.spec.line))


def _edit(lines: list[str], assignment: Assignment) -> None:
    spec, value = assignment.spec, assignment.target.value
    if "split" in spec.field_lines:
        index = spec.field_lines["split"] - 1
        lines[index] = _SPLIT_VALUE.sub(lambda m: m.group(1) + value, lines[index], count=1)
        return
    index = spec.field_lines["id"] - 1
    line = lines[index]
    if "{" in line[: line.index("id:")]:
        lines[index] = line.replace("id:", f"split: {value}, id:", 1)
        return
    indent = line.index("id:")
    lines.insert(index + 1, " " * indent + f"split: {value}\n")


def write_back(assignments: list[Assignment], registry: AssertionRegistry, max_bytes: int) -> list[Path]:
    """Edit every file whose evals move (bottom-up, so line numbers hold); check each file still loads."""
    by_file: dict[Path, list[Assignment]] = defaultdict(list)
    for assignment in assignments:
        if assignment.changes:
            by_file[assignment.spec.path].append(assignment)
    for path, edits in by_file.items():
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        for assignment in sorted(edits, key=lambda a: a.spec.line, reverse=True):
            _edit(lines, assignment)
        original = path.read_text(encoding="utf-8")
        write_atomic(path, "".join(lines))
        try:
            with using(registry):
                load_suite(path, max_bytes)
        except Exception:
            write_atomic(path, original)
            raise
    return sorted(by_file)
