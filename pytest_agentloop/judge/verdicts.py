"""Recorded verdicts: one JSON object a line, beside the eval files, safe to share.

The file is a :class:`~pytest_agentloop.recordings.RecordStore` of
:class:`Verdict` records: reads are strict (a bad line is an error naming the
file and line, never skipped), appends are locked (the lock lives under
``.agentloop/locks``, not beside the file) and fsynced, and rewrites keep the
file's mode and a stable order. Only writing modes write; replay only reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pytest_agentloop.judge.keys import HUMAN_MODEL, KEY_VERSION, LEGACY_KEY_VERSION
from pytest_agentloop.recordings import RecordingError, RecordStore, now

SOURCE_KINDS = ("human", "model", "promptfoo")
REQUIRED = ("key", "subject", "eval_file", "eval_id", "pass", "score", "reason", "source", "judge_model")
OPTIONAL = ("prompt_version", "created", "sample", "input_tokens", "output_tokens", "key_version", "inputs")

__all__ = ["HUMAN_MODEL", "RecordingError", "Verdict", "VerdictCodec", "VerdictIndex", "VerdictStore", "now"]


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
    prompt_version: str = "-"
    created: str = ""
    sample: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    key_version: int = KEY_VERSION
    inputs: tuple[tuple[str, str], ...] = ()

    @property
    def is_human(self) -> bool:
        """Whether a person gave this verdict."""
        return self.source.startswith("human:")

    @property
    def legacy(self) -> bool:
        """Keyed under key version 1 (rubric and output only): ``agentloop verdicts migrate`` re-keys it."""
        return self.key_version == LEGACY_KEY_VERSION

    @property
    def eval_name(self) -> str:
        """The eval file's name (the store sits in the eval file's folder)."""
        return PurePosixPath(self.eval_file.replace("\\", "/")).name

    def describe(self) -> str:
        """``pass (score 1) by human:ana: "reason"`` for messages."""
        outcome = "pass" if self.passed else "fail"
        reason = self.reason if len(self.reason) <= 120 else self.reason[:120] + "…"
        return f"{outcome} (score {self.score:g}) by {self.source} on {self.created or 'an unknown date'}: {reason!r}"


def _fail(name: str, wanted: str, value: object) -> ValueError:
    return ValueError(f"field {name!r} must be {wanted}, got {value!r}")


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str) or (name in {"key", "eval_id", "eval_file", "judge_model"} and not value):
        raise _fail(name, "a non-empty string" if name != "reason" else "a string", value)
    return value


def _count(data: Mapping[str, Any], name: str, *, optional: bool) -> int | None:
    value = data.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(name, "a whole number of at least 0" + (" or null" if optional else ""), value)
    return value


def _score(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail("score", "a finite number from 0 to 1", value)
    if not 0.0 <= value <= 1.0:
        raise _fail("score", "a number from 0 to 1", value)
    return float(value)


def _source(value: str) -> str:
    kind, sep, name = value.partition(":")
    if not sep or kind not in SOURCE_KINDS or not name.strip():
        raise _fail("source", "'human:<name>', 'model:<name>' or 'promptfoo:<grader>'", value)
    return value


def _inputs(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _fail("inputs", "an object of input name to digest (strings)", value)
    return tuple(sorted(value.items()))


class VerdictCodec:
    """Verdicts to JSON and back, validating every field on the way in."""

    def to_json(self, record: Verdict) -> dict[str, Any]:
        """The JSON object of a verdict (``pass`` for ``passed``; empty optional fields left out)."""
        data: dict[str, Any] = {
            "key": record.key,
            "subject": record.subject,
            "eval_file": record.eval_file,
            "eval_id": record.eval_id,
            "pass": record.passed,
            "score": record.score,
            "reason": record.reason,
            "source": record.source,
            "judge_model": record.judge_model,
            "prompt_version": record.prompt_version,
            "created": record.created,
            "sample": record.sample,
        }
        for name in ("input_tokens", "output_tokens"):
            if getattr(record, name) is not None:
                data[name] = getattr(record, name)
        if record.key_version != LEGACY_KEY_VERSION:
            data["key_version"] = record.key_version
        if record.inputs:
            data["inputs"] = dict(record.inputs)
        return data

    def from_json(self, data: dict[str, Any]) -> Verdict:
        """A validated verdict; raises ValueError naming the first bad field."""
        missing = [name for name in REQUIRED if name not in data]
        if missing:
            raise ValueError(f"missing field {', '.join(repr(m) for m in missing)}")
        unknown = sorted(set(data) - set(REQUIRED) - set(OPTIONAL))
        if unknown:
            raise ValueError(f"unknown field {', '.join(repr(u) for u in unknown)}")
        if not isinstance(data["pass"], bool):
            raise _fail("pass", "true or false", data["pass"])
        version = data.get("key_version", LEGACY_KEY_VERSION)
        if version not in (LEGACY_KEY_VERSION, KEY_VERSION) or isinstance(version, bool):
            raise _fail("key_version", f"{LEGACY_KEY_VERSION} or {KEY_VERSION}", version)
        return Verdict(
            key=_text(data, "key"),
            subject=_text(data, "subject"),
            eval_file=_text(data, "eval_file"),
            eval_id=_text(data, "eval_id"),
            passed=data["pass"],
            score=_score(data["score"]),
            reason=_text(data, "reason"),
            source=_source(_text(data, "source")),
            judge_model=_text(data, "judge_model"),
            prompt_version=_text(data, "prompt_version") if "prompt_version" in data else "-",
            created=_text(data, "created") if "created" in data else "",
            sample=_count(data, "sample", optional=True) or 0,
            input_tokens=_count(data, "input_tokens", optional=True),
            output_tokens=_count(data, "output_tokens", optional=True),
            key_version=version,
            inputs=_inputs(data["inputs"]) if "inputs" in data else (),
        )

    def sort_key(self, record: Verdict) -> tuple[Any, ...]:
        """Stable file order: by eval, then who, then sample, then time."""
        return (record.eval_file, record.eval_id, record.source, record.sample, record.created, record.key)


class VerdictStore:
    """The verdict file of one folder of eval files; every write goes through here."""

    def __init__(self, path: Path, lock_dir: Path | None = None) -> None:
        self.path = path
        self._store = RecordStore(path, VerdictCodec(), lock_dir)

    @property
    def torn(self) -> int | None:
        """Line number of an unfinished final line seen by the last read (a killed append), if any."""
        return self._store.torn

    def read(self) -> list[Verdict]:
        """Every verdict, validated; a bad line raises RecordingError naming file and line."""
        return self._store.read()

    def append(self, verdicts: Iterable[Verdict]) -> None:
        """Add verdicts at the end, whole lines only, durable before returning."""
        self._store.append(verdicts)

    def rewrite(self, keep: Callable[[Verdict], bool] = lambda v: True) -> int:
        """Sort, drop exact duplicates and what ``keep`` rejects; refuses a store with a bad line."""
        return self._store.rewrite(keep)


@dataclass(frozen=True)
class Lookup:
    """Stored verdicts relevant to one eval's current inputs."""

    human: Verdict | None
    model: dict[int, Verdict]


@dataclass
class VerdictIndex:
    """A store's verdicts by key and by eval, oldest first."""

    by_key: dict[str, list[Verdict]] = field(default_factory=dict)
    by_eval: dict[tuple[str, str], list[Verdict]] = field(default_factory=dict)

    @classmethod
    def of(cls, verdicts: Iterable[Verdict]) -> VerdictIndex:
        """Index ``verdicts``."""
        index = cls()
        index.add(sorted(verdicts, key=lambda v: v.created))
        return index

    def add(self, verdicts: Iterable[Verdict]) -> None:
        """Index more verdicts (newer than those indexed)."""
        for verdict in verdicts:
            self.by_key.setdefault(verdict.key, []).append(verdict)
            self.by_eval.setdefault((verdict.eval_name, verdict.eval_id), []).append(verdict)

    def find(self, human: str, model: str) -> Lookup:
        """The latest person's verdict under ``human`` and the latest model verdict per sample under ``model``."""
        people = [v for v in self.by_key.get(human, []) if v.is_human]
        samples = {v.sample: v for v in self.by_key.get(model, []) if not v.is_human}
        return Lookup(people[-1] if people else None, samples)

    def of_eval(self, eval_file: str, eval_id: str) -> list[Verdict]:
        """Every verdict stored for one eval of this folder, whatever its inputs."""
        return list(self.by_eval.get((PurePosixPath(eval_file.replace("\\", "/")).name, eval_id), []))


def eval_path_of(store_path: Path, verdict: Verdict) -> Path:
    """The eval file a verdict belongs to: the file of that name in the store's folder."""
    return store_path.parent / verdict.eval_name


@dataclass
class StoreSurvey:
    """What the session reports about the stores it read: unused and legacy verdicts, unreadable stores."""

    unused: int = 0
    legacy: int = 0
    torn: list[tuple[Path, int]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


Elsewhere = Callable[[Path], Mapping[tuple[Path, str], set[str]]]


def survey(
    stores: Iterable[Path], wanted: Mapping[tuple[str, str], str], elsewhere: Elsewhere | None = None
) -> StoreSurvey:
    """Count verdicts of collected eval files (full paths in ``wanted``) that no current output uses.

    ``elsewhere(store)`` gives the subjects the folder's evals have over every trace store beside them: a
    verdict on another store's run (a candidate harness's) is not unused. Asked only when needed.
    """
    files = {f for f, _ in wanted}
    found = StoreSurvey()
    subjects: dict[Path, Mapping[tuple[Path, str], set[str]]] = {}
    for path in sorted(set(stores)):
        store = VerdictStore(path)
        try:
            verdicts = store.read()
        except RecordingError as exc:
            found.problems.append(str(exc))
            continue
        if store.torn is not None:
            found.torn.append((path, store.torn))
        for verdict in verdicts:
            full = str(eval_path_of(path, verdict))
            if full not in files:
                continue
            if verdict.legacy:
                found.legacy += 1
            elif wanted.get((full, verdict.eval_id)) != verdict.subject:
                if elsewhere is not None and path not in subjects:
                    subjects[path] = elsewhere(path)
                other = subjects.get(path, {}).get((Path(full).resolve(), verdict.eval_id), set())
                found.unused += verdict.subject not in other
    return found
