"""Trace stores read into the report's TraceViews: answers and text artifacts cut at a limit, spans as a tree."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.report.model import ArtifactView, EvalRow, SpanView, TraceView
from pytest_agentloop.traces.store import TraceRecord, TraceStore, find_store_root

TEXT_LIMIT = 64_000  # characters of an answer or text artifact embedded in the report
MAX_ARTIFACTS = 200  # files listed per run


def cut(text: str, limit: int = TEXT_LIMIT) -> tuple[str, bool]:
    """``text`` cut at ``limit`` characters, and whether it was cut."""
    return (text, False) if len(text) <= limit else (text[:limit], True)


def read_text(path: Path, limit: int = TEXT_LIMIT) -> tuple[str | None, bool]:
    """A file's text (cut at ``limit`` characters), or None when it is binary (NUL bytes or not UTF-8)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        data = handle.read(limit * 4)
    if b"\0" in data:
        return None, False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if size <= len(data) or exc.start < len(data) - 3:  # not just a character cut by the read
            return None, False
        text = data[: exc.start].decode("utf-8")
    body, was_cut = cut(text, limit)
    return body, was_cut or size > len(data)


def artifacts_of(folder: Path, root: Path, limit: int = TEXT_LIMIT) -> tuple[ArtifactView, ...]:
    """The files under ``folder`` (recursively, by name) with sizes, text ones with their text."""
    if not folder.is_dir():
        return ()
    views = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())[:MAX_ARTIFACTS]:
        text, truncated = read_text(path, limit)
        views.append(
            ArtifactView(
                name=path.relative_to(folder).as_posix(),
                size=path.stat().st_size,
                text=text,
                truncated=truncated,
                path=_shown(path, root),
            )
        )
    return tuple(views)


def _shown(path: Path, root: Path) -> str:
    return (path.relative_to(root) if path.is_relative_to(root) else path).as_posix()


def parse_time(text: str) -> datetime | None:
    """A span time (``YYYY-MM-DDTHH:MM:SS.fffffffffZ``, nanoseconds allowed) as a datetime."""
    if not text:
        return None
    head, _, rest = text.rstrip("Z").partition(".")
    try:
        return datetime.fromisoformat(f"{head}.{(rest + '000000')[:6]}+00:00")
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def span_view(span: dict[str, Any]) -> SpanView:
    """One span line as the report shows it."""
    attrs = span.get("attributes") or {}
    start, end = parse_time(str(span.get("start_time", ""))), parse_time(str(span.get("end_time", "")))
    status = span.get("status") or {}
    error = None
    if status.get("code") == "STATUS_CODE_ERROR":
        error = str(status.get("message") or "error")
    return SpanView(
        span_id=str(span.get("span_id", "")),
        parent_id=str(span.get("parent_span_id") or ""),
        name=str(span.get("name", "")),
        kind=str(attrs.get("inference.observation_kind") or attrs.get("openinference.span.kind") or "SPAN"),
        start=str(span.get("start_time", "")),
        duration_ms=None if start is None or end is None else (end - start).total_seconds() * 1000,
        input_tokens=_int(attrs.get("inference.llm.input_tokens", attrs.get("llm.token_count.prompt"))),
        output_tokens=_int(attrs.get("inference.llm.output_tokens", attrs.get("llm.token_count.completion"))),
        model=attrs.get("inference.llm.model_name") or attrs.get("llm.model_name") or None,
        error=error,
    )


def span_tree(spans: list[SpanView]) -> tuple[SpanView, ...]:
    """Spans in tree order (depth first, children by start time); orphans are treated as roots."""
    ids = {s.span_id for s in spans}
    children: dict[str, list[SpanView]] = defaultdict(list)
    for span in spans:
        children[span.parent_id if span.parent_id in ids else ""].append(span)
    ordered: list[SpanView] = []
    stack = sorted(children[""], key=lambda s: s.start, reverse=True)
    while stack:
        span = stack.pop()
        ordered.append(span)
        stack.extend(sorted(children.get(span.span_id, []), key=lambda s: s.start, reverse=True))
    return tuple(ordered)


class StoreTraces:
    """Loads TraceViews for eval rows: finds each eval file's store, reads spans once per store."""

    def __init__(self, root: Path, traces_dirname: str = "traces", limit: int = TEXT_LIMIT) -> None:
        self.root, self.dirname, self.limit = root, traces_dirname, limit
        self._stores: dict[Path, TraceStore | None] = {}
        self._spans: dict[Path, dict[str, list[dict[str, Any]]]] = {}

    def __call__(self, row: EvalRow) -> TraceView | None:
        """The trace of ``row`` (None when the row names none or no store holds it)."""
        if not row.trace_id and not row.trace_label:
            return None
        store = self._open(self.root / row.trace_store) if row.trace_store else self._store_for(self.root / row.file)
        if store is None:
            return TraceView(row.trace_id, row.trace_label, problem="no trace store found beside the eval file")
        try:
            record = store.get(row.trace_id or row.trace_label)
        except AgentloopError as exc:
            return TraceView(row.trace_id, row.trace_label, problem=str(exc))
        return self.view(store, record)

    def _store_for(self, eval_file: Path) -> TraceStore | None:
        root = find_store_root(eval_file.parent, self.dirname, self.root)
        return None if root is None else self._open(root)

    def _open(self, root: Path) -> TraceStore | None:
        if root not in self._stores:
            try:
                self._stores[root] = TraceStore(root)
            except AgentloopError:
                self._stores[root] = None
        return self._stores[root]

    def spans_of(self, store: TraceStore, trace_id: str) -> list[dict[str, Any]]:
        """The span lines of one trace (the store's file read once)."""
        if store.root not in self._spans:
            grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
            try:
                for span in store.spans():
                    grouped[str(span.get("trace_id", ""))].append(span)
            except AgentloopError:
                pass
            self._spans[store.root] = grouped
        return self._spans[store.root].get(trace_id, [])

    def view(self, store: TraceStore, record: TraceRecord) -> TraceView:
        """One record read into a TraceView."""
        answer_path = record.run_dir / "answer.md"
        problem = None
        try:
            answer, truncated = cut(record.answer, self.limit)
            size = answer_path.stat().st_size
        except AgentloopError as exc:
            answer, truncated, size, problem = "", False, 0, str(exc)
        return TraceView(
            trace_id=record.trace_id,
            label=record.label,
            question=record.question,
            answer=answer,
            answer_size=size,
            answer_truncated=truncated,
            answer_path=_shown(answer_path, self.root),
            harness_version=record.harness_version,
            model=record.model,
            artifacts=artifacts_of(record.artifacts_dir, self.root, self.limit),
            spans=span_tree([span_view(s) for s in self.spans_of(store, record.trace_id)]),
            problem=problem,
        )


TraceLoader = Callable[[EvalRow], TraceView | None]
