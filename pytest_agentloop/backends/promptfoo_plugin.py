"""``--agentloop-backend=promptfoo``: the session's eval items graded by one Promptfoo run.

Registered from ``plugin.py`` only in that mode. Eval items are swapped for
:class:`PromptfooEvalItem` once selection is final; when collection finishes,
one thread runs Promptfoo over them, and each item reports from the outcome it
gets. Under xdist every worker collects the same items; a file lock in the
run's folder (``<agentloop_artifacts_dir>/promptfoo/<test run id>/``) lets the
first worker run Promptfoo and the others read its outcomes, so it runs once.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from pytest_agentloop.assertions.excerpts import head
from pytest_agentloop.backends.promptfoo_backend import BackendRun, Job, Outcome, Settings, load_outcomes, save_outcomes
from pytest_agentloop.backends.promptfoo_export import ExportTarget, Grader
from pytest_agentloop.backends.promptfoo_install import PromptfooUnavailable, ensure_promptfoo
from pytest_agentloop.backends.promptfoo_run import PromptfooRunError
from pytest_agentloop.collect import JUDGE_OFF, EvalItem
from pytest_agentloop.config import settings_of
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.judge.context import read_context
from pytest_agentloop.results import EvalResult
from pytest_agentloop.results import Outcome as ResultOutcome

PLUGIN_NAME = "agentloop-promptfoo"
KEEP_RUNS = 5


def _say_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class PromptfooPlugin:
    """The backend for one session: installs/checks Promptfoo at configure time, runs it once."""

    name = PLUGIN_NAME

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings = settings_of(config)
        try:
            self.executable = ensure_promptfoo(_say_stderr)
        except PromptfooUnavailable as exc:
            raise pytest.UsageError(f"--agentloop-backend=promptfoo: {exc}") from None
        self.future: concurrent.futures.Future[dict[str, Outcome]] | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentloop-promptfoo")

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Swap the selected eval items for Promptfoo-graded ones (same node ids, same markers)."""
        for index, item in enumerate(items):
            if type(item) is EvalItem:
                items[index] = PromptfooEvalItem.swap(item)

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Start the one Promptfoo run over the selected eval items."""
        items = [i for i in session.items if isinstance(i, PromptfooEvalItem)]
        if self.config.option.collectonly or not items:
            return
        jobs = []
        for item in items:
            try:
                jobs.append(item.job())
            except AgentloopError:
                continue  # the item's own setup reports it
        self.future = self._pool.submit(self._run_once, jobs)

    def _run_once(self, jobs: list[Job]) -> dict[str, Outcome]:
        work = self._work_dir()
        with FileLock(str(work / "lock")):
            done = work / "outcomes.json"
            if done.is_file():
                return load_outcomes(done)
            prune_runs(work.parent, keep=work)
            try:
                outcomes = BackendRun(jobs, self._backend_settings(), work, self.executable, self._say).run()
            except (PromptfooRunError, OSError) as exc:
                outcomes = {j.nodeid: Outcome(j.nodeid, "error", f"Promptfoo run failed: {exc}") for j in jobs}
            save_outcomes(done, outcomes)
            return outcomes

    def _work_dir(self) -> Path:
        workerinput = getattr(self.config, "workerinput", None)
        run_id = workerinput["testrunuid"] if workerinput else uuid.uuid4().hex
        work = self.config.rootpath / self.settings.artifacts_dir / "promptfoo" / str(run_id)
        work.mkdir(parents=True, exist_ok=True)
        return work

    def _backend_settings(self) -> Settings:
        s = self.settings
        grader = Grader(s.judge_model, s.judge_base_url, s.judge_api, s.judge_key_env)
        return Settings(s.judge_mode, s.judge_model, s.judge_base_url, grader, s.concurrency)

    def _say(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and not hasattr(self.config, "workerinput"):
            reporter.write_line(line)

    def outcome(self, nodeid: str) -> Outcome:
        """This eval's outcome, waiting for the run."""
        if self.future is None:
            return Outcome(nodeid, "error", "Promptfoo was not run for this item")
        found = self.future.result().get(nodeid)
        return found or Outcome(nodeid, "error", "Promptfoo's run has no outcome for this eval")

    def pytest_unconfigure(self) -> None:
        """Stop the worker thread."""
        self._pool.shutdown(wait=True)


def prune_runs(folder: Path, keep: Path, newest: int = KEEP_RUNS) -> None:
    """Remove all but the newest run folders (config, results, Promptfoo's state) besides ``keep``."""
    runs = sorted((p for p in folder.iterdir() if p.is_dir() and p != keep), key=lambda p: p.stat().st_mtime)
    for old in runs[: max(0, len(runs) - newest + 1)]:
        shutil.rmtree(old, ignore_errors=True)


class PromptfooFailed(AssertionError):
    """An eval Promptfoo failed; carries its per-assertion results."""

    def __init__(self, item: PromptfooEvalItem, outcome: Outcome) -> None:
        super().__init__(f"eval {item.spec.id}: failed under Promptfoo")
        self.item, self.outcome = item, outcome


class PromptfooEvalItem(EvalItem):
    """An eval item whose outcome comes from the session's Promptfoo run."""

    pf_outcome: Outcome | None = None

    @classmethod
    def swap(cls, item: EvalItem) -> PromptfooEvalItem:
        """The same eval (name, spec, markers) as a Promptfoo-graded item."""
        assert isinstance(item.parent, pytest.Collector)
        new: PromptfooEvalItem = cls.from_parent(
            item.parent, name=item.name, spec=item.spec, suite=item.suite, store=item.store
        )
        for marker in item.own_markers:
            new.add_marker(getattr(pytest.mark, marker.name)(*marker.args, **marker.kwargs))
        return new

    @property
    def judged(self) -> bool:
        """Never handed to the native judge: Promptfoo grades this item."""
        return False

    def job(self) -> Job:
        """What the backend run needs for this eval (what the native judge would be shown, too)."""
        request = self.grade_request()
        record = self.store.get(self.spec.trace)
        artifacts = record.artifacts_dir.resolve() if record.artifacts_dir.is_dir() else None
        dataroom = self.suite.dataroom_dir.resolve() if self.suite.dataroom_dir else None
        limit = settings_of(self.config).judge_context_bytes
        context = read_context(request.eval_id, request.artifacts_dir, request.judge_context, limit)
        target = ExportTarget(
            self.spec, self.nodeid, request.eval_file, request.output, record.label, artifacts, dataroom,
            question=request.question, context=context,
        )  # fmt: skip
        return Job(target, request.store_path)

    def setup(self) -> None:
        """Load the recorded run and this eval's outcome from the Promptfoo run; errors are pytest errors."""
        problem = None
        try:
            self.record = self.store.get(self.spec.trace)
            _ = self.record.answer
        except AgentloopError as exc:
            problem = f"eval {self.spec.id}: {exc.display(self.config.rootpath)}"
        if problem or self.record is None:
            pytest.fail(problem or "no record", pytrace=False)
        self.user_properties.extend([("trace_id", self.record.trace_id), ("trace_label", self.record.label)])
        plugin = self.config.pluginmanager.get_plugin(PLUGIN_NAME)
        assert isinstance(plugin, PromptfooPlugin)
        outcome = self.pf_outcome = plugin.outcome(self.nodeid)
        self._describe_outcome(outcome)
        if outcome.status == "error":
            pytest.fail(outcome.message, pytrace=False)

    def _describe_outcome(self, outcome: Outcome) -> None:
        self.user_properties.append(("backend", "promptfoo"))
        literal = [c for c in outcome.components if c.type not in (None, "llm-rubric", "assert-set")]
        if literal:
            self.user_properties.append(("literal_score", f"{sum(c.score for c in literal) / len(literal):.4f}"))
        rubric = outcome.rubric
        if rubric is not None:
            self.user_properties.extend(
                [
                    ("judge_score", f"{rubric.score:.4f}"),
                    ("verdict_source", rubric.source),
                    ("judge_reason", rubric.reason),
                    ("judge_votes", f"{int(rubric.passed)}/1"),
                    ("judge_flaky", "false"),
                    ("judge_input_tokens", str(rubric.input_tokens or 0)),
                    ("judge_output_tokens", str(rubric.output_tokens or 0)),
                ]
            )

    def result(self, outcome: ResultOutcome, explanation: str, duration: float = 0.0) -> EvalResult:
        """The typed result record, its rubric part from the Promptfoo run."""
        record = super().result(outcome, explanation, duration)
        rubric = self.pf_outcome.rubric if self.pf_outcome is not None else None
        if rubric is None:
            return record
        return replace(
            record,
            score=rubric.score,
            verdict_source=rubric.source,
            judge_score=rubric.score,
            judge_reason=rubric.reason,
            judge_votes=f"{int(rubric.passed)}/1",
            input_tokens=rubric.input_tokens,
            output_tokens=rubric.output_tokens,
        )

    def runtest(self) -> None:
        """Report the outcome Promptfoo gave."""
        outcome = self.pf_outcome
        assert outcome is not None
        if outcome.status == "skipped":
            pytest.skip(JUDGE_OFF)
        if outcome.status != "passed":
            raise PromptfooFailed(self, outcome)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        """Promptfoo's per-assertion results; anything else as an eval item would."""
        if isinstance(excinfo.value, PromptfooFailed):
            return format_promptfoo_failure(self, excinfo.value.outcome)
        return super().repr_failure(excinfo, style=style)


def format_promptfoo_failure(item: PromptfooEvalItem, outcome: Outcome) -> str:
    """The long report of an eval Promptfoo failed."""
    record = item.record
    trace = f"{record.label} ({record.trace_id})" if record else item.spec.trace
    lines = [
        f"eval {item.spec.id}: {item.spec.title}",
        f"  source trace: {trace}",
        f"  Promptfoo: FAILED: {outcome.message}",
        "",
    ]
    for component in outcome.components:
        status = "PASSED" if component.passed else "FAILED"
        metric = f" [{component.metric}]" if component.metric else ""
        lines.append(f"  {status} {component.type}{metric}: score {component.score:.2f}: {head(component.reason, 300)}")
    if outcome.rubric is not None and not outcome.rubric.passed:
        r = outcome.rubric
        lines.append(f"  rubric FAILED by {r.source}: score {r.score:.2f} (threshold {item.spec.threshold:g})")
        lines.append(f"  reason: {r.reason}")
    if record is not None:
        lines += ["", f"  output: {head(record.answer, 300)}"]
    return "\n".join(lines)
