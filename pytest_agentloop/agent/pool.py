"""Live runs on their own event loop thread: one run per question key, bounded, locked across processes.

Every process of a session (the xdist controller and its workers) may ask
for any question; a file lock per question key makes sure one of them runs
it and the others read the finished run from disk. The loop runs in a thread
of its own, so no user's event loop (pytest-asyncio's) is touched, and each
built-in run makes its own client bound to this loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from pytest_agentloop.agent.errors import BudgetExhausted, RunFailed
from pytest_agentloop.agent.questions import QuestionSpec
from pytest_agentloop.agent.setup import AgentSetup
from pytest_agentloop.traces.store import TraceRecord

Done = Callable[[str], None]


@dataclass(frozen=True)
class Planned:
    """One run to make: the question, the label it is stored under, its repeat number."""

    question: QuestionSpec
    label: str
    key: str


def load_run(run_dir: Path) -> TraceRecord:
    """A finished live run as a record; a failed run raises RunFailed saying why."""
    data = json.loads((run_dir / "record.json").read_text(encoding="utf-8"))
    if data.get("status") != "ok":
        raise RunFailed(
            f"live run {data.get('label')} (trace {data.get('trace_id')}, harness {data.get('harness_version')}) "
            f"failed: {data.get('error')}; see {run_dir}"
        )
    return TraceRecord(
        trace_id=str(data["trace_id"]),
        label=str(data["label"]),
        question=str(data["question"]),
        harness_version=str(data["harness_version"]),
        model=data.get("model"),
        created=str(data["created"]),
        run_dir=run_dir,
        provenance=dict(data.get("provenance") or {}),
        cost_usd=data.get("cost_usd"),
    )


@dataclass
class Ledger:
    """Agent money spent and reserved in this process, against the session's budget."""

    budget: float | None
    spent: float = 0.0
    largest: float = 0.0
    in_flight: int = 0
    settled: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def probing(self) -> bool:
        """With a budget, the first run goes alone: until it ends there is no cost to estimate from."""
        return self.budget is not None and self.settled == 0 and self.in_flight > 0

    def reserve(self) -> bool:
        """Whether one more run may start: spent, plus every run in flight and this one at the dearest run's cost."""
        with self.lock:
            if self.budget is not None and self.spent + (self.in_flight + 1) * self.largest > self.budget:
                return False
            self.in_flight += 1
            return True

    def settle(self, cost: float | None) -> None:
        """A run finished, costing ``cost``."""
        with self.lock:
            self.in_flight -= 1
            self.settled += 1
            self.spent += cost or 0.0
            self.largest = max(self.largest, cost or 0.0)


class LivePool:
    """Starts runs as soon as they are planned; hands out their records when done."""

    def __init__(self, setup: AgentSetup, folder: Path, concurrency: int, budget: float | None) -> None:
        self.setup, self.folder, self.concurrency = setup, folder, concurrency
        self.store = folder / "traces"
        self.ledger = Ledger(budget)
        self.futures: dict[str, concurrent.futures.Future[TraceRecord]] = {}
        self.ran_here = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._gate: asyncio.Semaphore | None = None
        self._settled: asyncio.Event | None = None

    def warm(self) -> None:
        """Start the loop thread and import the SDK there, while pytest collects (runs start later)."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="agentloop-live", daemon=True)
            self._thread.start()
            self._loop.call_soon_threadsafe(_import_sdk)

    def start(self, planned: list[Planned], done: Done) -> None:
        """Start every planned run (each key once); ``done(key)`` is called as each finishes."""
        if not planned:
            return
        (self.store / "runs").mkdir(parents=True, exist_ok=True)
        (self.folder / "locks").mkdir(parents=True, exist_ok=True)
        self.warm()
        assert self._loop is not None
        for plan in planned:
            future = asyncio.run_coroutine_threadsafe(self._obtain(plan), self._loop)
            future.add_done_callback(_notify(done, plan.key))
            self.futures[plan.key] = future

    def close(self) -> None:
        """Cancel what has not started and stop the loop thread."""
        if self._loop is None:
            return
        for future in self.futures.values():
            future.cancel()
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    async def _obtain(self, plan: Planned) -> TraceRecord:
        if self._gate is None:
            self._gate, self._settled = asyncio.Semaphore(self.concurrency), asyncio.Event()
        run_dir = self.store / "runs" / plan.label
        lock = FileLock(self.folder / "locks" / f"{plan.key}.lock", thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:  # another process runs it: wait for it to finish, then read it
            await asyncio.to_thread(_wait_then_release, lock)
            return load_run(run_dir)
        try:
            if not (run_dir / "record.json").is_file():
                await self._run(plan)
            return load_run(run_dir)
        finally:
            lock.release()

    async def _run(self, plan: Planned) -> None:
        from pytest_agentloop.agent.capture import capture_run

        assert self._gate is not None and self._settled is not None
        async with self._gate:
            while self.ledger.probing():
                await self._settled.wait()
            if not self.ledger.reserve():
                raise BudgetExhausted(
                    f"live run {plan.label} not started: the budget of ${self.ledger.budget:g} could be passed "
                    f"(${self.ledger.spent:.4f} spent; raise --agentloop-budget)"
                )
            cost: float | None = None
            try:
                options = self.setup.options(plan.question, "live")
                run = await capture_run(
                    self.setup.agent, plan.question.question, store=self.store, label=plan.label, options=options
                )
                cost = run.cost_usd
                self.ran_here += 1
            finally:
                self.ledger.settle(cost)
                self._settled.set()


SDK_MODULES = (
    "agents",
    "openai.types.responses",
    "agents.models.openai_responses",
    "engine.telemetry.local_processor",
    "engine.traces.models.canonical_span",
    "pytest_agentloop.agent.builtin",
    "pytest_agentloop.agent.routing",
)


def _import_sdk() -> None:
    """Import what every run needs once, before the first run's clock starts (a missing one fails the run)."""
    for name in SDK_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    with contextlib.suppress(ImportError):
        from pytest_agentloop.agent.builtin import loop_client

        loop_client()  # the loop's client, TLS set up before the first run


def _notify(done: Done, key: str) -> Callable[[concurrent.futures.Future[TraceRecord]], None]:
    def callback(_: concurrent.futures.Future[TraceRecord]) -> None:
        done(key)

    return callback


def _wait_then_release(lock: Any) -> None:
    lock.acquire()
    lock.release()
