"""Recorded verdicts: one JSON object a line, beside the eval files, safe to share.

Appends take an exclusive ``flock`` and go out in one ``write`` followed by
``fsync``, so pytest-xdist workers never interleave lines and a killed run
leaves at most a torn final line, which readers skip and report. Rewrites
(sorting, pruning) go to a temporary file that replaces the store atomically.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HUMAN_MODEL = "human"


def subject_key(rubric: str, output: str) -> str:
    """What is graded, independent of who grades it."""
    return _digest("subject", rubric, output)


def verdict_key(rubric: str, output: str, judge_model: str, prompt_version: str) -> str:
    """The issue's key: rubric, graded output, judge model and judge prompt version."""
    return _digest("verdict", rubric, output, judge_model, prompt_version)


def human_key(rubric: str, output: str) -> str:
    """Key of a person's verdict on this rubric and output."""
    return verdict_key(rubric, output, HUMAN_MODEL, "-")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def now() -> str:
    """UTC time, seconds precision, ``Z`` suffix."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Verdict:
    """One stored verdict and what produced it."""

    key: str
    subject: str
    eval_file: str
    eval_id: str
    passed: bool
    score: float
    reason: str
    source: str
    judge_model: str
    prompt_version: str
    created: str
    sample: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None

    @property
    def is_human(self) -> bool:
        """Whether a person gave this verdict."""
        return self.source.startswith("human:")

    def to_line(self) -> str:
        """The JSON line, keys sorted so the file diffs cleanly."""
        data = {k: v for k, v in asdict(self).items() if v is not None}
        data["pass"] = data.pop("passed")
        return json.dumps(data, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        """Inverse of :meth:`to_line` (raises KeyError/TypeError on bad data)."""
        values = dict(data)
        values["passed"] = values.pop("pass")
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in values.items() if k in known})

    def sort_key(self) -> tuple[str, str, str, int, str]:
        """Stable file order: by eval, then who, then sample, then time."""
        return (self.eval_file, self.eval_id, self.source, self.sample, self.created)


class VerdictStore:
    """The verdict file of one folder of eval files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.skipped_lines: list[int] = []

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def read(self) -> list[Verdict]:
        """Every readable verdict; unreadable lines are skipped and their numbers kept."""
        self.skipped_lines = []
        if not self.path.is_file():
            return []
        verdicts = []
        with self.path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    verdicts.append(Verdict.from_json(json.loads(line)))
                except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                    self.skipped_lines.append(number)
        return verdicts

    def append(self, verdicts: Iterable[Verdict]) -> None:
        """Add verdicts at the end, whole lines only, durable before returning."""
        payload = "".join(v.to_line() + "\n" for v in verdicts).encode()
        if not payload:
            return
        with self._locked():
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                self._heal_torn_tail(fd)
                os.write(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)

    def _heal_torn_tail(self, fd: int) -> None:
        """Start on a fresh line if a killed writer left a line without its newline."""
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            os.write(fd, b"\n")

    def rewrite(self, keep: Callable[[Verdict], bool] = lambda v: True) -> int:
        """Sort, drop duplicates and what ``keep`` rejects, replace atomically; returns lines removed."""
        with self._locked():
            current = self.read()
            kept = sorted({v.to_line(): v for v in current if keep(v)}.values(), key=Verdict.sort_key)
            text = "".join(v.to_line() + "\n" for v in kept)
            if self.path.is_file() and self.path.read_text(encoding="utf-8", errors="replace") == text:
                return 0
            with tempfile.NamedTemporaryFile(
                "w", dir=self.path.parent, prefix=f".{self.path.name}", suffix=".tmp", delete=False, encoding="utf-8"
            ) as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(handle.name, self.path)
            return len(current) - len(kept)


@dataclass(frozen=True)
class Lookup:
    """Stored verdicts relevant to one eval's rubric and output."""

    human: Verdict | None
    model: dict[int, Verdict]


def index(verdicts: Iterable[Verdict]) -> dict[str, list[Verdict]]:
    """Verdicts grouped by key, oldest first."""
    grouped: dict[str, list[Verdict]] = {}
    for verdict in sorted(verdicts, key=lambda v: v.created):
        grouped.setdefault(verdict.key, []).append(verdict)
    return grouped


def find(grouped: dict[str, list[Verdict]], human: str, model: str) -> Lookup:
    """The latest human verdict and the latest model verdict per sample."""
    people = [v for v in grouped.get(human, []) if v.is_human]
    samples = {v.sample: v for v in grouped.get(model, []) if not v.is_human}
    return Lookup(people[-1] if people else None, samples)
