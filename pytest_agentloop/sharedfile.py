"""A small JSON document under a file lock: the state every process of a session shares.

The rate budgets (:mod:`pytest_agentloop.ratelimit`) and the money ledger
(:mod:`pytest_agentloop.spend`) keep their state this way, so pytest-xdist
workers and the controller read and change one copy instead of one each.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock


class SharedJson:
    """``path`` (a JSON object) and its lock file beside it; writes replace the file whole."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lock = FileLock(path.with_suffix(".lock"))

    def read(self) -> dict[str, Any] | None:
        """The document, or None when it is missing or unreadable (callers start afresh)."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write(self, data: dict[str, Any]) -> None:
        """Replace the document (hold :attr:`lock`): a reader never sees half a file."""
        temp = self.path.with_suffix(".tmp")
        temp.write_text(json.dumps(data))
        temp.replace(self.path)

    @contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        """Read, let the caller change the dict, write it back, all under the lock."""
        with self.lock:
            data = self.read() or {}
            yield data
            self.write(data)

    def remove(self) -> None:
        """Delete the document and its lock file (the session that made them is over)."""
        for path in (self.path, self.path.with_suffix(".lock")):
            path.unlink(missing_ok=True)
