"""One keyed record/replay store for everything a model or a person writes down.

Verdicts, model insights and generated eval definitions are all kept the same
way: one JSON object a line in a tracked file, keyed by what produced them, so
CI replays them offline and a diff in git shows what changed.

The rules, once for every kind of record:

- Reading is strict. A line that is not one JSON object, repeats a key, or
  fails the record's own validation is a :class:`RecordingError` naming the
  file and the line; it is never skipped. The one exception is a final line
  without its newline that does not parse: that is an append a killed process
  never finished (nothing acknowledged is lost), reported in
  :attr:`RecordStore.torn` and ignored.
- Appends take a lock (a file under ``lock_dir``, never beside the store),
  end a final line left without its newline (kept if it parses, cut if not: a
  killed append), and go out in one ``write`` followed by ``fsync``,
  so concurrent writers (xdist workers, several processes) never interleave
  lines.
- Rewrites (sorting, pruning) refuse a store with a bad line rather than drop
  it, write a temporary file with the store's own mode, and replace the store
  atomically.
- Nothing here writes unless asked: a replay run only calls :meth:`read`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from filelock import FileLock

from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.fileio import write_atomic
from pytest_agentloop.strictjson import no_duplicate_keys

T = TypeVar("T")
DEFAULT_MODE = 0o644
CHUNK = 1 << 16


class RecordingError(AgentloopError):
    """A stored record that cannot be read; names the file and the line."""


class Codec(Protocol[T]):
    """How one kind of record becomes a JSON object and back."""

    def to_json(self, record: T) -> dict[str, Any]:
        """The record as a JSON-safe object."""

    def from_json(self, data: dict[str, Any]) -> T:
        """The record from its object; raises ValueError (or TypeError/KeyError) naming the bad field."""

    def sort_key(self, record: T) -> tuple[Any, ...]:
        """Stable file order."""


def digest(*parts: str) -> str:
    """A short, stable hash of ``parts`` (the key of a recording)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _decode(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text, object_pairs_hook=no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected one JSON object, found {type(data).__name__}")
    return data


def now() -> str:
    """UTC time, seconds precision, ``Z`` suffix: when a record was made."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_lock_dir() -> Path:
    """Where locks go when the caller names no folder: a per-machine temporary folder."""
    return Path(tempfile.gettempdir()) / "pytest-agentloop-locks"


@dataclass
class RecordStore(Generic[T]):
    """One JSONL file of records of one kind."""

    path: Path
    codec: Codec[T]
    lock_dir: Path | None = None

    def __post_init__(self) -> None:
        self.torn: int | None = None

    # -- reading ---------------------------------------------------------------------

    def read(self) -> list[T]:
        """Every record, validated; a bad line raises :class:`RecordingError`."""
        self.torn = None
        if not self.path.is_file():
            return []
        data = self._read_bytes()
        records: list[T] = []
        lines = data.split(b"\n")
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                records.append(self._parse(raw))
            except ValueError as exc:
                if number == len(lines):  # the final line lacks its newline: an append that never finished
                    self.torn = number
                    continue
                raise RecordingError(f"{exc}; fix or delete this line", path=self.path, line=number) from None
        return records

    def _read_bytes(self) -> bytes:
        try:
            return self.path.read_bytes()
        except OSError as exc:
            raise RecordingError(f"cannot read: {exc.strerror}", path=self.path) from None

    def _parses(self, raw: bytes) -> bool:
        try:
            self._parse(raw)
        except ValueError:
            return False
        return True

    def _parse(self, raw: bytes) -> T:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8 (byte {exc.start})") from None
        data = _decode(text)
        try:
            return self.codec.from_json(data)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"bad record: {exc}") from None

    # -- writing ---------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold this store's lock (kept outside the source tree)."""
        folder = self.lock_dir or default_lock_dir()
        folder.mkdir(parents=True, exist_ok=True)
        name = digest(str(self.path.resolve())) + ".lock"
        with FileLock(folder / name):
            yield

    def append(self, records: Iterable[T]) -> None:
        """Add records at the end, whole lines only, durable before returning."""
        payload = "".join(self._line(r) + "\n" for r in records).encode()
        if not payload:
            return
        with self.locked():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, DEFAULT_MODE)
            try:
                _end_last_line(fd, self._parses)
                os.write(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)

    def rewrite(self, keep: Callable[[T], bool] = lambda r: True) -> int:
        """Sort, drop exact duplicates and what ``keep`` rejects, replace atomically; returns records removed."""
        with self.locked():
            current = self.read()
            unique = {self._line(r): r for r in current if keep(r)}
            kept = sorted(unique.values(), key=self.codec.sort_key)
            text = "".join(self._line(r) + "\n" for r in kept)
            if self.path.is_file() and self.torn is None and self.path.read_bytes() == text.encode():
                return 0
            self._replace(text)
            return len(current) - len(kept)

    def _line(self, record: T) -> str:
        return json.dumps(self.codec.to_json(record), sort_keys=True, ensure_ascii=False)

    def _replace(self, text: str) -> None:
        write_atomic(self.path, text)


def _end_last_line(fd: int, parses: Callable[[bytes], bool]) -> None:
    """Finish a final line written without its newline: keep it if it parses (a hand-written
    file), cut it if not (an append a killed writer never finished, never acknowledged)."""
    size = os.fstat(fd).st_size
    if not size or os.pread(fd, 1, size - 1) == b"\n":
        return
    start, end = 0, size
    while end > 0:
        begin = max(0, end - CHUNK)
        cut = os.pread(fd, end - begin, begin).rfind(b"\n")
        if cut >= 0:
            start = begin + cut + 1
            break
        end = begin
    if parses(os.pread(fd, size - start, start)):
        os.write(fd, b"\n")
    else:
        os.ftruncate(fd, start)
