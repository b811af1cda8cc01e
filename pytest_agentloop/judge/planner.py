"""Concurrent judging of the selected items, on one event loop in its own thread.

Once the items are known, every rubric they need graded is submitted at once;
a semaphore bounds the calls in flight. Items then collect their outcome in
order, each waiting only for its own. The loop runs in a thread of its own, so
pytest-asyncio's loops for users' async tests are never touched.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from pytest_agentloop.config import JudgeMode
from pytest_agentloop.judge.endpoint import JudgeEndpoint, JudgeError
from pytest_agentloop.judge.rubric import PROMPT_VERSION, JudgeAnswerError, build_prompt
from pytest_agentloop.judge.verdicts import (
    Lookup,
    Verdict,
    VerdictStore,
    find,
    human_key,
    index,
    now,
    subject_key,
    verdict_key,
)

if TYPE_CHECKING:
    from pytest_agentloop.judge.client import OpenAIJudge

T = TypeVar("T")
NewVerdicts = Callable[[Path, list[Verdict]], None]
Progress = Callable[[int, int], None]
PROGRESS_EVERY = 2.0


class MissingVerdict(Exception):
    """Replay mode found no stored verdict for an eval's rubric and current output."""


@dataclass(frozen=True)
class GradeRequest:
    """What one eval needs graded."""

    nodeid: str
    eval_file: str
    eval_id: str
    rubric: str
    output: str
    store_path: Path
    expected: str = ""
    repeat: int = 1
    threshold: float = 0.8


@dataclass(frozen=True)
class RubricOutcome:
    """The rubric part of an eval's result."""

    passed: bool
    score: float
    reason: str
    source: str
    verdicts: tuple[Verdict, ...]
    flaky: bool = False

    @property
    def votes(self) -> str:
        """``k/n`` passing verdicts."""
        return f"{sum(v.passed for v in self.verdicts)}/{len(self.verdicts)}"


def combine(verdicts: list[Verdict], threshold: float) -> RubricOutcome:
    """Majority for pass, mean for score; a person's verdict decides alone."""
    people = [v for v in verdicts if v.is_human]
    if people:
        human = people[-1]
        return RubricOutcome(human.passed, human.score, human.reason, human.source, (human,))
    ordered = sorted(verdicts, key=lambda v: v.sample)
    score = sum(v.score for v in ordered) / len(ordered)
    majority = sum(v.passed for v in ordered) * 2 > len(ordered)
    flaky = len({v.passed for v in ordered}) > 1
    reason = ordered[0].reason if len(ordered) == 1 else " | ".join(f"[{v.sample}] {v.reason}" for v in ordered)
    return RubricOutcome(majority and score >= threshold, score, reason, ordered[0].source, tuple(ordered), flaky)


@dataclass
class PlannerStats:
    """Counts for the terminal summary."""

    calls: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic)
    first_call: float | None = None
    last_answer: float | None = None

    @property
    def calling_seconds(self) -> float:
        """From the first judge call leaving to the last answer arriving."""
        if self.first_call is None or self.last_answer is None:
            return 0.0
        return self.last_answer - self.first_call


PLANNER_KEY = pytest.StashKey["JudgePlanner"]()


class JudgePlanner:
    """Resolves rubric outcomes: stored verdicts first, then the judge, as the mode allows."""

    def __init__(self, endpoint: JudgeEndpoint, mode: JudgeMode, concurrency: int, on_new: NewVerdicts) -> None:
        self.endpoint, self.mode, self.on_new = endpoint, mode, on_new
        self.stats = PlannerStats()
        self._concurrency = concurrency
        self._futures: dict[str, concurrent.futures.Future[RubricOutcome]] = {}
        self._indexes: dict[Path, dict[str, list[Verdict]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._judge: OpenAIJudge | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentloop-verdicts")

    # -- the loop thread ---------------------------------------------------------

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="agentloop-judge", daemon=True)
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def close(self) -> None:
        """Close the judge client and stop the loop thread."""
        if self._loop is None:
            return
        self._writer.shutdown(wait=True)
        if self._judge is not None:
            self._run(self._judge.close()).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    # -- planning ------------------------------------------------------------------

    def submit(self, request: GradeRequest) -> None:
        """Start resolving ``request`` (once per node id)."""
        if request.nodeid not in self._futures:
            self._futures[request.nodeid] = self._run(self._resolve(request))

    def outcome(self, request: GradeRequest, progress: Progress | None = None) -> RubricOutcome:
        """Wait for this eval's outcome; raises JudgeError, JudgeAnswerError or MissingVerdict.

        While waiting, ``progress(resolved, total)`` is called every few seconds.
        """
        self.submit(request)
        future = self._futures[request.nodeid]
        while progress is not None:
            try:
                return future.result(timeout=PROGRESS_EVERY)
            except concurrent.futures.TimeoutError:
                progress(len(self._futures) - self.in_flight, len(self._futures))
        return future.result()

    @property
    def in_flight(self) -> int:
        """Outcomes not yet resolved."""
        return sum(not f.done() for f in self._futures.values())

    # -- resolution (runs on the loop) ----------------------------------------------

    def _lookup(self, request: GradeRequest) -> Lookup:
        grouped = self._indexes.get(request.store_path)
        if grouped is None:
            grouped = self._indexes[request.store_path] = index(VerdictStore(request.store_path).read())
        model_key = verdict_key(request.rubric, request.output, self.endpoint.model, PROMPT_VERSION)
        return find(grouped, human_key(request.rubric, request.output), model_key)

    async def _remember(self, request: GradeRequest, verdicts: list[Verdict]) -> None:
        grouped = self._indexes.setdefault(request.store_path, {})
        for verdict in verdicts:
            grouped.setdefault(verdict.key, []).append(verdict)
        # Durable writes (flock + fsync) happen on one writer thread, so the loop keeps other calls moving.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self.on_new, request.store_path, verdicts)

    async def _resolve(self, request: GradeRequest) -> RubricOutcome:
        found = self._lookup(request)
        if self.mode is JudgeMode.REFRESH:
            needed = list(range(request.repeat))
        elif found.human is not None:
            needed = []
        else:
            needed = [i for i in range(request.repeat) if i not in found.model]
        if needed and self.mode is JudgeMode.REPLAY:
            raise MissingVerdict(_missing_message(request, self.endpoint.model, len(needed)))
        fresh = await self._grade_all(request, needed)
        kept = [v for i, v in found.model.items() if i not in needed and i < request.repeat]
        return combine([*([found.human] if found.human else []), *kept, *fresh], request.threshold)

    async def _grade_all(self, request: GradeRequest, samples: list[int]) -> list[Verdict]:
        results = await asyncio.gather(*(self._grade(request, i) for i in samples), return_exceptions=True)
        good = [r for r in results if isinstance(r, Verdict)]
        if good:
            await self._remember(request, good)
        for result in results:
            if isinstance(result, BaseException):
                self.stats.errors += 1
                raise result
        return good

    async def _grade(self, request: GradeRequest, sample: int) -> Verdict:
        if self._judge is None:
            from pytest_agentloop.judge.client import OpenAIJudge

            self._judge = OpenAIJudge(self.endpoint)
            self._semaphore = asyncio.Semaphore(self._concurrency)
        assert self._semaphore is not None
        prompt = build_prompt(request.rubric, request.output, request.expected)
        async with self._semaphore:
            self.stats.calls += 1
            self.stats.first_call = self.stats.first_call or time.monotonic()
            try:
                graded = await self._judge.grade(prompt)
            finally:
                self.stats.last_answer = time.monotonic()
        return Verdict(
            key=verdict_key(request.rubric, request.output, self.endpoint.model, PROMPT_VERSION),
            subject=subject_key(request.rubric, request.output),
            eval_file=request.eval_file,
            eval_id=request.eval_id,
            passed=graded.verdict.passed,
            score=graded.verdict.score,
            reason=graded.verdict.reason,
            source=f"model:{self.endpoint.model}",
            judge_model=self.endpoint.model,
            prompt_version=PROMPT_VERSION,
            created=now(),
            sample=sample,
            input_tokens=graded.input_tokens,
            output_tokens=graded.output_tokens,
        )


def _missing_message(request: GradeRequest, model: str, count: int) -> str:
    what = "no stored verdict" if count == request.repeat else f"{count} of {request.repeat} repeats not stored"
    return (
        f"eval {request.eval_id}: {what} for its rubric on the current output "
        f"(judge mode replay, judge model {model}). To get one: set OPENAI_API_KEY and run "
        f"`pytest {request.nodeid} --agentloop-judge=record`, or record a person's verdict with "
        f"`agentloop label {request.nodeid} --pass|--fail --reason TEXT --by NAME`."
    )


__all__ = [
    "PLANNER_KEY",
    "GradeRequest",
    "JudgeAnswerError",
    "JudgeError",
    "JudgePlanner",
    "MissingVerdict",
    "RubricOutcome",
    "combine",
]
