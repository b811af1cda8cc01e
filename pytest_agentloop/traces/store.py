"""The trace store: recorded agent runs on disk, read by label or trace id.

Layout (format 1)::

    traces/
      spans.jsonl                 HALO span lines for every run (one span a line)
      runs/<label>/record.json    trace_id, label, question, harness_version,
                                  model, created, provenance
      runs/<label>/answer.md      the run's final answer text
      runs/<label>/artifacts/     the files the run wrote
      runs/<label>/spans.jsonl    format 2 (captured runs): the run's own span lines

Record files are small and read when the store opens; answers are read when
an eval needs them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pytest_agentloop.errors import TraceStoreError

STORE_FORMAT = 1
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
RECORD_FIELDS = ("trace_id", "label", "question", "harness_version", "model", "created")


@dataclass(frozen=True)
class TraceRecord:
    """One recorded agent run."""

    trace_id: str
    label: str
    question: str
    harness_version: str
    model: str | None
    created: str
    run_dir: Path
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def artifacts_dir(self) -> Path:
        """Folder holding the files the run wrote."""
        return self.run_dir / "artifacts"

    @cached_property
    def answer(self) -> str:
        """The run's final answer text."""
        path = self.run_dir / "answer.md"
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TraceStoreError(f"run {self.label!r} has no answer.md", path=path) from None
        except UnicodeDecodeError as exc:
            raise TraceStoreError(f"answer is not UTF-8 text (byte {exc.start})", path=path) from None

    def require_artifacts(self) -> Path:
        """The artifacts folder, or a clear error if the recording lacks one."""
        if not self.artifacts_dir.is_dir():
            raise TraceStoreError(
                f"run {self.label!r} (trace {self.trace_id}) has no artifacts folder; "
                "record the run again or restore its artifacts/",
                path=self.artifacts_dir,
            )
        return self.artifacts_dir


def normalize_trace_id(value: str) -> str:
    """The Agents SDK's ``trace_<hex>`` id without its prefix."""
    return value.removeprefix("trace_")


def _load_record(path: Path) -> TraceRecord:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TraceStoreError(f"record is not valid JSON: {exc}", path=path) from None
    if not isinstance(data, dict):
        raise TraceStoreError("record must be a JSON object", path=path)
    missing = [f for f in RECORD_FIELDS if f not in data]
    if missing:
        raise TraceStoreError(f"record lacks {', '.join(missing)}", path=path)
    trace_id = normalize_trace_id(str(data["trace_id"]))
    if not TRACE_ID.match(trace_id):
        raise TraceStoreError(f"trace_id {trace_id!r} is not 32 lowercase hex characters", path=path)
    return TraceRecord(
        trace_id=trace_id,
        label=str(data["label"]),
        question=str(data["question"]),
        harness_version=str(data["harness_version"]),
        model=None if data["model"] is None else str(data["model"]),
        created=str(data["created"]),
        run_dir=path.parent,
        provenance=dict(data.get("provenance") or {}),
    )


class TraceStore:
    """Recorded runs under one root, looked up by label or trace id."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._by_ref: dict[str, TraceRecord] = {}
        self._records: list[TraceRecord] = []
        runs = root / "runs"
        if not runs.is_dir():
            raise TraceStoreError("not a trace store (no runs/ folder)", path=root)
        for record_path in sorted(runs.glob("*/record.json")):
            self._add(_load_record(record_path))

    def _add(self, record: TraceRecord) -> None:
        for ref in (record.trace_id, record.label):
            other = self._by_ref.get(ref)
            if other is not None and other.run_dir != record.run_dir:
                raise TraceStoreError(
                    f"{ref!r} names two runs: {other.run_dir.name} and {record.run_dir.name}", path=self.root
                )
            self._by_ref[ref] = record
        self._records.append(record)

    def __contains__(self, ref: object) -> bool:
        return isinstance(ref, str) and normalize_trace_id(ref) in self._by_ref

    def __iter__(self) -> Iterator[TraceRecord]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def get(self, ref: str) -> TraceRecord:
        """The run whose label or trace id is ``ref``."""
        try:
            return self._by_ref[normalize_trace_id(ref)]
        except KeyError:
            known = ", ".join(r.label for r in self._records) or "none"
            raise TraceStoreError(f"no recorded run {ref!r} (known: {known})", path=self.root) from None

    @property
    def spans_path(self) -> Path:
        """The JSONL file of span lines for every run in the store."""
        return self.root / "spans.jsonl"

    def spans(self, trace_id: str | None = None) -> list[dict[str, Any]]:
        """Span lines of one trace (or all): the store's spans.jsonl, then each run's own (format 2)."""
        wanted = None if trace_id is None else normalize_trace_id(trace_id)
        files = [self.spans_path, *(r.run_dir / "spans.jsonl" for r in self._records)]
        lines: list[dict[str, Any]] = []
        for path in files:
            if path.is_file():
                lines.extend(_read_spans(path, wanted))
        return lines


def _read_spans(path: Path, wanted: str | None) -> list[dict[str, Any]]:
    """The span lines of ``path`` whose trace id is ``wanted`` (all when None), in file order."""
    lines = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                span = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TraceStoreError(f"span line is not JSON: {exc.msg}", path=path, line=number) from None
            if wanted is None or span.get("trace_id") == wanted:
                lines.append(span)
    return lines


class StoreCache:
    """Opens each store once per process, remembering failures too."""

    def __init__(self) -> None:
        self._stores: dict[Path, TraceStore | TraceStoreError] = {}

    def open(self, root: Path) -> TraceStore:
        """The store at ``root``; raises the same error on every call if it is broken."""
        key = root.resolve()
        if key not in self._stores:
            try:
                self._stores[key] = TraceStore(root)
            except TraceStoreError as exc:
                self._stores[key] = exc
        found = self._stores[key]
        if isinstance(found, TraceStoreError):
            raise found
        return found


def find_store_root(start: Path, dirname: str, stop: Path) -> Path | None:
    """The nearest ``dirname`` folder holding ``runs/``, from ``start`` up to ``stop``."""
    for folder in (start, *start.parents):
        candidate = folder / dirname
        if (candidate / "runs").is_dir():
            return candidate
        if folder == stop:
            break
    return None
