"""The one keyed record/replay store: strict reads, locked appends, rewrites that keep the file's mode."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.recordings import RecordingError, RecordStore, digest


@dataclass(frozen=True)
class Note:
    key: str
    text: str


class NoteCodec:
    def to_json(self, record: Note) -> dict[str, Any]:
        return {"key": record.key, "text": record.text}

    def from_json(self, data: dict[str, Any]) -> Note:
        if not isinstance(data.get("text"), str):
            raise ValueError("field 'text' must be a string")
        return Note(str(data["key"]), data["text"])

    def sort_key(self, record: Note) -> tuple[str, str]:
        return (record.key, record.text)


@pytest.fixture
def store(tmp_path: Path) -> RecordStore[Note]:
    return RecordStore(tmp_path / "notes.jsonl", NoteCodec(), lock_dir=tmp_path / ".agentloop" / "locks")


def test_append_then_read_round_trips(store: RecordStore[Note]) -> None:
    store.append([Note("b", "two"), Note("a", "one")])
    assert store.read() == [Note("b", "two"), Note("a", "one")]
    assert stat.S_IMODE(store.path.stat().st_mode) & 0o644 == 0o644


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"key": "a", "text": 5}', "field 'text' must be a string"),
        ('{"key": "a", "text": "x", "text": "y"}', "key 'text' appears twice"),
        ("[1, 2]", "expected one JSON object, found list"),
        ("{not json", "not valid JSON"),
        ('{"text": "x"}', "bad record"),
    ],
)
def test_a_bad_line_is_an_error_naming_file_and_line(store: RecordStore[Note], line: str, problem: str) -> None:
    store.path.write_text('{"key": "a", "text": "ok"}\n' + line + "\n")
    with pytest.raises(RecordingError) as info:
        store.read()
    assert info.value.line == 2 and info.value.path == store.path
    assert problem in str(info.value)


def test_rewrite_refuses_a_bad_line_and_leaves_the_file_as_it_was(store: RecordStore[Note]) -> None:
    text = '{"key": "b", "text": "ok"}\n{"key": "a", "text": 5}\n'
    store.path.write_text(text)
    with pytest.raises(RecordingError):
        store.rewrite()
    assert store.path.read_text() == text


def test_rewrite_sorts_dedupes_and_keeps_the_mode(store: RecordStore[Note]) -> None:
    store.path.write_text('{"key": "b", "text": "2"}\n{"key": "a", "text": "1"}\n{"key": "b", "text": "2"}\n')
    os.chmod(store.path, 0o640)
    assert store.rewrite() == 1
    assert store.path.read_text() == '{"key": "a", "text": "1"}\n{"key": "b", "text": "2"}\n'
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o640
    assert store.rewrite() == 0


def test_locks_live_outside_the_store_folder(store: RecordStore[Note], tmp_path: Path) -> None:
    store.append([Note("a", "1")])
    assert sorted(p.name for p in store.path.parent.iterdir() if p.is_file()) == ["notes.jsonl"]
    assert len(list((tmp_path / ".agentloop" / "locks").iterdir())) == 1


def test_a_torn_final_line_is_reported_then_cut_by_the_next_append(store: RecordStore[Note]) -> None:
    store.path.write_bytes(b'{"key": "a", "text": "1"}\n{"key": "b", "te')
    assert store.read() == [Note("a", "1")]
    assert store.torn == 2
    store.append([Note("c", "3")])
    assert store.read() == [Note("a", "1"), Note("c", "3")]
    assert store.torn is None


def test_digest_is_stable_and_separates_parts() -> None:
    assert digest("a", "b") == digest("a", "b")
    assert digest("a", "b") != digest("ab", "")
    assert len(digest("x")) == 32
