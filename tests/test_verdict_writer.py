"""Grouped verdict writes: one append for what arrives during a write, nobody released before their write returned."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from pytest_agentloop.judge.verdicts import Verdict, VerdictStore
from pytest_agentloop.judge.writer import GroupWriter


def _verdict(n: int) -> Verdict:
    return Verdict(f"k{n}", f"s{n}", "a.eval.yaml", f"e{n}", True, 1.0, "r", "model:m", "m")


def test_verdicts_arriving_during_a_write_share_the_next_one(tmp_path: Path) -> None:
    store = VerdictStore(tmp_path / "verdicts.jsonl", tmp_path / "locks")
    gate, writes = threading.Event(), []

    def write(path: Path, verdicts: list[Verdict]) -> None:
        gate.wait(timeout=10)  # the first write is slow: everything else queues behind it
        store.append(verdicts)
        writes.append([v.eval_id for v in verdicts])

    async def scenario() -> list[bool]:
        writer = GroupWriter(write)
        first = asyncio.ensure_future(writer.write(store.path, [_verdict(0)]))
        await asyncio.sleep(0)  # the first write is under way
        rest = [asyncio.ensure_future(writer.write(store.path, [_verdict(n)])) for n in (1, 2, 3)]
        await asyncio.sleep(0.05)
        released_early = [task.done() for task in (first, *rest)]
        gate.set()
        await asyncio.gather(first, *rest)
        writer.shutdown()
        return released_early

    assert asyncio.run(scenario()) == [False] * 4  # nobody is acknowledged before their verdicts are on disk
    assert writes == [["e0"], ["e1", "e2", "e3"]]
    assert [v.eval_id for v in store.read()] == ["e0", "e1", "e2", "e3"]


def test_a_failed_write_fails_every_verdict_it_held(tmp_path: Path) -> None:
    def write(path: Path, verdicts: list[Verdict]) -> None:
        raise OSError("disk full")

    async def scenario() -> None:
        writer = GroupWriter(write)
        try:
            await asyncio.gather(*(writer.write(tmp_path / "v.jsonl", [_verdict(n)]) for n in range(3)))
        finally:
            writer.shutdown()

    with pytest.raises(OSError, match="disk full"):
        asyncio.run(scenario())
