"""A run's working directory: made fresh (seeded from ``tool_policy.workdir_seed``), and what the run changed.

With a seed (a coding agent's repository snapshot, say), the artifacts are only the files the run added or
changed, and the seed files it deleted are listed; ``tool_policy.artifact_ignore`` paths are never artifacts.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from pytest_agentloop.agent.harness import Harness


@dataclass(frozen=True)
class WorkdirChanges:
    """What a run left in its working directory, as posix paths relative to it."""

    artifacts: list[str]
    """Files kept as artifacts: every regular file not ignored, or with a seed only those new or changed."""
    seed_deleted: list[str] | None
    """The seed's files the run deleted (None: no seed)."""


def fresh_workdir(seed: Path | None) -> Path:
    """A new empty folder, holding a copy of the seed's regular files when there is one."""
    workdir = Path(tempfile.mkdtemp(prefix="agentloop-run-"))
    if seed is None:
        return workdir
    try:
        for relative in regular_files(seed, ()):
            destination = workdir / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(seed / relative, destination)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return workdir


def workdir_changes(workdir: Path, harness: Harness) -> WorkdirChanges:
    """The run's artifacts (and, with a seed, the seed files it deleted); ignored paths are in neither."""
    seed, ignore = harness.workdir_seed, harness.artifact_ignore
    written = sorted(regular_files(workdir, ignore))
    if seed is None:
        return WorkdirChanges(written, None)
    planted = set(regular_files(seed, ignore))
    changed = [path for path in written if path not in planted or not same_bytes(seed / path, workdir / path)]
    return WorkdirChanges(changed, sorted(planted.difference(written)))


def regular_files(root: Path, ignore: Sequence[str]) -> Iterator[str]:
    """Posix paths, relative to ``root``, of its regular files: symlinks are neither followed nor listed,
    and an ignored folder is not entered (a ``.git`` of many files costs nothing)."""
    for folder, folders, files in os.walk(root):  # a symlinked folder is listed but never entered
        here = Path(folder).relative_to(root)
        folders[:] = [name for name in folders if not ignored((here / name).as_posix(), ignore)]
        for name in files:
            relative = (here / name).as_posix()
            if not ignored(relative, ignore) and stat.S_ISREG(os.lstat(os.path.join(folder, name)).st_mode):
                yield relative


def ignored(relative: str, patterns: Sequence[str]) -> bool:
    """Whether a posix path matches an ``artifact_ignore`` glob, as .gitignore users expect.

    A pattern without a slash matches any path segment (``__pycache__`` ignores every file under any
    ``__pycache__`` folder); one with a slash matches the path from the working directory, or a folder
    the path is under (so a leading slash anchors a name to the working directory). A trailing slash is dropped.
    """
    parts = relative.split("/")
    for pattern in patterns:
        anchored, glob = "/" in pattern.rstrip("/"), pattern.strip("/")
        if anchored:
            if any(fnmatchcase("/".join(parts[:end]), glob) for end in range(1, len(parts) + 1)):
                return True
        elif any(fnmatchcase(part, glob) for part in parts):
            return True
    return False


def same_bytes(one: Path, other: Path, chunk: int = 1 << 20) -> bool:
    """Whether two files hold the same bytes: sizes first, then both streamed a chunk at a time."""
    if one.stat().st_size != other.stat().st_size:
        return False
    with one.open("rb") as first, other.open("rb") as second:
        while True:
            block = first.read(chunk)
            if block != second.read(chunk):
                return False
            if not block:
                return True
