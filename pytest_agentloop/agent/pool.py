"""Live runs on their own event loop thread: one run per question key, bounded, locked across processes.

Every process of a session (the xdist controller and its workers) may ask
for any question; a file lock per question key makes sure one of them runs
it and the others read the finished run from disk. The loop runs in a thread
of its own, so no user's event loop (pytest-asyncio's) is touched, and each
built-in run makes its own client bound to this loop.

A process that closes its pool (its evals are done) starts no more runs and
gives up those it has not started, so another process that still needs them
runs them; the runs it has started it lets finish, since one cancelled half
way would be run again by the other (each question is run once).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from pytest_agentloop.agent.budget import hold_run
from pytest_agentloop.agent.builtin import close_loop_clients, pace_loop
from pytest_agentloop.agent.errors import RunFailed
from pytest_agentloop.agent.pacing import Pacing
from pytest_agentloop.agent.questions import QuestionSpec
from pytest_agentloop.agent.setup import AgentSetup
from pytest_agentloop.agent.warmup import import_sdk, warm_beside_runs
from pytest_agentloop.spend import Hold, MoneyBudget
from pytest_agentloop.traces.store import TraceRecord

Done = Callable[[str], None]
CLOSE_WAIT = 5.0  # seconds to wait for the loop's clients to close
LOCK_POLL = 0.05  # seconds between tries of a question's lock held by another process
FINISH_WAIT = 600.0  # seconds a closing pool waits for its started runs, when runs have no timeout


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


class LivePool:
    """Starts runs as soon as they are planned; hands out their records when done."""

    def __init__(
        self,
        setup: AgentSetup,
        folder: Path,
        concurrency: int,
        money: MoneyBudget | None,
        pacing: Pacing | None = None,
    ) -> None:
        self.setup, self.folder, self.concurrency, self.pacing = setup, folder, concurrency, pacing
        self.store = folder / "traces"
        self.ledger = money.ledger() if money is not None else None
        self.futures: dict[str, concurrent.futures.Future[TraceRecord]] = {}
        self.ran_here = 0
        self.closing = False
        """Set (on the loop) when the pool closes: no run starts after it."""
        self._started_runs: dict[str, asyncio.Future[TraceRecord]] = {}
        """Runs started here and not finished (they hold their key's lock): close lets them finish."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._gate: asyncio.Semaphore | None = None
        self._started = asyncio.Event()
        self._warming: concurrent.futures.Future[None] | None = None
        self.timings: dict[str, float] = {}
        """When the warm-up's steps began and ended (epoch seconds) and the SDK import's CPU seconds, for benchmarks."""

    def warm(self) -> None:
        """Start the loop thread and import the SDK there, while pytest collects (runs start later)."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="agentloop-live", daemon=True)
            self._thread.start()
            self._warming = asyncio.run_coroutine_threadsafe(self._warm_up(), self._loop)

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
        self._loop.call_soon_threadsafe(self._started.set)

    def close(self, wait: bool = True) -> None:
        """Cancel runs not started, let started ones finish (``wait``), close the loop's clients, stop the loop."""
        if self._loop is None:
            return
        stopping = asyncio.run_coroutine_threadsafe(self._stop(wait), self._loop)
        with contextlib.suppress(Exception):
            stopping.result(timeout=self._finish_wait() + CLOSE_WAIT)
        for future in self.futures.values():  # runs still going past their timeout
            future.cancel()
        if self._warming is not None:
            self._warming.cancel()
        closing = asyncio.run_coroutine_threadsafe(close_loop_clients(), self._loop)
        with contextlib.suppress(Exception):  # a client that does not close cleanly is the exit's to collect
            closing.result(timeout=CLOSE_WAIT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        pending = asyncio.all_tasks(self._loop)
        if pending and not self._loop.is_running():  # let the cancelled finish, so none is destroyed pending
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()
        self._loop, self._started = None, asyncio.Event()  # the old event holds the old loop

    async def _stop(self, wait: bool) -> None:
        """On the loop: start nothing more, cancel what has not started; wait for started runs to be written."""
        self.closing = True
        started = set(self._started_runs)
        for key, future in self.futures.items():
            if key not in started or not wait:
                future.cancel()
        if wait and self._started_runs:
            await asyncio.wait(list(self._started_runs.values()), timeout=self._finish_wait())

    def _finish_wait(self) -> float:
        """How long a started run may still take: its timeout, and a little to write it."""
        return FINISH_WAIT if self.setup.timeout is None else self.setup.timeout + CLOSE_WAIT

    async def _warm_up(self) -> None:
        """Import the SDK (blocking the loop: runs wait for it); once runs are started, warm up beside them."""
        self.timings["sdk import began"], cpu = time.time(), time.thread_time()
        _import_sdk(self.pacing)
        self.timings["sdk imported"], self.timings["sdk import cpu"] = time.time(), time.thread_time() - cpu
        await self._started.wait()
        dry_run = await warm_beside_runs(lambda: not all(f.done() for f in self.futures.values()))
        if dry_run is not None:
            self.timings["dry run began"], self.timings["dry run ended"] = dry_run

    async def _obtain(self, plan: Planned) -> TraceRecord:
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.concurrency)
        run_dir = self.store / "runs" / plan.label
        lock = FileLock(self.folder / "locks" / f"{plan.key}.lock", thread_local=False)
        # another process runs it: wait for it; if it was not run (budget, or that process closed), try here.
        # Polled, not waited for on a thread: a wait can be cancelled and leaves no thread to take the lock later.
        while not _try(lock):
            await asyncio.sleep(LOCK_POLL)
        try:
            if not (run_dir / "record.json").is_file():
                await self._run(plan)
            return load_run(run_dir)
        finally:
            lock.release()

    async def _run(self, plan: Planned) -> None:
        assert self._gate is not None
        async with self._gate:
            if self.closing:  # this process's evals are done: another process that needs it runs it
                raise asyncio.CancelledError
            task = asyncio.current_task()
            assert task is not None
            self._started_runs[plan.key] = task  # from here on, close() lets it finish
            try:
                hold = await self._hold(plan)
                await self._capture(plan, hold)
            finally:
                del self._started_runs[plan.key]

    async def _capture(self, plan: Planned, hold: Hold | None) -> None:
        """Run the agent on the question; its cost (or the hold, when unknown) is then spent."""
        from pytest_agentloop.agent.capture import capture_run

        cost: float | None = None
        model: str | None = None
        try:
            options = self.setup.options(plan.question, "live")
            run = await capture_run(
                self.setup.agent, plan.question.question, store=self.store, label=plan.label, options=options
            )
            cost, model = run.cost_usd, run.model
            self.ran_here += 1
        finally:
            if self.ledger is not None and hold is not None:
                await asyncio.to_thread(self.ledger.settle, hold, cost, model)

    async def _hold(self, plan: Planned) -> Hold | None:
        """Hold the run's likely cost against the session's budget (none without one)."""
        if self.ledger is None:
            return None
        return await hold_run(self.ledger, f"live run {plan.label}", stop=lambda: self.closing)


def _try(lock: FileLock) -> bool:
    """Take ``lock`` if no one holds it."""
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    return True


def _import_sdk(pacing: Pacing | None) -> None:
    """Import what every run needs once, before the first run's clock starts."""
    pace_loop(pacing)
    import_sdk()
    with contextlib.suppress(Exception):  # no SDK, no key: the first run says so
        from pytest_agentloop.agent.builtin import loop_client
        from pytest_agentloop.agent.routing import install

        loop_client()  # the loop's client, TLS set up before the first run
        install()  # the SDK's trace provider is made at its first use (its default exporter's TLS set-up)


def _notify(done: Done, key: str) -> Callable[[concurrent.futures.Future[TraceRecord]], None]:
    def callback(_: concurrent.futures.Future[TraceRecord]) -> None:
        done(key)

    return callback
