"""``--agentloop-live``: run the candidate harness on the selected evals' questions and check the fresh runs.

A small plugin object registered at configure time. After collection it
plans one run per distinct question (K with ``--agentloop-live-repeat``) and
starts them at once on its pool; each eval item asks it for its run through
:data:`~pytest_agentloop.agent.source.RUN_SOURCE_KEY`, waiting only for its
own. While an item waits, rubric grading of every finished run is started,
so runs and judging overlap. Fresh runs go to
``<agentloop_artifacts_dir>/runs/<run id>/traces/`` and their verdicts to
``.../runs/<run id>/verdicts.jsonl``; the recorded store is never written.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib.machinery
import importlib.util
import json
import queue
import threading
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.agent.errors import AgentConfigError, RunFailed
from pytest_agentloop.agent.options import LiveSettings, build_live_settings
from pytest_agentloop.agent.pacing import Pacing
from pytest_agentloop.agent.pool import LivePool, Planned
from pytest_agentloop.agent.questions import QuestionSpec, from_record
from pytest_agentloop.agent.repeats import RepeatOutcome, combine_report, other_passes
from pytest_agentloop.agent.setup import AgentSetup, build_setup, missing_key
from pytest_agentloop.agent.source import RUN_SOURCE_KEY, RunPending
from pytest_agentloop.collect import EvalItem, store_for
from pytest_agentloop.config import JudgeMode, settings_of
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.judge.planner import PLANNER_KEY
from pytest_agentloop.spend import MONEY_KEY
from pytest_agentloop.traces.store import TraceRecord

RUN_ID_KEY = "agentloop_live_run_id"
WAKE_EVERY = 2.0
PROGRESS_EVERY = 10.0


def check_usage(config: pytest.Config, live: LiveSettings) -> AgentSetup:
    """Everything that makes ``--agentloop-live`` a usage error, checked before anything runs."""
    settings = settings_of(config)
    if not live.agent:
        raise pytest.UsageError(
            "--agentloop-live needs an agent: set the ini option agentloop_agent to 'package.module:function' "
            "(an async callable) or to 'harness' (the built-in Agents SDK runner)"
        )
    missing = missing_key(live.key_env)
    if missing is not None:
        raise pytest.UsageError(f"--agentloop-live: {missing}")
    if settings.judge_mode is JudgeMode.REPLAY and "judge_mode" not in settings.given:
        raise pytest.UsageError(
            f"--agentloop-live grades fresh outputs, which have no stored verdicts: the judge defaulted to replay "
            f"because its key (${settings.judge_key_env}) is not set; set it, or pass --agentloop-judge=off"
        )
    if settings.judge_mode is JudgeMode.REPLAY:
        raise pytest.UsageError(
            "--agentloop-live grades fresh outputs, which have no stored verdicts: use --agentloop-judge=record "
            "(the default with a judge key), refresh or off, not replay"
        )
    _check_extras()
    harness = config.rootpath / settings.harness if settings.harness else None
    try:
        return build_setup(
            live.agent,
            harness,
            config.rootpath,
            timeout=live.timeout,
            redact=live.redact or None,
            redact_builtin=live.redact_builtin,
            prices=list(live.prices),
        )
    except AgentloopError as exc:
        raise pytest.UsageError(f"--agentloop-live: {exc}") from None


EXTRAS = ("agents", "engine.telemetry.local_processor")
"""What live runs import: the Agents SDK and HALO's span processor (capture writes spans with it)."""


def _check_extras() -> None:
    """The extra live runs need, found but not imported: the SDK is imported on the pool's thread, later."""
    missing = [name for name in EXTRAS if not _findable(name)]
    if missing:
        raise pytest.UsageError(
            f"--agentloop-live needs the extra pytest-agentloop[halo] (the Agents SDK and HALO): "
            f"{', '.join(missing)} is not installed; install it with pip install 'pytest-agentloop[halo]'"
        )


def _findable(name: str) -> bool:
    """Whether ``name`` can be imported, found without importing it or its parents (``engine.telemetry`` imports
    the SDK, a second of start-up)."""
    top, *rest = name.split(".")
    spec = importlib.util.find_spec(top)
    for part in rest:
        if spec is None or spec.submodule_search_locations is None:
            return False
        spec = importlib.machinery.PathFinder.find_spec(part, list(spec.submodule_search_locations))
    return spec is not None


def register_live(config: pytest.Config) -> None:
    """Register the live plugin when ``--agentloop-live`` is given (usage errors raised here)."""
    live = build_live_settings(config)
    if not live.live:
        return
    setup = check_usage(config, live)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and RUN_ID_KEY in workerinput:
        run_id = str(workerinput[RUN_ID_KEY])
    else:
        run_id = str(getattr(config.pluginmanager.get_plugin("agentloop-session"), "run_id", "live"))
    folder = config.rootpath / settings_of(config).artifacts_dir / "runs" / run_id
    plugin = LiveRuns(config, live, setup, run_id, folder)
    config.pluginmanager.register(plugin, LiveRuns.name)
    if not config.option.collectonly and not _xdist_controller(config):
        plugin.pool.warm()  # the SDK import starts now, beside collection; the controller runs no agent
    config.stash[RUN_SOURCE_KEY] = plugin
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(LiveXdistHooks(run_id), "agentloop-live-xdist")


def _xdist_controller(config: pytest.Config) -> bool:
    """Whether this process hands items to xdist workers (and so never runs an agent itself)."""
    return not hasattr(config, "workerinput") and getattr(config.option, "dist", "no") != "no"


class LiveXdistHooks:
    """Controller side: every worker writes into the controller's run folder."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        """Hand the run id to a starting worker."""
        node.workerinput[RUN_ID_KEY] = self.run_id


class LiveRuns:
    """Plans, starts and hands out the session's fresh runs."""

    name = "agentloop-live"

    def __init__(self, config: pytest.Config, live: LiveSettings, setup: AgentSetup, run_id: str, folder: Path):
        self.config, self.live, self.setup, self.run_id, self.folder = config, live, setup, run_id, folder
        settings = settings_of(config)
        pacing = Pacing(settings.rate, settings.rate_dir(config.rootpath), live.key_env) if settings.rate else None
        self.pool = LivePool(setup, folder, live.concurrency, config.stash.get(MONEY_KEY, None), pacing)
        self.item_keys: dict[str, list[str]] = {}
        self.items: dict[str, EvalItem] = {}
        self.finished: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.submitted: set[str] = set()
        self.described: set[str] = set()
        self.flaky: dict[str, str] = {}
        self.checked: dict[str, str] = {}
        """The run each item checked (its first that did not fail); its other runs are the repeats."""
        self.lock = threading.RLock()
        self.closing = False
        self.grader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="agentloop-live-grader")
        """Starts rubric grading as runs end, while the main thread waits for other evals' verdicts."""

    # -- planning -------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Start one run per distinct question (times the repeat) as soon as the items are known."""
        if self.config.option.collectonly:
            return
        planned: dict[str, Planned] = {}
        labels: set[str] = set()
        for item in session.items:
            try:
                recorded = self._recorded(item)
            except AgentloopError:
                continue  # the item's own setup reports the missing recording
            if recorded is None:
                continue
            if isinstance(item, EvalItem):
                self.items[item.nodeid] = item
            question = from_record(recorded)
            self.item_keys[item.nodeid] = [self._plan(question, n, planned, labels) for n in range(self.live.repeat)]
        self.pool.start(list(planned.values()), self._finished)
        if not planned:
            return
        self._say(
            f"agentloop: live: {len(planned)} runs of harness {self.setup.harness.version} "
            f"({self.live.agent}, concurrency {self.live.concurrency}) into {self._display(self.pool.store)}"
        )

    def _recorded(self, item: pytest.Item) -> TraceRecord | None:
        """The recorded run whose question ``item`` needs run again (None: the item reads no run)."""
        if isinstance(item, EvalItem):
            return item.store.get(item.spec.trace)
        marker = item.get_closest_marker("agentloop_trace")
        if marker is None or not marker.args:
            return None
        store = store_for(self.config, item.path, None, settings_of(self.config))
        return store.get(str(marker.args[0]))

    def _plan(self, question: QuestionSpec, repeat: int, planned: dict[str, Planned], labels: set[str]) -> str:
        key = f"{question.key}-{repeat + 1}"
        if key not in planned:
            label = question.label if repeat == 0 else f"{question.label}.r{repeat + 1}"
            if label in labels:
                label = f"{label}-{question.key[:6]}"
            labels.add(label)
            planned[key] = Planned(question, label, key)
        return key

    # -- the run source ---------------------------------------------------------------

    def record_for(self, item: pytest.Item, wait: bool = True) -> TraceRecord:
        """The fresh run ``item`` checks: its first run that did not fail (with repeats, failed runs are samples)."""
        keys = self.item_keys.get(item.nodeid)
        if not keys:
            self._recorded(item)  # raises the store's own error
            raise RunPending(f"no live run planned for {item.nodeid}")
        failures: list[AgentloopError] = []
        for key in keys:
            future = self.pool.futures[key]
            if not wait and not future.done():
                raise RunPending(f"the live run for {item.nodeid} has not finished")
            if wait:
                self._wait_for(future)
            try:
                record = future.result()
            except AgentloopError as exc:
                failures.append(exc)
                continue
            self.checked[item.nodeid] = key
            self._describe(item, record)
            return record
        if len(failures) == 1:
            raise failures[0]
        raise RunFailed(f"all {len(keys)} live runs failed: " + "; ".join(str(f) for f in failures))

    def _wait_for(self, future: concurrent.futures.Future[TraceRecord]) -> None:
        """Wait for one run, grading finished runs meanwhile and saying how far the runs are."""
        waited = 0.0
        while not future.done():
            try:
                self.finished.get(timeout=WAKE_EVERY)
            except queue.Empty:
                waited += WAKE_EVERY
                if waited % PROGRESS_EVERY < WAKE_EVERY:
                    self._say(f"agentloop: live: {self._done_count()}/{len(self.pool.futures)} runs finished")
            self._grade_finished()
        self._grade_finished()

    def verdicts_path(self, item: pytest.Item) -> Path:
        """Fresh verdicts go to the run's folder, never the tracked verdicts.jsonl."""
        return self.folder / "verdicts.jsonl"

    def _finished(self, key: str) -> None:
        """A run ended (on the live loop): wake a waiting item, and start grading on the grader thread.

        Grading starts the moment a run ends, not when the main thread next looks: it may be waiting
        for another eval's verdict meanwhile.
        """
        self.finished.put(key)
        if not self.closing and not hasattr(self.config, "workerinput"):
            with contextlib.suppress(RuntimeError):  # shut down: the session is finishing
                self.grader.submit(self._grade_finished)

    def _grade_finished(self) -> None:
        """Start rubric grading for every item whose run has finished (controller only: it runs every item)."""
        if hasattr(self.config, "workerinput") or PLANNER_KEY not in self.config.stash or self.closing:
            return
        planner = self.config.stash[PLANNER_KEY]
        with self.lock:  # the main thread and the grader thread: one submission per eval
            for nodeid, item in self.items.items():
                if nodeid in self.submitted or not item.judged:
                    continue
                try:
                    planner.submit(item.grade_request())
                except RunPending:
                    continue  # its run (or, with repeats, the run it checks) has not finished
                except AgentloopError:
                    pass  # failed runs: the item's setup reports it
                self.submitted.add(nodeid)

    def _describe(self, item: pytest.Item, record: TraceRecord) -> None:
        with self.lock:
            if item.nodeid in self.described:
                return
            self.described.add(item.nodeid)
        data = json.loads((record.run_dir / "record.json").read_text(encoding="utf-8"))
        usage = data.get("usage") or {}
        item.user_properties.extend(
            [
                ("harness_version", record.harness_version),
                ("live_run", self._display(record.run_dir)),
                ("agent_input_tokens", str(usage.get("input_tokens", ""))),
                ("agent_output_tokens", str(usage.get("output_tokens", ""))),
                ("agent_cost_usd", "" if data.get("cost_usd") is None else f"{data['cost_usd']:.6f}"),
                ("agent_seconds", str(data.get("wall_seconds", ""))),
            ]
        )

    def _done_count(self) -> int:
        return sum(f.done() for f in self.pool.futures.values())

    # -- repeats -----------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        """With K repeats, the majority of an eval's K runs is its outcome (the call phase only)."""
        report: pytest.TestReport = yield
        keys = self.item_keys.get(item.nodeid, [])
        if call.when != "call" or len(keys) < 2 or not isinstance(item, EvalItem) or report.skipped:
            return report
        records: list[TraceRecord | AgentloopError] = []
        for key in (k for k in keys if k != self.checked.get(item.nodeid)):
            try:
                records.append(self.pool.futures[key].result())
            except AgentloopError as exc:
                records.append(exc)
        planner = self.config.stash.get(PLANNER_KEY, None)
        errors = sum(isinstance(r, AgentloopError) for r in records)
        outcome = RepeatOutcome((report.passed, *other_passes(item, records, planner)), errors)
        combine_report(item, report, outcome)
        return report

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Note evals whose live runs disagree (workers' reports included)."""
        props = dict(report.user_properties)
        if props.get("live_flaky") == "true":
            self.flaky[report.nodeid] = str(props.get("live_passes"))

    # -- the end ---------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Stop grading (before the judge stops) and the pool: runs not started are cancelled.

        Runs started are let finish (an xdist worker's run another worker waits for would else be run twice),
        unless the session was interrupted.
        """
        self.closing = True
        self.grader.shutdown(wait=True)
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or bool(session.shouldstop or session.shouldfail)
        self.pool.close(wait=not interrupted)

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Live runs: how many, failed, time and money; where they are."""
        if hasattr(self.config, "workerinput"):
            return
        records = [json.loads(p.read_text()) for p in sorted((self.pool.store / "runs").glob("*/record.json"))]
        if not records:
            return
        failed = [r for r in records if r.get("status") != "ok"]
        costs = [r["cost_usd"] for r in records if r.get("cost_usd") is not None]
        money = f", ${sum(costs):.4f}" if costs else ""
        slowest = max(float(r.get("wall_seconds") or 0) for r in records)
        terminalreporter.write_line(
            f"agentloop live: {len(records)} runs of harness {records[0].get('harness_version')}, "
            f"{len(failed)} failed, slowest {slowest:.1f}s{money}; written to {self._display(self.pool.store)}"
        )
        for record in failed:
            terminalreporter.write_line(f"  failed run {record['label']}: {record.get('error')}", red=True)
        for nodeid, votes in sorted(self.flaky.items()):
            terminalreporter.write_line(f"flaky: {nodeid} (live runs disagree: {votes} passed)", yellow=True)

    @pytest.hookimpl
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Unregister (the pool is closed at session finish)."""
        self.grader.shutdown(wait=False)
        self.pool.close(wait=False)
        for name in (LiveRuns.name, "agentloop-live-xdist"):
            plugin = config.pluginmanager.get_plugin(name)
            if plugin is not None:
                config.pluginmanager.unregister(plugin)

    def _display(self, path: Path) -> str:
        root = self.config.rootpath
        return (path.relative_to(root) if path.is_relative_to(root) else path).as_posix()

    def _say(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and not hasattr(self.config, "workerinput"):
            reporter.write_line(line)


__all__ = ["AgentConfigError", "LiveRuns", "register_live"]
