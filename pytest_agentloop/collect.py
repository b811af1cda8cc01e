"""Collecting eval files: EvalFile yields one EvalItem per eval definition.

An eval file is loaded with the assertion types of its folder: the built-ins
plus what ``pytest_agentloop_assertion_types`` returns from the plugins and
conftests that apply there, asked when the file is collected (after its
folder's conftests have loaded). An item's setup gathers its inputs (the
recorded run and the rubric verdict); a fault there is a pytest error, never a
failure. Under ``--collect-only``, ``--setup-only`` and ``--setup-plan`` no
eval is evaluated and no model is called.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.agent.source import RUN_SOURCE_KEY
from pytest_agentloop.assertions.registry import BUILTIN, AssertionRegistry, AssertionType, AssertionTypeClash, using
from pytest_agentloop.config import JudgeMode, Settings, evaluates, is_worker, settings_of
from pytest_agentloop.errors import AgentloopError, SpecError, TraceStoreError
from pytest_agentloop.evaluate import evaluate_literals, needs_artifacts
from pytest_agentloop.failures import EvalFailed, RubricFailed, format_failure, format_rubric_failure
from pytest_agentloop.judge.planner import (
    PLANNER_KEY,
    GradeRequest,
    JudgeAnswerError,
    JudgeError,
    MissingVerdict,
    RubricOutcome,
)
from pytest_agentloop.results import EvalResult, LiteralVerdict, Outcome
from pytest_agentloop.spec import EvalSpec, Scoring, SuiteSpec, load_suite
from pytest_agentloop.traces.store import StoreCache, TraceRecord, TraceStore, find_store_root
from pytest_agentloop.yamlload import paused_gc

STORES_KEY = pytest.StashKey[StoreCache]()
MARKERS_KEY = pytest.StashKey[set[str]]()
REGISTRIES_KEY = pytest.StashKey[dict[Path, AssertionRegistry]]()
PROGRESS_KEY = pytest.StashKey["JudgeProgress"]()
JUDGE_OFF = "rubric not evaluated: the judge is off (--agentloop-judge=off)"
NOT_ASKED = "rubric: not asked (assertions failed; hybrid needs both)"


def stores_of(config: pytest.Config) -> StoreCache:
    """The per-process cache of opened trace stores."""
    return config.stash.setdefault(STORES_KEY, StoreCache())


def store_for(config: pytest.Config, suite_path: Path, explicit: Path | None, settings: Settings) -> TraceStore:
    """The trace store an eval file or test module reads."""
    root = explicit or find_store_root(suite_path.parent, settings.traces_dirname, config.rootpath)
    if root is None:
        raise TraceStoreError(
            f"no trace store found: no {settings.traces_dirname}/runs/ beside this file or above it "
            "(set `traces:` in the eval file or the ini option agentloop_traces)",
            path=suite_path,
        )
    return stores_of(config).open(root)


def registry_for(node: pytest.Item | pytest.Collector) -> AssertionRegistry:
    """The assertion types files in ``node``'s folder may use (cached per folder for the session).

    Raises :class:`AgentloopError` when two sources offer the same type name.
    """
    cache = node.config.stash.setdefault(REGISTRIES_KEY, {})
    folder = node.path if node.path.is_dir() else node.path.parent
    if folder not in cache:
        answers: list[list[AssertionType]] = node.ihook.pytest_agentloop_assertion_types(config=node.config)
        offered = [kind for kinds in answers for kind in kinds]
        try:
            cache[folder] = AssertionRegistry.with_types(offered)
        except AssertionTypeClash as exc:
            raise AgentloopError(f"{exc}; rename it in the plugin or conftest.py that returns it") from None
    return cache[folder]


def session_registry(config: pytest.Config) -> AssertionRegistry:
    """Every type the folders collected in this process offered (for code that re-reads eval files)."""
    merged = AssertionRegistry()
    for registry in config.stash.get(REGISTRIES_KEY, {}).values():
        try:
            merged = merged.merged(registry)
        except AssertionTypeClash:
            continue
    return merged


def display_path(config: pytest.Config, path: Path) -> str:
    """``path`` relative to the rootdir when inside it, with forward slashes."""
    return _relative(config.rootpath, path)


@lru_cache(maxsize=1024)
def _relative(root: Path, path: Path) -> str:
    # Asked three times an eval (its request and its result record), of the same few folders and files.
    return (path.relative_to(root) if path.is_relative_to(root) else path).as_posix()


class EvalFile(pytest.File):
    """A YAML file of eval definitions."""

    registry: AssertionRegistry
    suite: SuiteSpec

    def collect(self) -> Iterator[EvalItem]:
        """Load and validate the file (every check, every unknown trace), then yield its evals in file order."""
        settings = settings_of(self.config)
        try:
            self.registry = registry_for(self)
            with using(self.registry):
                self.suite = load_suite(self.path, settings.max_eval_file_bytes)
            store = store_for(self.config, self.path, self.suite.traces_dir, settings)
            _check_traces(self.suite, store)
        except AgentloopError as exc:
            raise self.CollectError(exc.display(self.config.rootpath)) from None
        with paused_gc():  # thousands of small node objects: the cyclic collector's passes cost more than them
            items = [self._item(spec, self.suite, store) for spec in self.suite.evals]
        yield from items

    def _item(self, spec: EvalSpec, suite: SuiteSpec, store: TraceStore) -> EvalItem:
        _register_markers(self.config, spec.tags)
        item: EvalItem = EvalItem.from_parent(
            self, name=spec.id, spec=spec, suite=suite, store=store, registry=self.registry
        )
        for tag in spec.tags:
            item.add_marker(tag)
        item.add_marker("agentloop")
        return item


def _check_traces(suite: SuiteSpec, store: TraceStore) -> None:
    """Every eval's trace must be in the store; one error lists each unknown one with its line."""
    unknown = [spec for spec in suite.evals if spec.trace not in store]
    if not unknown:
        return
    known = ", ".join(r.label for r in store) or "none"
    first, *rest = unknown
    message = f"eval {first.id!r}, field 'trace': no recorded run {first.trace!r} in {store.root} (known: {known})"
    message += "".join(
        f"\n{suite.path}:{spec.line_of('trace')}: eval {spec.id!r}, field 'trace': no recorded run {spec.trace!r}"
        for spec in rest
    )
    raise SpecError(message, path=suite.path, line=first.line_of("trace"))


def _register_markers(config: pytest.Config, tags: tuple[str, ...]) -> None:
    """Declare tags as markers so --strict-markers accepts them."""
    if MARKERS_KEY not in config.stash:
        config.stash[MARKERS_KEY] = {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}
    known = config.stash[MARKERS_KEY]
    for tag in tags:
        if tag not in known:
            config.addinivalue_line("markers", f"{tag}: agentloop eval tag")
            known.add(tag)


class EvalItem(pytest.Item):
    """One eval definition checked against its source trace's recorded run."""

    def __init__(
        self,
        *,
        spec: EvalSpec,
        suite: SuiteSpec,
        store: TraceStore,
        registry: AssertionRegistry | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.spec, self.suite, self.store = spec, suite, store
        self.registry = registry or getattr(self.parent, "registry", None) or AssertionRegistry()
        self.record: TraceRecord | None = None
        self.verdict: LiteralVerdict | None = None
        self.rubric: RubricOutcome | None = None
        self.rubric_note: str | None = None
        """Why the eval has no rubric verdict although its scoring has a rubric (:data:`NOT_ASKED`)."""
        self._graded_request: GradeRequest | None = None
        self._literals: tuple[Path, LiteralVerdict | AgentloopError] | None = None
        self._literals_lock = threading.Lock()
        self._describe()

    def _describe(self) -> None:
        spec = self.spec
        self.user_properties.extend(
            [
                ("eval_id", spec.id),
                ("title", spec.title),
                ("tags", ",".join(spec.tags)),
                ("split", spec.split.value),
                ("scoring", spec.scoring.value),
                ("must_pass", str(spec.must_pass).lower()),
            ]
        )

    @property
    def judged(self) -> bool:
        """Whether this eval's outcome includes a rubric verdict in this session."""
        return self.spec.scoring.needs_judge and settings_of(self.config).judge_mode is not JudgeMode.OFF

    def grade_request(self) -> GradeRequest:
        """What the planner needs to resolve this eval's rubric (reads the answer).

        Asked at collection's end, when judging starts, and at setup: made once when the run is a recorded one
        (a fresh run, ``--agentloop-live``, may not have finished at the first ask).
        """
        if self._graded_request is not None:
            return self._graded_request
        settings = settings_of(self.config)
        record = self.record or self._run_record(wait=False)
        source = self.config.stash.get(RUN_SOURCE_KEY, None)
        request = GradeRequest(
            nodeid=self.nodeid,
            eval_file=display_path(self.config, self.path),
            eval_id=self.spec.id,
            rubric=self.spec.rubric or "",
            output=record.answer,
            store_path=source.verdicts_path(self) if source else self.path.parent / settings.verdicts_filename,
            expected=self.spec.expected,
            repeat=settings.repeat or self.spec.repeat,
            threshold=self.spec.threshold,
            question=record.asked,  # a conversation whole: a follow-up's rubric may need the earlier turns
            artifacts_dir=record.artifacts_dir,
            judge_context=tuple(getattr(self.spec, "judge_context", ()) or ()),  # the field lands with `inputs`
            eval_path=self.path,
            line=self.spec.line,
            decided=self.decided if self._both_needed else None,
        )
        if source is None:
            self._graded_request = request
        return request

    @property
    def _both_needed(self) -> bool:
        """Hybrid with assertions: failing assertions decide the outcome without the rubric."""
        return self.spec.scoring is Scoring.HYBRID and bool(self.spec.assertions)

    def decided(self) -> str:
        """Why the rubric need not be graded: :data:`NOT_ASKED` when this hybrid eval's assertions fail on its run.

        '' while the run is not known (a live run still going) or its check is a fault setup reports. Off the
        main thread (a live run's grader) no time limit can stop a check: only built-in types are run there.
        """
        if not self._both_needed:
            return ""
        main = threading.current_thread() is threading.main_thread()
        if not main and not all(BUILTIN.lookup(a.type) for a in self.spec.assertions):
            return ""
        try:
            verdict = self._literals_of(self.record or self._run_record(wait=False))
        except AgentloopError:
            return ""
        return "" if verdict.passed else NOT_ASKED

    def _literals_of(self, record: TraceRecord) -> LiteralVerdict:
        """The literal verdict on ``record``, evaluated once whoever asks first (the planner or setup).

        A fault is kept too (a check out of time would only run out of time again), but not one met off the
        main thread: a check that refuses to run there is run again at setup.
        """
        main = threading.current_thread() is threading.main_thread()
        with self._literals_lock:
            if self._literals is None or self._literals[0] != record.run_dir:
                try:
                    found: LiteralVerdict | AgentloopError = self._evaluate(record)
                except AgentloopError as exc:
                    if not main:
                        raise
                    found = exc
                self._literals = (record.run_dir, found)
            found = self._literals[1]
        if isinstance(found, AgentloopError):
            raise found
        return found

    def _evaluate(self, record: TraceRecord) -> LiteralVerdict:
        artifacts = record.artifacts_dir if record.artifacts_dir.is_dir() else None
        with using(self.registry):
            return evaluate_literals(self.spec, record.answer, artifacts, self.suite.dataroom_dir)

    def _run_record(self, wait: bool = True) -> TraceRecord:
        """The run this eval checks: a fresh one when a run source (``--agentloop-live``) is set, else the recorded."""
        source = self.config.stash.get(RUN_SOURCE_KEY, None)
        return self.store.get(self.spec.trace) if source is None else source.record_for(self, wait=wait)

    def setup(self) -> None:
        """Gather the inputs: the recorded run, then (unless only collecting or setting up) the rubric verdict.

        Anything missing or a judge fault fails here, so pytest reports an error, not a failure.
        """
        if not evaluates(self.config) and RUN_SOURCE_KEY in self.config.stash:
            return  # --setup-only/--setup-plan with --agentloop-live: no agent run, no model call
        problem = None
        try:
            self.record = self._run_record()
            _ = self.record.answer
            with using(self.registry):
                if needs_artifacts(self.spec) or self.spec.judge_context:
                    self.record.require_artifacts()
            if evaluates(self.config):
                self._check_literals(self.record)  # a check out of time is an error, like a missing file
        except AgentloopError as exc:
            problem = f"eval {self.spec.id}: {exc.display(self.config.rootpath)}"
        if problem or self.record is None:
            pytest.fail(problem or "no record", pytrace=False)
        self.user_properties.extend([("trace_id", self.record.trace_id), ("trace_label", self.record.label)])
        if not evaluates(self.config):
            return
        if not self.judged:
            return
        if self.verdict is None or self.verdict.passed:
            self._resolve_rubric()
        elif self.spec.scoring is Scoring.HYBRID:
            self.rubric_note = NOT_ASKED

    def _check_literals(self, record: TraceRecord) -> None:
        """Run the literal assertions now: when they fail, the judge need not be waited for."""
        if not self.spec.assertions:
            return
        self.verdict = self._literals_of(record)
        self.user_properties.append(("literal_score", f"{self.verdict.score:.4f}"))

    def _resolve_rubric(self) -> None:
        problem = None
        try:
            self.rubric = self.config.stash[PLANNER_KEY].outcome(self.grade_request(), progress_of(self.config))
        except MissingVerdict as exc:
            problem = str(exc)
        except (JudgeError, JudgeAnswerError) as exc:
            problem = f"eval {self.spec.id}: judge error: {exc}"
        if problem or self.rubric is None:
            pytest.fail(problem or "no verdict", pytrace=False)  # outside the except: no chained traceback
        outcome = self.rubric
        self.user_properties.extend(
            [
                ("judge_score", f"{outcome.score:.4f}"),
                ("verdict_source", outcome.source),
                ("judge_reason", outcome.reason),
                ("judge_votes", outcome.votes),
                ("judge_flaky", str(outcome.flaky).lower()),
                ("judge_input_tokens", str(sum(v.input_tokens or 0 for v in outcome.verdicts))),
                ("judge_output_tokens", str(sum(v.output_tokens or 0 for v in outcome.verdicts))),
            ]
        )

    def runtest(self) -> None:
        """Literal assertions first, then the rubric verdict, as the eval's scoring says."""
        assert self.record is not None
        record, spec = self.record, self.spec
        trace = f"{record.label} ({record.trace_id})"
        if self.verdict is not None and not self.verdict.passed:
            path = Path(display_path(self.config, self.path))
            raise EvalFailed(
                eval_id=spec.id, title=spec.title, trace=trace, path=path, verdict=self.verdict, output=record.answer
            )
        if not spec.scoring.needs_judge:
            return
        if self.rubric is None:
            pytest.skip(JUDGE_OFF)
        if not self.rubric.passed:
            raise RubricFailed(
                eval_id=spec.id,
                title=spec.title,
                trace=trace,
                outcome=self.rubric,
                threshold=spec.threshold,
                output=record.answer,
            )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        """Eval failures as a structured report; anything else as pytest would."""
        if isinstance(excinfo.value, EvalFailed):
            text = format_failure(excinfo.value, verbose=self.config.get_verbosity() > 1)
            return _with_note(text, self.rubric_note)
        if isinstance(excinfo.value, RubricFailed):
            return format_rubric_failure(excinfo.value)
        if isinstance(excinfo.value, AgentloopError):
            return f"eval {self.spec.id}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        """The YAML file, the eval's line, and its id."""
        return self.path, self.spec.line - 1, f"eval: {self.spec.id}"

    def result(self, outcome: Outcome, explanation: str, duration: float = 0.0) -> EvalResult:
        """This eval's typed result record, from what setup and the run found."""
        spec, record, verdict, rubric = self.spec, self.record, self.verdict, self.rubric
        judge_score = None if rubric is None else rubric.score
        literal_score = None if verdict is None else verdict.score
        return EvalResult(
            eval_id=spec.id,
            nodeid=self.nodeid,
            title=spec.title,
            trace_id="" if record is None else record.trace_id,
            trace_label=spec.trace if record is None else record.label,
            outcome=outcome,
            score=judge_score if judge_score is not None else literal_score,
            explanation=explanation,
            tags=spec.tags,
            split=spec.split.value,
            must_pass=spec.must_pass,
            scoring=spec.scoring.value,
            duration=duration,
            verdict_source=None if rubric is None else rubric.source,
            repeats=1 if rubric is None else len(rubric.verdicts),
            flaky=False if rubric is None else rubric.flaky,
            input_tokens=None if rubric is None else sum(v.input_tokens or 0 for v in rubric.verdicts),
            output_tokens=None if rubric is None else sum(v.output_tokens or 0 for v in rubric.verdicts),
            eval_file=display_path(self.config, self.path),
            trace_store=display_path(self.config, self._store_of(record)),
            question=None if record is None else record.question,
            harness_version=None if record is None else record.harness_version,
            literal_score=literal_score,
            judge_score=judge_score,
            judge_reason=None if rubric is None else rubric.reason,
            judge_votes=None if rubric is None else rubric.votes,
            assertions=() if verdict is None else verdict.assertions,
            cost=None if record is None else record.cost_usd,
            rubric_note=self.rubric_note,
        )

    def _store_of(self, record: TraceRecord | None) -> Path:
        """The store the checked run lives in: the eval file's, or a live run's own (``runs/<label>/`` below it)."""
        if record is None:
            return self.store.root
        return record.store_root or record.run_dir.parent.parent


def _with_note(report: str, note: str | None) -> str:
    """``note`` under the report's verdict line (its fourth), where the short explanation still shows it."""
    if not note:
        return report
    lines = report.split("\n")
    return "\n".join([*lines[:3], f"  {note}", *lines[3:]])


class JudgeProgress:
    """ "waiting for the judge" lines: printed only when the count changes, straight to the terminal.

    Never printed on an xdist worker (it would land in captured output), and never into a test's capture.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.last: tuple[int, int] | None = None

    def __call__(self, resolved: int, total: int) -> None:
        """Called by the planner every few seconds while an item waits."""
        if is_worker(self.config) or (resolved, total) == self.last:
            return
        self.last = (resolved, total)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        disabled = getattr(capture, "global_and_fixture_disabled", None)
        context: AbstractContextManager[object] = disabled() if disabled is not None else nullcontext()
        with context:
            reporter.write_line(f"agentloop: waiting for the judge: {resolved}/{total} rubric verdicts resolved")


def progress_of(config: pytest.Config) -> JudgeProgress:
    """The session's one progress printer."""
    return config.stash.setdefault(PROGRESS_KEY, JudgeProgress(config))
