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
an eval needs them. Every file read from a store must resolve inside the
store's root: a run folder, record.json, answer.md, artifacts/ or spans.jsonl
that is a symlink leading out of it is refused and never opened (the rule
cited sources follow under their root). record.json and span lines are
validated against their formats (:mod:`pytest_agentloop.formats`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from pytest_agentloop.assertions.artifacts import UnsafePath, safe_join
from pytest_agentloop.errors import TraceStoreError
from pytest_agentloop.formats import FormatError, check, provenance_of
from pytest_agentloop.strictjson import no_duplicate_keys
from pytest_agentloop.traces.quickcheck import record_fits, span_fits

STORE_FORMAT = 1
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
RECORD_FIELDS = ("trace_id", "label", "question", "harness_version", "model", "created")
MAX_RECORD_BYTES = 1_000_000


def inside(root: Path, path: Path) -> Path:
    """``path`` if it resolves under ``root``; a :class:`TraceStoreError` (nothing opened) if not."""
    try:
        resolved = path.resolve()
    except (OSError, ValueError, RuntimeError) as exc:
        raise TraceStoreError(f"cannot be resolved ({exc}); not read", path=path) from None
    if not resolved.is_relative_to(root.resolve()):
        raise TraceStoreError(
            "resolves outside the trace store (a symlink leading out of it?); it is not read", path=path
        )
    return path


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
    store_root: Path | None = field(default=None, compare=False)
    cost_usd: float | None = field(default=None, compare=False)
    """What the run cost, in US dollars, when it was captured with a known price (format 2)."""
    error: str | None = field(default=None, compare=False)
    """Why the run failed (``status: failed``, already redacted when captured); None for a run that answered."""
    messages: list[Any] | None = field(default=None, compare=False)
    """The input conversation, when the run was asked one (``question`` is then its last user message)."""

    @property
    def asked(self) -> str:
        """What the run was asked, as the judge reads it: the question, or the whole conversation, turn by turn
        (a follow-up's rubric may depend on the earlier turns)."""
        if not self.messages:
            return self.question
        turns = []
        for message in self.messages:
            if not isinstance(message, dict):  # the format allows any item; show it as it is
                turns.append(json.dumps(message, ensure_ascii=False))
                continue
            content = message.get("content", "")
            text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
            turns.append(f"{message.get('role', 'user')}: {text}")
        return "\n".join(turns)

    @cached_property
    def artifacts_dir(self) -> Path:
        """Folder holding the files the run wrote; a :class:`TraceStoreError` if it leads out of the store.

        Checked once per record: resolving the path costs a system call per folder, and every judged eval asks.
        """
        return self._inside(self.run_dir / "artifacts")

    def _inside(self, path: Path) -> Path:
        return path if self.store_root is None else inside(self.store_root, path)

    @cached_property
    def answer(self) -> str:
        """The run's final answer text; a failed run has none, and the error says why it failed."""
        path = self.run_dir / "answer.md"
        if self.error is not None:
            raise TraceStoreError(
                f'run {self.label!r} failed when it was recorded, so it has no answer: "{self.error}"; '
                "record it again (agentloop record --replace)",
                path=self.run_dir / "record.json",
            )
        try:
            return self._inside(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TraceStoreError(f"run {self.label!r} has no answer.md", path=path) from None
        except UnicodeDecodeError as exc:
            raise TraceStoreError(f"answer is not UTF-8 text (byte {exc.start})", path=path) from None

    def require_artifacts(self) -> Path:
        """The artifacts folder, or a clear error if the recording lacks one or it leads out of the store."""
        if not self.artifacts_dir.is_dir():
            raise TraceStoreError(
                f"run {self.label!r} (trace {self.trace_id}) has no artifacts folder; "
                "record the run again or restore its artifacts/",
                path=self.artifacts_dir,
            )
        return self.artifacts_dir

    def read_artifact(self, name: str, max_bytes: int) -> str:
        """Text of artifact ``name`` (a plain relative path inside artifacts/), at most ``max_bytes``."""
        folder = self.require_artifacts()
        try:
            path = safe_join(folder, name)
        except UnsafePath as exc:
            raise TraceStoreError(f"artifact {exc}; not read", path=folder) from None
        if not path.is_file():
            raise TraceStoreError(f"run {self.label!r} has no artifact {name}", path=path)
        if path.stat().st_size > max_bytes:
            raise TraceStoreError(f"artifact is over the {max_bytes:,}-byte limit", path=path)
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise TraceStoreError(f"artifact is not UTF-8 text (byte {exc.start})", path=path) from None


def normalize_trace_id(value: str) -> str:
    """The Agents SDK's ``trace_<hex>`` id without its prefix."""
    return value.removeprefix("trace_")


def _parse_record(path: Path) -> tuple[object, str]:
    if path.stat().st_size > MAX_RECORD_BYTES:
        raise TraceStoreError(f"record is over the {MAX_RECORD_BYTES:,}-byte limit for record.json", path=path)
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text, object_pairs_hook=no_duplicate_keys), text
    except json.JSONDecodeError as exc:
        raise TraceStoreError(f"record is not valid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    except UnicodeDecodeError as exc:
        raise TraceStoreError(f"record is not UTF-8 text (byte {exc.start})", path=path) from None
    except (ValueError, RecursionError) as exc:
        raise TraceStoreError(f"record is not valid JSON: {exc}", path=path) from None


def _load_record(path: Path, root: Path | None = None) -> TraceRecord:
    if root is not None:
        inside(root, path.parent)
        inside(root, path)
    data, text = _parse_record(path)
    if not isinstance(data, dict):
        raise TraceStoreError("record must be a JSON object", path=path, line=1)
    try:
        if not record_fits()(data):
            check("record", data, path, text=text)
    except FormatError as exc:
        raise TraceStoreError(exc.message, path=path, line=exc.line) from None
    return TraceRecord(
        trace_id=normalize_trace_id(data["trace_id"]),
        label=data["label"],
        question=data["question"],
        harness_version=data["harness_version"],
        model=data["model"],
        created=data["created"],
        run_dir=path.parent,
        provenance=provenance_of(data.get("provenance")),
        store_root=root,
        cost_usd=data.get("cost_usd"),
        error=str(data.get("error") or "no error recorded") if data.get("status") == "failed" else None,
        messages=data.get("messages") or None,
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
        inside(root, runs)
        for record_path in sorted(runs.glob("*/record.json")):
            self._add(_load_record(record_path, root))

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

    def span_files(self, trace_ids: Collection[str] | None = None) -> list[Path]:
        """The files holding span lines, in reading order: spans.jsonl, then each run's own (format 2).

        With ``trace_ids``, only those runs' own files (the shared file is always
        read). Each file must resolve inside the store.
        """
        runs = [r for r in self._records if trace_ids is None or r.trace_id in trace_ids]
        files = [self.spans_path, *(r.run_dir / "spans.jsonl" for r in runs)]
        return [inside(self.root, path) for path in files if path.is_file() or path.is_symlink()]

    def spans(self, trace_id: str | None = None) -> list[dict[str, Any]]:
        """Span lines of one trace (or all): the store's spans.jsonl, then each run's own (format 2).

        Every line is validated; an error names the file and the line.
        """
        wanted = None if trace_id is None else normalize_trace_id(trace_id)
        return [
            line.span
            for path in self.span_files()
            for line in iter_spans(path)
            if wanted is None or line.span["trace_id"] == wanted
        ]


class SpanLine(NamedTuple):
    """One validated span line and where it sits in its file.

    ``size`` counts the line's bytes without its line ending; ``text`` may
    still end in ``\\n`` (cutting it off would copy every line once more).
    """

    number: int
    offset: int
    size: int
    text: str
    span: dict[str, Any]


def iter_spans(path: Path) -> Iterator[SpanLine]:
    """The span lines of ``path`` in file order, each validated (errors name the file and line); streamed.

    Lines end at ``\\n``, ``\\r\\n`` or ``\\r`` (as Python's text mode reads them);
    blank lines count but yield nothing.
    """
    for number, offset, size, data in _numbered_lines(path):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            where = offset + exc.start
            raise TraceStoreError(f"span lines are not UTF-8 text (byte {where})", path=path, line=number) from None
        if text and not text.isspace():
            yield SpanLine(number, offset, size, text, _span(path, number, text))


def _numbered_lines(path: Path) -> Iterator[tuple[int, int, int, bytes]]:
    """(line number, byte offset, size without the line ending, the bytes) of every line of ``path``."""
    number = offset = 0
    with path.open("rb") as handle:
        for raw in handle:
            if b"\r" not in raw:
                number += 1
                yield number, offset, len(raw) - raw.endswith(b"\n"), raw
            else:  # rare: CRLF endings or lone CRs, split as text mode would
                start = offset
                for piece in raw.removesuffix(b"\n").removesuffix(b"\r").split(b"\r"):
                    number += 1
                    yield number, start, len(piece), piece
                    start += len(piece) + 1
            offset += len(raw)


_DECODER = json.JSONDecoder(object_pairs_hook=no_duplicate_keys)  # one for all lines: json.loads makes one a call


def _span(path: Path, number: int, line: str) -> dict[str, Any]:
    """One validated span line (the quick check first; the full schema check, with its message, when unsure)."""
    try:
        if line.startswith("\ufeff"):  # what json.loads says; the decoder itself does not check
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", line, 0)
        span = _DECODER.decode(line)
    except json.JSONDecodeError as exc:
        raise TraceStoreError(f"span line is not JSON: {exc.msg}", path=path, line=number) from None
    except (ValueError, RecursionError) as exc:
        raise TraceStoreError(f"span line is not JSON: {exc}", path=path, line=number) from None
    if not isinstance(span, dict):
        raise TraceStoreError("span line must be a JSON object", path=path, line=number)
    if span_fits()(span):
        return span
    try:
        check("span", span, path, line=number)
    except FormatError as exc:
        raise TraceStoreError(exc.message, path=path, line=number) from None
    return span


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
