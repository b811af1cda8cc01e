"""Questions to run the agent on: a questions file (YAML or JSONL), or the questions of eval files.

Each question has a ``label`` (the run's name in the store), a ``question``
string or a list of chat ``messages``, and optional ``metadata``::

    - label: runway
      question: What do runway and burn tell us about near-term financing risk?
      metadata: {topic: financing}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_agentloop import strictjson
from pytest_agentloop.agent.errors import AgentConfigError
from pytest_agentloop.agent.runner import Question
from pytest_agentloop.traces.store import TraceRecord
from pytest_agentloop.yamlload import LineMap, load_yaml_of, plain

LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class QuestionSpec:
    """One question to run."""

    label: str
    question: Question
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Identifies the question (its text or messages, and the metadata the agent is given), whatever its label:
        one task asked of two repositories, or of two customers' accounts, is two questions."""
        asked = {"question": self.question, "metadata": self.metadata}
        return hashlib.sha256(json.dumps(asked, sort_keys=True, default=str).encode()).hexdigest()[:16]


FIELDS = ("label", "question", "messages", "metadata")
ALLOWED = "label, question or messages, metadata"


def _entries(path: Path) -> list[tuple[int, Any]]:
    """Each entry with its line: a JSONL line's number, or the line a YAML mapping starts on."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((number, strictjson.loads(line)))
                except ValueError as exc:
                    message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                    raise AgentConfigError(f"not JSON: {message}", path=path, line=number) from None
        return rows
    data = load_yaml_of(path, text, "not valid YAML", AgentConfigError)
    if isinstance(data, dict) and set(data) == {"questions"}:
        data = data["questions"]
    if not isinstance(data, list):
        raise AgentConfigError(f"a questions file is a list of {{{ALLOWED}}}", path=path, line=1)
    return [(entry.line if isinstance(entry, LineMap) else 0, entry) for entry in data]


class _Entry:
    """One question's mapping; its errors name the file, the line of the field, the question and the field."""

    def __init__(self, entry: dict[str, Any], path: Path, line: int, number: int) -> None:
        self.data, self.path, self.line = entry, path, line
        label = entry.get("label")
        self.what = f"question {label!r}" if isinstance(label, str) and LABEL.match(label) else f"question {number}"

    def fail(self, field: str | None, message: str) -> AgentConfigError:
        line = self.data.line_of(field) if isinstance(self.data, LineMap) and field else self.line
        where = f"{self.what}, field {field!r}" if field else self.what
        return AgentConfigError(f"{where}: {message}", path=self.path, line=line or None)


def _question(entry: Any, path: Path, line: int, number: int) -> QuestionSpec:
    if not isinstance(entry, dict):
        raise AgentConfigError(
            f"question {number}: each question is a mapping of {ALLOWED}", path=path, line=line or None
        )
    reader = _Entry(entry, path, line, number)
    for key in entry:
        if key not in FIELDS:
            raise reader.fail(str(key), f"unknown field; allowed: {ALLOWED}")
    label = entry.get("label")
    if label is None:
        raise reader.fail(None, f"no label: give each question a label (the run's name); allowed: {ALLOWED}")
    if not isinstance(label, str) or not LABEL.match(label):
        raise reader.fail("label", f"got {label!r}; use letters, digits, '.', '_' and '-' (at most 100)")
    if "question" in entry and "messages" in entry:
        raise reader.fail("messages", "give question or messages, not both")
    if "question" not in entry and "messages" not in entry:
        raise reader.fail(None, f"no question: give question (a string) or messages (a list); allowed: {ALLOWED}")
    question = entry.get("question", entry.get("messages"))
    if "messages" in entry:
        if (
            not isinstance(question, list)
            or not question
            or not all(isinstance(m, dict) and "role" in m for m in question)
        ):
            raise reader.fail("messages", "give a list of chat messages, each with a role")
    elif not isinstance(question, str) or not question.strip():
        raise reader.fail("question", "give the question as a non-empty string")
    metadata = entry.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise reader.fail("metadata", "metadata must be a mapping")
    return QuestionSpec(label, plain(question), plain(metadata))


def load_questions(path: Path) -> list[QuestionSpec]:
    """The questions of a YAML or JSONL file; labels must be unique."""
    if not path.is_file():
        raise AgentConfigError("questions file not found", path=path)
    questions: list[QuestionSpec] = []
    seen: dict[str, int] = {}
    for number, (line, entry) in enumerate(_entries(path), 1):
        question = _question(entry, path, line, number)
        if question.label in seen:
            first = f" (first on line {seen[question.label]})" if seen[question.label] else ""
            raise AgentConfigError(f"label {question.label!r} appears twice{first}", path=path, line=line or None)
        seen[question.label] = line
        questions.append(question)
    return questions


def from_record(record: TraceRecord) -> QuestionSpec:
    """The question a recorded run answered (its messages, when the record keeps them)."""
    raw: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        raw = json.loads((record.run_dir / "record.json").read_text(encoding="utf-8"))
    messages = raw.get("messages")
    question: Question = messages if isinstance(messages, list) and messages else record.question
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    return QuestionSpec(record.label, question, {"recorded_label": record.label, **(metadata or {})})


def distinct(questions: list[QuestionSpec]) -> list[QuestionSpec]:
    """One question per distinct question (text or messages, and metadata), the first label kept, in order."""
    seen: dict[str, QuestionSpec] = {}
    for question in questions:
        seen.setdefault(question.key, question)
    return list(seen.values())
