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

import yaml

from pytest_agentloop.agent.errors import AgentConfigError
from pytest_agentloop.agent.runner import Question
from pytest_agentloop.traces.store import TraceRecord

LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class QuestionSpec:
    """One question to run."""

    label: str
    question: Question
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Identifies the question (its text or messages), whatever its label."""
        return hashlib.sha256(json.dumps(self.question, sort_keys=True).encode()).hexdigest()[:16]


def _entries(path: Path) -> list[tuple[int, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise AgentConfigError(f"not JSON: {exc.msg}", path=path, line=number) from None
        return rows
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgentConfigError(f"not valid YAML: {exc}", path=path) from None
    if isinstance(data, dict):
        data = data.get("questions")
    if not isinstance(data, list):
        raise AgentConfigError("a questions file is a list of {label, question | messages, metadata}", path=path)
    return [(0, entry) for entry in data]


def _question(entry: Any, path: Path, line: int) -> QuestionSpec:
    if not isinstance(entry, dict):
        raise AgentConfigError(
            "each question is a mapping with label and question (or messages)", path=path, line=line or None
        )
    label = str(entry.get("label") or "")
    if not LABEL.match(label):
        raise AgentConfigError(f"label {label!r}: letters, digits, '.', '_' and '-' only", path=path, line=line or None)
    question = entry.get("question", entry.get("messages"))
    if isinstance(question, list) and all(isinstance(m, dict) and "role" in m for m in question) and question:
        pass
    elif not isinstance(question, str) or not question.strip():
        raise AgentConfigError(
            f"{label}: give a question string or a list of messages with roles", path=path, line=line or None
        )
    metadata = entry.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise AgentConfigError(f"{label}: metadata must be a mapping", path=path, line=line or None)
    return QuestionSpec(label, question, dict(metadata))


def load_questions(path: Path) -> list[QuestionSpec]:
    """The questions of a YAML or JSONL file; labels must be unique."""
    if not path.is_file():
        raise AgentConfigError("questions file not found", path=path)
    questions = [_question(entry, path, line) for line, entry in _entries(path)]
    seen: set[str] = set()
    for question in questions:
        if question.label in seen:
            raise AgentConfigError(f"label {question.label!r} appears twice", path=path)
        seen.add(question.label)
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
    """One question per distinct text, the first label kept, in order."""
    seen: dict[str, QuestionSpec] = {}
    for question in questions:
        seen.setdefault(question.key, question)
    return list(seen.values())
