"""Concurrent judging of the selected items, on one event loop in its own thread.

Once the items are known, every rubric they need graded is submitted at once;
a semaphore bounds the calls in flight. Items then collect their outcome in
order, each waiting only for its own. The loop runs in a thread of its own, so
pytest-asyncio's loops for users' async tests are never touched.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from pytest_agentloop.config import DEFAULT_JUDGE_CONTEXT_KB, JudgeMode
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.judge.context import JudgeContextError, read_context
from pytest_agentloop.judge.endpoint import JudgeEndpoint, JudgeError
from pytest_agentloop.judge.keys import JudgeInputs, changed_inputs, human_key, model_key, subject_key
from pytest_agentloop.judge.rubric import PROMPT_VERSION, JudgeAnswerError, build_prompt
from pytest_agentloop.judge.verdicts import RecordingError, Verdict, VerdictIndex, VerdictStore, now
from pytest_agentloop.judge.writer import GroupWriter

if TYPE_CHECKING:
    from pytest_agentloop.judge.client import OpenAIJudge

T = TypeVar("T")
NewVerdicts = Callable[[Path, list[Verdict]], None]
Progress = Callable[[int, int], None]
PROGRESS_EVERY = 2.0


class MissingVerdict(AgentloopError):
    """No usable stored verdict for an eval's rubric and current inputs (replay mode)."""


class UnreadableVerdicts(MissingVerdict):
    """The verdict store the eval reads has a bad line: the eval is an error, never a pass."""


class StaleLabelWarning(pytest.PytestWarning):
    """A person's label on this eval was given on an earlier rubric, expected or output."""


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
    question: str = ""
    artifacts_dir: Path | None = None
    judge_context: tuple[str, ...] = ()
    eval_path: Path | None = None
    line: int = 0
    decided: Callable[[], str] | None = field(default=None, compare=False, repr=False)
    """Asked before the rubric is graded ahead: why the eval's outcome needs no rubric ('' to grade it).

    A ``hybrid`` eval whose assertions already failed is decided; the eval item answers, once its run is known.
    """

    @property
    def subject(self) -> str:
        """What is graded (rubric, expected, output), whoever grades it."""
        return subject_key(JudgeInputs(self.rubric, self.expected, self.output))


@dataclass(frozen=True)
class RubricOutcome:
    """The rubric part of an eval's result."""

    passed: bool
    score: float
    reason: str
    source: str
    verdicts: tuple[Verdict, ...]
    flaky: bool = False
    notes: tuple[str, ...] = ()

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


async def _cancel_pending() -> None:
    """Cancel what was submitted and never waited for (a session stopped early), so each coroutine is closed.

    Stopping the loop with them still queued would leave coroutines that never ran (a RuntimeWarning at exit).
    """
    pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


class JudgePlanner:
    """Resolves rubric outcomes: stored verdicts first, then the judge, as the mode allows."""

    def __init__(
        self,
        endpoint: JudgeEndpoint,
        mode: JudgeMode,
        concurrency: int,
        on_new: NewVerdicts,
        context_limit: int = DEFAULT_JUDGE_CONTEXT_KB * 1000,
        prepared: concurrent.futures.Future[OpenAIJudge] | None = None,
    ) -> None:
        """``prepared``: the judge client made while pytest collected (see :mod:`~pytest_agentloop.judge.warmup`)."""
        self.endpoint, self.mode, self.on_new = endpoint, mode, on_new
        self.context_limit = context_limit
        self._prepared = prepared
        self.stats = PlannerStats()
        self._concurrency = concurrency
        self._futures: dict[str, concurrent.futures.Future[RubricOutcome]] = {}
        self.not_asked: dict[str, str] = {}
        """Node id → why its rubric was not graded ahead (its outcome was already decided)."""
        self._indexes: dict[Path, VerdictIndex | RecordingError] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._judge: OpenAIJudge | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._writer = GroupWriter(on_new)

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
        self._writer.shutdown()
        self._run(_cancel_pending()).result(timeout=10)
        if self._judge is not None:
            self._run(self._judge.close()).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    # -- planning ------------------------------------------------------------------

    def submit(self, request: GradeRequest) -> None:
        """Start resolving ``request`` ahead (once per node id), unless its eval's outcome is already decided.

        A decided eval costs no judge call, and in replay mode no missing verdict is an error for it.
        """
        if request.nodeid in self._futures or request.nodeid in self.not_asked:
            return
        reason = request.decided() if request.decided is not None else ""
        if reason:
            self.not_asked[request.nodeid] = reason
            return
        self._start(request)

    def _start(self, request: GradeRequest) -> None:
        if request.nodeid not in self._futures:
            self._futures[request.nodeid] = self._run(self._resolve(request))

    def outcome(self, request: GradeRequest, progress: Progress | None = None) -> RubricOutcome:
        """Wait for this eval's outcome; raises JudgeError (JudgeAnswerError) or MissingVerdict.

        While waiting, ``progress(resolved, total)`` is called every few seconds.
        A stale label on the eval is reported as a :class:`StaleLabelWarning`.
        """
        self._start(request)  # asked for outright (a live repeat's copy of a decided request included): resolve it
        future = self._futures[request.nodeid]
        result = None
        while progress is not None and result is None:
            try:
                result = future.result(timeout=PROGRESS_EVERY)
            except concurrent.futures.TimeoutError:
                progress(len(self._futures) - self.in_flight, len(self._futures))
        result = result or future.result()
        for note in result.notes:
            warnings.warn_explicit(StaleLabelWarning(note), StaleLabelWarning, str(request.eval_path), request.line)
        return result

    @property
    def in_flight(self) -> int:
        """Outcomes not yet resolved."""
        return sum(not f.done() for f in self._futures.values())

    # -- resolution (runs on the loop) ----------------------------------------------

    def _index(self, store_path: Path) -> VerdictIndex:
        found = self._indexes.get(store_path)
        if found is None:
            try:
                found = VerdictIndex.of(VerdictStore(store_path).read())
            except RecordingError as exc:
                found = exc
            self._indexes[store_path] = found
        if isinstance(found, RecordingError):
            raise UnreadableVerdicts(f"stored verdicts unreadable, so none is served: {found}")
        return found

    def _inputs(self, request: GradeRequest) -> JudgeInputs:
        context = read_context(request.eval_id, request.artifacts_dir, request.judge_context, self.context_limit)
        return JudgeInputs(request.rubric, request.expected, request.output, request.question, context)

    async def _remember(self, request: GradeRequest, verdicts: list[Verdict]) -> None:
        self._index(request.store_path).add(verdicts)
        # Durable writes (lock + fsync) happen on one writer thread, grouped, so the loop keeps other calls moving.
        await self._writer.write(request.store_path, verdicts)

    async def _resolve(self, request: GradeRequest) -> RubricOutcome:
        try:
            index = self._index(request.store_path)
        except UnreadableVerdicts as exc:
            raise UnreadableVerdicts(f"eval {request.eval_id}: {exc}") from None
        inputs = self._inputs(request)
        key = model_key(inputs, self.endpoint.model, PROMPT_VERSION)
        found = index.find(human_key(inputs), key)
        if self.mode is JudgeMode.REFRESH:
            needed = list(range(request.repeat))
        elif found.human is not None:
            needed = []
        else:
            needed = [i for i in range(request.repeat) if i not in found.model]
        notes = () if found.human is not None else tuple(_stale_labels(index, request, inputs))
        if needed and self.mode is JudgeMode.REPLAY:
            raise MissingVerdict(_missing_message(request, self.endpoint, len(needed), index, inputs))
        fresh = await self._grade_all(request, inputs, key, needed)
        kept = [v for i, v in found.model.items() if i not in needed and i < request.repeat]
        outcome = combine([*([found.human] if found.human else []), *kept, *fresh], request.threshold)
        return replace(outcome, notes=notes)

    async def _grade_all(
        self, request: GradeRequest, inputs: JudgeInputs, key: str, samples: list[int]
    ) -> list[Verdict]:
        results = await asyncio.gather(*(self._grade(request, inputs, key, i) for i in samples), return_exceptions=True)
        good = [r for r in results if isinstance(r, Verdict)]
        if good:
            await self._remember(request, good)
        for result in results:
            if isinstance(result, BaseException):
                self.stats.errors += 1
                raise result
        return good

    async def _client(self) -> OpenAIJudge:
        """The judge client: the one made while pytest collected, else one made now (its error then surfaces)."""
        if self._judge is None and self._prepared is not None:
            with contextlib.suppress(Exception):
                prepared = await asyncio.wrap_future(self._prepared)
                self._judge = self._judge or prepared
        if self._judge is None:
            from pytest_agentloop.judge.client import OpenAIJudge

            self._judge = OpenAIJudge(self.endpoint, self._concurrency)
        return self._judge

    async def _grade(self, request: GradeRequest, inputs: JudgeInputs, key: str, sample: int) -> Verdict:
        """One verdict on ``inputs``; ``key`` is their model key (made once per eval, not per sample)."""
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self._concurrency)
        semaphore = self._semaphore
        judge = await self._client()
        prompt = build_prompt(inputs.rubric, inputs.output, inputs.expected, inputs.question, inputs.context)
        async with semaphore:
            self.stats.calls += 1
            self.stats.first_call = self.stats.first_call or time.monotonic()
            try:
                graded = await judge.grade(prompt)
            finally:
                self.stats.last_answer = time.monotonic()
        return Verdict(
            key=key,
            subject=subject_key(inputs),
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
            inputs=tuple(sorted(inputs.digests(model=True).items())),
        )


def _stale_labels(index: VerdictIndex, request: GradeRequest, inputs: JudgeInputs) -> list[str]:
    """A person's latest label on this eval, if it was given on other inputs."""
    people = [v for v in index.of_eval(request.eval_file, request.eval_id) if v.is_human and not v.legacy]
    if not people:
        return []
    latest = people[-1]
    changed = changed_inputs(dict(latest.inputs), inputs.digests(model=False)) or ["rubric, expected or output"]
    return [
        f"eval {request.eval_id}: a person's label is stale (the {' and '.join(changed)} changed since): "
        f"{latest.describe()}; label the current output with `agentloop label {request.nodeid} --pass|--fail ...`"
    ]


def _elsewhere(index: VerdictIndex, request: GradeRequest, endpoint: JudgeEndpoint, subject: str) -> list[str]:
    """Why no stored verdict matched: verdicts under other models, prompt versions, inputs or key versions."""
    stored = index.of_eval(request.eval_file, request.eval_id)
    models = [v for v in stored if not v.is_human and not v.legacy and v.subject == subject]
    others = sorted({v.judge_model for v in models if v.judge_model != endpoint.model})
    notes = []
    if others:
        notes.append(
            f"verdicts for the same rubric, expected and output exist under judge model {', '.join(others)}: "
            f"choose one with --agentloop-judge-model={others[0]} (or agentloop_judge_model in the ini, "
            "or $AGENTLOOP_JUDGE_MODEL)"
        )
    same = [v for v in models if v.judge_model == endpoint.model]
    versions = sorted({v.prompt_version for v in same if v.prompt_version != PROMPT_VERSION})
    if versions:
        notes.append(
            f"this model's verdicts were given under judge prompt version {', '.join(versions)} "
            f"(now {PROMPT_VERSION}); record them again"
        )
    elif same:
        notes.append("this model's verdicts were given on another question or judge_context; record them again")
    if any(v.legacy for v in stored):
        notes.append("the store holds key-version-1 verdicts: re-key them with `agentloop verdicts migrate`")
    return notes


def _missing_message(
    request: GradeRequest, endpoint: JudgeEndpoint, count: int, index: VerdictIndex, inputs: JudgeInputs
) -> str:
    what = "no stored verdict" if count == request.repeat else f"{count} of {request.repeat} repeats not stored"
    notes = _elsewhere(index, request, endpoint, subject_key(inputs)) + _stale_labels(index, request, inputs)
    how = (
        f"To get one: set {endpoint.key_env} and run `pytest {request.nodeid} --agentloop-judge=record` "
        f"(judge {endpoint.model} at {endpoint.url}), or record a person's verdict with "
        f"`agentloop label {request.nodeid} --pass|--fail --reason TEXT --by NAME`."
    )
    found = "".join(f" Found: {note}." for note in notes)
    return (
        f"eval {request.eval_id}: {what} for its rubric on the current output "
        f"(judge mode replay, judge model {endpoint.model}).{found} {how}"
    )


__all__ = [
    "PLANNER_KEY",
    "GradeRequest",
    "JudgeAnswerError",
    "JudgeContextError",
    "JudgeError",
    "JudgePlanner",
    "MissingVerdict",
    "RubricOutcome",
    "StaleLabelWarning",
    "UnreadableVerdicts",
    "combine",
]
