"""Durable verdict writes in groups: one locked append and one ``fsync`` for every verdict ready at that moment.

An eval's outcome is acknowledged only once its verdicts are on disk (the
kill -9 guarantee: nothing acknowledged is lost, no line torn but an
unacknowledged final one). Writing each eval's verdicts with its own lock and
``fsync`` made the disk the pace at high concurrency; here verdicts that arrive
while a write is under way wait for the next one, which takes them all at once,
and each waiter is released only when the write holding its verdicts returned.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from pathlib import Path

from pytest_agentloop.judge.verdicts import Verdict

Write = Callable[[Path, list[Verdict]], None]


class GroupWriter:
    """Appends verdicts on one writer thread, grouping what arrives while a write is under way (use on one loop)."""

    def __init__(self, write: Write) -> None:
        self._write = write
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentloop-verdicts")
        self._pending: dict[Path, list[tuple[list[Verdict], asyncio.Future[None]]]] = {}
        self._draining: asyncio.Task[None] | None = None

    async def write(self, path: Path, verdicts: list[Verdict]) -> None:
        """Return once ``verdicts`` are durably appended to ``path`` (raises what the write raised)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.setdefault(path, []).append((verdicts, done))
        if self._draining is None:
            self._draining = loop.create_task(self._drain())
        await done

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending, {}
                for path, waiting in batch.items():
                    records = [v for verdicts, _ in waiting for v in verdicts]
                    try:
                        await loop.run_in_executor(self._thread, self._write, path, records)
                    except Exception as exc:
                        for _, done in waiting:
                            done.set_exception(exc)
                    else:
                        for _, done in waiting:
                            done.set_result(None)
        finally:
            self._draining = None

    def shutdown(self) -> None:
        """Wait for the writer thread to finish."""
        self._thread.shutdown(wait=True)
