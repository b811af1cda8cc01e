"""Span lines indexed by trace id with their bodies left on disk, written out again one trace at a time.

A store's span files can hold gigabytes. :class:`SpanIndex` reads each file
once, validating every line as :func:`~pytest_agentloop.traces.store.iter_spans`
does, and keeps for each wanted line only where it sits (file, byte offset,
length) and its sort key. Root spans are kept whole, since the evidence spans
hang under them. :meth:`SpanIndex.write` then copies each trace's lines, sorted
by (start time, span id), into the output. A line is copied byte for byte when
its text already is ``json.dumps(span, ensure_ascii=False)``; any other line
(another separator style, escapes) is serialised that way once, while the file
is read, into a spool file, and copied from there. Memory grows by about 130
bytes a kept line, however long the lines are.
"""

from __future__ import annotations

import json
import os
from array import array
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pytest_agentloop.errors import TraceStoreError
from pytest_agentloop.traces.store import iter_spans

SPOOL = 0  # file number of the spool; the store's files follow
_ENCODER = json.JSONEncoder(ensure_ascii=False)  # what json.dumps(span, ensure_ascii=False) uses, made once


@dataclass(frozen=True)
class SpanSource:
    """Span files of one trace store and the trace ids to take from them."""

    files: tuple[Path, ...]
    trace_ids: frozenset[str]


@dataclass
class _Trace:
    """Where one trace's lines are; ``keys[i]`` sorts like (start_time, span_id) (NUL never occurs in a time)."""

    keys: list[str] = field(default_factory=list)
    files: array[int] = field(default_factory=lambda: array("l"))
    offsets: array[int] = field(default_factory=lambda: array("q"))
    sizes: array[int] = field(default_factory=lambda: array("q"))

    def add(self, key: str, file: int, offset: int, size: int) -> None:
        self.keys.append(key)
        self.files.append(file)
        self.offsets.append(offset)
        self.sizes.append(size)

    def order(self) -> list[int]:
        """Line positions by key; a stable sort, so equal keys keep the order they were read in."""
        return sorted(range(len(self.keys)), key=self.keys.__getitem__)


class SpanIndex:
    """The wanted span lines of some trace stores, by trace id (see the module docstring).

    ``full`` names the traces whose every line is kept; of the others only the
    root spans are kept.
    """

    def __init__(self, spool: BinaryIO, full: Collection[str]) -> None:
        self.roots: dict[str, dict[str, Any]] = {}
        self._spool = spool
        self._full = full
        self._files: list[Path | None] = [None]
        self._stamps: list[tuple[int, int]] = [(0, 0)]
        self._traces: dict[str, _Trace] = {}

    def add_source(self, source: SpanSource) -> None:
        """Read (and validate) every line of the source's files, keeping the lines of its traces."""
        for path in source.files:
            self._files.append(path)
            self._stamps.append(_stamp(path))
            number = len(self._files) - 1
            for line in iter_spans(path):
                if line.span["trace_id"] in source.trace_ids:
                    self._keep(line.span, line.text, number, line.offset, line.size)

    def add_spans(self, spans: Iterable[dict[str, Any]], trace_ids: Collection[str]) -> None:
        """Span lines already in memory (small inputs, tests), kept like lines read from a file."""
        for span in spans:
            if span["trace_id"] in trace_ids:
                self._keep(span, None, SPOOL, 0, 0)

    def _keep(self, span: dict[str, Any], text: str | None, file: int, offset: int, size: int) -> None:
        trace_id = span["trace_id"]
        is_root = not span.get("parent_span_id")
        if is_root:
            self.roots[trace_id] = span  # the last root read wins, as it always has
        elif trace_id not in self._full:
            return
        canonical = _ENCODER.encode(span)
        if not _same(text, canonical):
            data = canonical.encode("utf-8")
            file, offset, size = SPOOL, self._spool.seek(0, os.SEEK_END), len(data)
            self._spool.write(data)
        trace = self._traces.get(trace_id)
        if trace is None:
            trace = self._traces[trace_id] = _Trace()
        trace.add(f"{span['start_time']}\0{span['span_id']}", file, offset, size)

    def trace_ids(self) -> list[str]:
        """Trace ids with at least one kept line, sorted."""
        return sorted(self._traces)

    def write(self, out: BinaryIO) -> int:
        """Every kept line, by (trace id, start time, span id), one a line; returns how many."""
        self._spool.flush()
        written = 0
        for trace_id in self.trace_ids():
            trace = self._traces[trace_id]
            handles: dict[int, int] = {SPOOL: self._spool.fileno()}
            try:
                for i in trace.order():
                    out.write(os.pread(self._open(trace.files[i], handles), trace.sizes[i], trace.offsets[i]) + b"\n")
                    written += 1
            finally:
                for number, fd in handles.items():
                    if number != SPOOL:
                        os.close(fd)
        return written

    def _open(self, number: int, handles: dict[int, int]) -> int:
        """A descriptor on file ``number``, refused if the file changed since it was read and validated."""
        if number not in handles:
            path = self._files[number]
            assert path is not None
            fd = os.open(path, os.O_RDONLY)
            if (os.fstat(fd).st_size, os.fstat(fd).st_mtime_ns) != self._stamps[number]:
                os.close(fd)
                raise TraceStoreError("span file changed while the handoff was written; run again", path=path)
            handles[number] = fd
        return handles[number]


def _same(text: str | None, canonical: str) -> bool:
    """Whether the line's text (perhaps still ending in a newline) is ``canonical``, compared without a copy."""
    if text is None or text == canonical:
        return text is not None
    return len(text) == len(canonical) + 1 and text.endswith("\n") and text.startswith(canonical)


def _stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns
