"""The feedback file: one JSON object a line, human feedback and model insights, validated on read.

Two kinds of line share the file format (and the handoff reads both):

- ``"source": "human_feedback"``: a person's judgment on one trace, with
  ``author``, ``theme``, ``summary``, ``required_observations``,
  ``prohibited_claims`` and, optionally, ``rating`` (``good`` or ``bad``);
- ``"source": "llm_insight"``: a model's observations on one trace, with
  ``model``, ``prompt_version`` and ``observations``.

Reading is strict: a line that is not a JSON object, lacks a field, has one of
the wrong type or an unknown one is a :class:`FeedbackError` naming the file,
the line and the field. Nothing is skipped, not even a final line without its
newline (people edit this file by hand).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.recordings import RecordingError, RecordStore
from pytest_agentloop.traces.store import TRACE_ID, normalize_trace_id

HUMAN = "human_feedback"
INSIGHT = "llm_insight"
SOURCES = (HUMAN, INSIGHT)
RATINGS = ("good", "bad")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
THEME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

COMMON = {"id", "trace_id", "label", "question", "source", "created"}
HUMAN_FIELDS = COMMON | {"author", "theme", "summary", "required_observations", "prohibited_claims", "rating"}
INSIGHT_FIELDS = COMMON | {"model", "prompt_version", "observations", "feedback_ids", "recording"}


class FeedbackError(AgentloopError):
    """A feedback line or request that does not follow the documented format."""


@dataclass(frozen=True)
class Feedback:
    """One feedback line: a person's judgment or a model's observations on one trace."""

    id: str
    trace_id: str
    label: str
    question: str
    source: str
    created: str | None = None
    author: str | None = None
    theme: str | None = None
    summary: str = ""
    required_observations: tuple[str, ...] = ()
    prohibited_claims: tuple[str, ...] = ()
    rating: str | None = None
    model: str | None = None
    prompt_version: str | None = None
    observations: tuple[str, ...] = ()
    feedback_ids: tuple[str, ...] = field(default=())
    recording: str | None = None

    @property
    def is_human(self) -> bool:
        """Whether a person wrote this line."""
        return self.source == HUMAN

    def to_json(self) -> dict[str, Any]:
        """The line as written: only the fields of its kind, empty optional ones left out."""
        allowed = HUMAN_FIELDS if self.is_human else INSIGHT_FIELDS
        data: dict[str, Any] = {}
        for name in sorted(allowed):
            value = getattr(self, name)
            if isinstance(value, tuple):
                value = list(value)
            if value is None or (value == [] and name in {"feedback_ids"}):
                continue
            data[name] = value
        return data

    def lines(self) -> list[str]:
        """The feedback as short text lines (for prompts and listings)."""
        if not self.is_human:
            return [f"- {o}" for o in self.observations]
        out = [f"summary: {self.summary}"]
        if self.rating:
            out.append(f"rating: {self.rating}")
        out += [f"required: {o}" for o in self.required_observations]
        out += [f"prohibited: {c}" for c in self.prohibited_claims]
        return out


# -- validation --------------------------------------------------------------------


def _bad(name: str, message: str) -> ValueError:
    return ValueError(f"field {name!r}: {message}")


def _text(data: dict[str, Any], name: str, required: bool = True, empty: bool = False) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise _bad(name, "missing")
        return None
    if not isinstance(value, str):
        raise _bad(name, f"expected a string, got {type(value).__name__}")
    if not empty and not value.strip():
        raise _bad(name, "must not be empty")
    return value


def _texts(data: dict[str, Any], name: str) -> tuple[str, ...]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _bad(name, "expected a list of non-empty strings")
    return tuple(value)


def _check_common(data: dict[str, Any]) -> str:
    source = _text(data, "source")
    if source not in SOURCES:
        raise _bad("source", f"{source!r} is not one of {', '.join(SOURCES)}")
    allowed = HUMAN_FIELDS if source == HUMAN else INSIGHT_FIELDS
    for name in data:
        if name not in allowed:
            raise _bad(name, f"unknown for source {source!r}; expected one of {', '.join(sorted(allowed))}")
    if not ID_PATTERN.match(_text(data, "id") or ""):
        raise _bad("id", "use letters, digits, '.', '_' or '-'")
    if not TRACE_ID.match(normalize_trace_id(_text(data, "trace_id") or "")):
        raise _bad("trace_id", "expected 32 lowercase hex characters (the trace_ prefix is accepted)")
    return str(source)


def from_json(data: dict[str, Any]) -> Feedback:
    """Validate one decoded line; raises ValueError naming the field."""
    source = _check_common(data)
    common = {
        "id": data["id"],
        "trace_id": normalize_trace_id(data["trace_id"]),
        "label": _text(data, "label"),
        "question": _text(data, "question", empty=True),
        "source": source,
        "created": _text(data, "created", required=False),
    }
    if source == HUMAN:
        return _human(data, common)
    return _insight(data, common)


def _human(data: dict[str, Any], common: dict[str, Any]) -> Feedback:
    theme = _text(data, "theme")
    if not THEME_PATTERN.match(theme or ""):
        raise _bad("theme", "use letters, digits and underscores (it is used as a tag)")
    rating = _text(data, "rating", required=False)
    if rating is not None and rating not in RATINGS:
        raise _bad("rating", f"{rating!r} is not one of {', '.join(RATINGS)}")
    return Feedback(
        **common,
        author=_text(data, "author"),
        theme=theme,
        summary=_text(data, "summary") or "",
        required_observations=_texts(data, "required_observations"),
        prohibited_claims=_texts(data, "prohibited_claims"),
        rating=rating,
    )


def _insight(data: dict[str, Any], common: dict[str, Any]) -> Feedback:
    observations = _texts(data, "observations")
    if not observations:
        raise _bad("observations", "an insight needs at least one observation")
    return Feedback(
        **common,
        model=_text(data, "model"),
        prompt_version=_text(data, "prompt_version"),
        observations=observations,
        feedback_ids=_texts(data, "feedback_ids"),
        recording=_text(data, "recording", required=False),
    )


class _Codec:
    """The feedback line format for :class:`RecordStore`."""

    def to_json(self, record: Feedback) -> dict[str, Any]:
        return record.to_json()

    def from_json(self, data: dict[str, Any]) -> Feedback:
        return from_json(data)

    def sort_key(self, record: Feedback) -> tuple[Any, ...]:
        return (record.trace_id, record.source, record.id)


CODEC = _Codec()


# -- the file ----------------------------------------------------------------------


class FeedbackFile:
    """One feedback JSONL file: strict reads, locked appends, atomic rewrites."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._store = RecordStore(path, CODEC)

    def read(self) -> list[Feedback]:
        """Every line, validated; raises :class:`FeedbackError` naming file, line and field."""
        try:
            records = self._store.read()
        except RecordingError as exc:
            raise FeedbackError(exc.message, path=exc.path, line=exc.line) from None
        if self._store.torn is not None:
            raise FeedbackError(
                "this last line is not a complete JSON object; fix or delete it", path=self.path, line=self._store.torn
            )
        self._reject_duplicates(records)
        return records

    def _reject_duplicates(self, records: list[Feedback]) -> None:
        if not records:  # nothing to compare, and the file may not exist yet (the first `feedback add` makes it)
            return
        numbers = [n for n, raw in enumerate(self.path.read_bytes().split(b"\n"), 1) if raw.strip()]
        seen: dict[str, int] = {}
        for record, number in zip(records, numbers, strict=True):
            if record.id in seen:
                raise FeedbackError(
                    f"field 'id': {record.id!r} is used twice (first on line {seen[record.id]})",
                    path=self.path,
                    line=number,
                )
            seen[record.id] = number

    def append(self, records: Iterable[Feedback]) -> None:
        """Add lines at the end (locked, durable)."""
        self._store.append(records)

    def upsert(self, records: list[Feedback]) -> None:
        """Add ``records``, dropping older lines with the same ids; the file is rewritten atomically, sorted."""
        new = set(records)
        ids = {r.id for r in records}
        self._store.append(records)
        self._store.rewrite(keep=lambda r: r.id not in ids or r in new)


def read_files(paths: Iterable[Path]) -> list[Feedback]:
    """Every feedback line of ``paths`` (missing files are errors), ids unique across files."""
    found: list[Feedback] = []
    owner: dict[str, Path] = {}
    for path in paths:
        if not path.is_file():
            raise FeedbackError("feedback file not found", path=path)
        for record in FeedbackFile(path).read():
            if record.id in owner:
                raise FeedbackError(f"feedback id {record.id!r} is also used in {owner[record.id]}", path=path)
            owner[record.id] = path
            found.append(record)
    return found
