"""What a shard carries besides its results, so the final job lacks nothing the shard's checkout had.

- **verdicts** the shard's judge made (stamped during its session) in every
  verdict store it wrote: the tracked ``verdicts.jsonl`` beside the evals in
  record mode, or the live run folder's; the merge job's checkout has neither;
- **live traces**: every file of the format-2 store ``--agentloop-live`` wrote
  (records, answers, artifacts, span lines), up to :data:`MAX_LIVE_BYTES`;
- the **harness** file and the **feedback** files the shard read (the handoff's
  evidence), the harness version and the options.

``agentloop merge`` materialises them in the merged run's folder
(``<artifacts_dir>/runs/<merged run id>/``), laid out as one live run's folder:
``traces/`` (one store, every shard's runs), ``verdicts.jsonl`` (the live
verdicts), ``verdicts/<store path>`` (verdicts for tracked stores; with
``--verdicts-into-stores`` they are appended to those stores instead) and
``inputs/`` (harness and feedback, read by the handoff).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.judge.verdicts import VerdictCodec, VerdictStore

MAX_LIVE_BYTES = 64 * 1024 * 1024
"""Live trace files one shard file carries; over it writing the shard file fails (shard the suite finer)."""
MAX_INPUT_BYTES = 10_000_000
"""The harness file and each feedback file."""


@dataclass(frozen=True)
class CarriedFile:
    """A file's path (POSIX, relative) and bytes."""

    path: str
    data: bytes

    def to_json(self) -> dict[str, str]:
        """JSON-safe form (the bytes as base64)."""
        return {"path": self.path, "base64": base64.b64encode(self.data).decode("ascii")}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CarriedFile:
        """Inverse of :meth:`to_json`; a path leading out of its folder is a ValueError."""
        path = str(data["path"])
        pure = PurePosixPath(path)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts or "\\" in path:
            raise ValueError(f"carried file path {path!r} leads out of its folder")
        return cls(path, base64.b64decode(str(data["base64"]), validate=True))


@dataclass(frozen=True)
class Carried:
    """Everything besides results that one shard hands the final job."""

    harness_version: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    harness: CarriedFile | None = None
    feedback: tuple[CarriedFile, ...] = ()
    verdicts: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    """Verdicts made during the shard's session, by their store's path (relative to the rootdir)."""
    live_dir: str | None = None
    """The shard's live run folder, relative to the rootdir (None without ``--agentloop-live``)."""
    live: tuple[CarriedFile, ...] = ()
    """The files of ``<live_dir>/traces``, paths relative to it."""

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "harness_version": self.harness_version,
            "options": dict(sorted(self.options.items())),
            "harness": None if self.harness is None else self.harness.to_json(),
            "feedback": [f.to_json() for f in self.feedback],
            "verdicts": {store: list(rows) for store, rows in sorted(self.verdicts.items())},
            "live_dir": self.live_dir,
            "live": [f.to_json() for f in self.live],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Carried:
        """Inverse of :meth:`to_json`; raises KeyError, TypeError or ValueError on a malformed document."""
        codec = VerdictCodec()
        verdicts = {
            str(store): tuple(codec.to_json(codec.from_json(v)) for v in rows)
            for store, rows in data["verdicts"].items()
        }
        return cls(
            harness_version=None if data["harness_version"] is None else str(data["harness_version"]),
            options={str(k): str(v) for k, v in dict(data["options"]).items()},
            harness=None if data["harness"] is None else CarriedFile.from_json(data["harness"]),
            feedback=tuple(CarriedFile.from_json(f) for f in data["feedback"]),
            verdicts=verdicts,
            live_dir=None if data["live_dir"] is None else str(data["live_dir"]),
            live=tuple(CarriedFile.from_json(f) for f in data["live"]),
        )


# -- the shard's side ----------------------------------------------------------------------


def read_input(path: Path, shown: str) -> CarriedFile:
    """A harness or feedback file, as given (``shown``); a missing or oversized one is an error naming it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AgentloopError(f"cannot carry it in the shard file: {exc.strerror or exc}", path=path) from None
    if len(data) > MAX_INPUT_BYTES:
        raise AgentloopError(f"over the {MAX_INPUT_BYTES:,}-byte limit a shard file carries", path=path)
    return CarriedFile(shown, data)


def new_verdicts(
    stores: Iterable[Path], since: str, evals: set[tuple[str, str]], root: Path
) -> dict[str, tuple[dict[str, Any], ...]]:
    """Verdicts on this shard's ``evals`` (eval file name, eval id) stamped at or after ``since`` (UTC), by store.

    Both conditions, since shards sharing a checkout (or a second) must not carry each other's verdicts.
    """
    second = since[:19] + "Z"  # verdicts are stamped to the second
    codec = VerdictCodec()
    found: dict[str, tuple[dict[str, Any], ...]] = {}
    for store in sorted(stores):
        if not store.is_file():
            continue
        made = [
            codec.to_json(v)
            for v in VerdictStore(store).read()
            if v.created and v.created >= second and (v.eval_name, v.eval_id) in evals
        ]
        if made:
            found[relative(store, root)] = tuple(made)
    return found


def live_files(traces: Path) -> tuple[CarriedFile, ...]:
    """Every file of the live store ``traces``; over :data:`MAX_LIVE_BYTES` in all is an error saying what to do."""
    if not traces.is_dir():
        return ()
    paths = sorted(p for p in traces.rglob("*") if p.is_file() and not p.is_symlink())
    total = sum(p.stat().st_size for p in paths)
    if total > MAX_LIVE_BYTES:
        raise AgentloopError(
            f"this shard's live traces are {total:,} bytes, over the {MAX_LIVE_BYTES:,} a shard file carries: "
            "run the suite on more shards (a larger --agentloop-shard N) so each carries less",
            path=traces,
        )
    return tuple(CarriedFile(p.relative_to(traces).as_posix(), p.read_bytes()) for p in paths)


def relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX), both resolved; as given when it lies outside."""
    resolved, base = path.resolve(), root.resolve()
    return resolved.relative_to(base).as_posix() if resolved.is_relative_to(base) else path.as_posix()


# -- the merge's side ------------------------------------------------------------------------


@dataclass(frozen=True)
class Materialised:
    """What the merge wrote, for the handoff and the summary."""

    harness: Path | None
    feedback: list[Path]
    traces: Path | None
    verdict_stores: list[Path]


def materialise(
    carried: list[tuple[str, Carried]], root: Path, run_dir: Path, lock_dir: Path, into_stores: bool
) -> Materialised:
    """Write every shard's carried files into the merged run's folder ``run_dir`` (``carried``: shard name, data).

    Two shards carrying different bytes under one live path is a :class:`AgentloopError` naming both.
    """
    first = carried[0][1] if carried else Carried()
    inputs = run_dir / "inputs"
    harness = None if first.harness is None else _write(inputs / _name(first.harness), first.harness.data)
    feedback = [_write(inputs / "feedback" / f"{n}-{_name(f)}", f.data) for n, f in enumerate(first.feedback)]
    traces = _live(carried, run_dir / "traces")
    stores = _verdicts(carried, root, run_dir, lock_dir, into_stores)
    return Materialised(harness, feedback, traces, stores)


def _write(path: Path, data: bytes) -> Path:
    """The merged run's folder is new: a plain write (binary artifacts included)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _name(item: CarriedFile) -> str:
    return PurePosixPath(item.path).name


def _live(carried: list[tuple[str, Carried]], traces: Path) -> Path | None:
    owner: dict[str, tuple[str, bytes]] = {}
    for name, shard in carried:
        for item in shard.live:
            seen = owner.setdefault(item.path, (name, item.data))
            if seen[1] != item.data:
                raise AgentloopError(
                    f"two shards carry different live files {item.path} ({seen[0]}, {name}): "
                    "were they run with different -k/-m or agents?"
                )
    for path, (_, data) in sorted(owner.items()):
        _write(traces / path, data)
    return traces if owner else None


def _verdicts(carried: list[tuple[str, Carried]], root: Path, run_dir: Path, lock_dir: Path, into: bool) -> list[Path]:
    codec = VerdictCodec()
    targets: dict[Path, list[dict[str, Any]]] = {}
    for _, shard in carried:
        for store, rows in shard.verdicts.items():
            targets.setdefault(_target(store, shard.live_dir, root, run_dir, into), []).extend(rows)
    for path, made in sorted(targets.items()):
        target = VerdictStore(path, lock_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        target.append(codec.from_json(r) for r in made)
        target.rewrite()
    return sorted(targets)


def _target(store: str, live_dir: str | None, root: Path, run_dir: Path, into: bool) -> Path:
    """Where a carried store's verdicts go: the live run's into the merged run folder, others by ``into``."""
    pure = PurePosixPath(store)
    if pure.is_absolute() or ".." in pure.parts:
        raise AgentloopError(f"a shard carries verdicts for {store}, outside its rootdir; merge cannot place them")
    if live_dir is not None and pure.is_relative_to(live_dir):
        return run_dir / pure.relative_to(live_dir)
    return root / pure if into else run_dir / "verdicts" / pure
