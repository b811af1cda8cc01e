"""The session coordinator: decides when things happen; the modules it calls decide how.

Order at the end of a session (on the xdist controller, or the only process):
stop the judge → tidy verdict stores → the gate decides the exit status → the
handoff (which then agrees with it) → the run history → the CI summaries →
the results hook. Each eval's :class:`EvalResult` is made where it ran and
reaches the controller in ``config.workeroutput``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from fnmatch import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_agentloop.assertions.registry import using
from pytest_agentloop.collect import EvalItem, session_registry
from pytest_agentloop.config import JudgeMode, JudgeSchema, Settings, evaluates, is_worker, settings_of
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.gate.finish import RunInfo
from pytest_agentloop.gate.finish import now as now_utc
from pytest_agentloop.gate.run import GateRun, new_run_id
from pytest_agentloop.gcfreeze import freeze_once
from pytest_agentloop.judge.endpoint import JudgeEndpoint
from pytest_agentloop.judge.lookahead import queued_items
from pytest_agentloop.judge.planner import PLANNER_KEY, JudgePlanner
from pytest_agentloop.judge.verdicts import StoreSurvey, Verdict, VerdictStore, survey
from pytest_agentloop.judge.warmup import PreparedJudge
from pytest_agentloop.outcomes import explanation_of, lost_result, outcome_of, summary_lines, warn_single_split_tags
from pytest_agentloop.pyevals import is_python_eval, python_result
from pytest_agentloop.results import EvalResult, Outcome, Selection
from pytest_agentloop.spec import Split
from pytest_agentloop.spend import MONEY_KEY, MoneyBudget

if TYPE_CHECKING:
    from pytest_agentloop.handoff.produce import HandoffOutcome

WORKER_KEY = "agentloop"
__all__ = ["AgentloopSession", "XdistHooks", "is_worker"]


def endpoint_for(settings: Settings, root: Path, money: MoneyBudget | None = None) -> JudgeEndpoint:
    """The judge endpoint the settings describe (key read from the environment; rate budget under ``root``)."""
    return JudgeEndpoint(
        model=settings.judge_model,
        api_key=settings.judge_key(),
        base_url=settings.judge_base_url,
        api=settings.judge_api,
        timeout=settings.judge_timeout,
        max_retries=settings.judge_retries,
        key_env=settings.judge_key_env,
        max_tokens=settings.judge_max_tokens,
        schema=settings.judge_schema is JudgeSchema.ON,
        rate=settings.rate,
        rate_dir=settings.rate_dir(root),
        money=money,
    )


class AgentloopSession:
    """Registered as a plugin for one session; the controller alone writes the summary, history and stores."""

    name = "agentloop-session"

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings = settings_of(config)
        self.run_id = new_run_id()
        self.started = now_utc()
        self.records: dict[str, EvalResult] = {}
        self.durations: dict[str, float] = defaultdict(float)
        self.reported: dict[str, str] = {}
        self.selection = Selection()
        self.deselected: list[str] = []
        self.broken_eval_files = 0
        self.other_collect_errors = 0
        self.wanted: dict[tuple[str, str], str] = {}
        self.stores: set[Path] = set()
        self.written: set[Path] = set()
        self.survey = StoreSurvey()
        self.planner: JudgePlanner | None = None
        self.prepared: PreparedJudge | None = None
        self.gate = GateRun(self.settings, config.rootpath, self.run_id)
        self.handoff: HandoffOutcome | None = None
        self.handoff_error: str | None = None

    def is_eval(self, nodeid: str) -> bool:
        """Whether ``nodeid`` is an item of an eval file (by the eval file patterns)."""
        name = nodeid.split("::")[0].rsplit("/", 1)[-1]
        return any(fnmatch(name, p) for p in self.settings.eval_patterns)

    # -- before anything runs ------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Check the baseline (and the history, when the gate is asked for) before any eval runs."""
        calls = self.settings.judge_mode in (JudgeMode.RECORD, JudgeMode.REFRESH)
        if calls and evaluates(self.config) and not _xdist_controller(self.config):
            self.prepared = PreparedJudge(self._endpoint(), self.settings.concurrency)
        if is_worker(self.config) or not evaluates(self.config):
            return
        self.gate.start()
        try:
            self.gate.check_inputs()
        except AgentloopError as exc:
            raise pytest.UsageError(f"agentloop: {exc}") from None

    # -- collection --------------------------------------------------------------------

    @pytest.hookimpl
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """Count broken eval files apart from other collection errors."""
        if not report.failed:
            return
        if self.is_eval(report.nodeid or str(report.fspath)):
            self.broken_eval_files += 1
        else:
            self.other_collect_errors += 1

    @pytest.hookimpl
    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        """Remember what ``-k``, ``-m`` and ``--agentloop-split`` left out."""
        self.deselected += [item.nodeid for item in items]

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Note the current subject of every judged eval, before -k/-m deselect any; apply --agentloop-split."""
        evals = [i for i in items if isinstance(i, EvalItem)]
        self._warn_single_split_tags(evals)
        if self.settings.split:
            dropped: list[pytest.Item] = [i for i in evals if i.spec.split.value != self.settings.split]
            if self.settings.split != Split.OPTIMIZATION.value:  # a Python eval is in the optimization split
                dropped += [i for i in items if is_python_eval(i)]
            if dropped:
                self.config.hook.pytest_deselected(items=dropped)
                items[:] = [i for i in items if i not in set(dropped)]
        if not evaluates(self.config):
            return  # nothing will be graded, so nothing is read for the verdict bookkeeping
        for item in items:
            if isinstance(item, EvalItem) and item.spec.scoring.needs_judge:
                try:
                    request = item.grade_request()
                except AgentloopError:
                    continue
                self.wanted[(str(request.eval_path), request.eval_id)] = request.subject
                self.stores.add(request.store_path)

    def _warn_single_split_tags(self, evals: list[EvalItem]) -> None:
        """Once per session, and only when splits matter here (a split is selected or a handoff written)."""
        if self.settings.split is None and self.settings.handoff is None:
            return
        if is_worker(self.config) and self.config.workerinput.get("workerid") != "gw0":  # type: ignore[attr-defined]
            return
        warn_single_split_tags(evals)

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Note the selection; start judging the selected items (not when only collecting or setting up)."""
        self.selection = Selection(tuple(i.nodeid for i in session.items), tuple(dict.fromkeys(self.deselected)))
        if not evaluates(self.config):
            return
        freeze_once("collected")  # what exists now lives until exit: spare pytest's end and the exit its scan
        judged = [i for i in session.items if isinstance(i, EvalItem) and i.judged]
        endpoint = self._endpoint()
        self.planner = JudgePlanner(
            endpoint,
            self.settings.judge_mode,
            self.settings.concurrency,
            self._write_verdicts,
            self.settings.judge_context_bytes,
            self.prepared.for_endpoint(endpoint) if self.prepared else None,
        )
        self.config.stash[PLANNER_KEY] = self.planner
        if judged and not is_worker(self.config):
            self._plan(judged)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        """On an xdist worker, start grading the items queued here (up to the concurrency) while this one runs."""
        if self.planner is None or not is_worker(self.config):
            return
        ahead = queued_items(self.config, item.session.items, self.settings.concurrency)
        for candidate in (item, nextitem, *ahead):
            if isinstance(candidate, EvalItem) and candidate.judged:
                try:
                    self.planner.submit(candidate.grade_request())
                except AgentloopError:
                    continue

    def _endpoint(self) -> JudgeEndpoint:
        return endpoint_for(self.settings, self.config.rootpath, self.config.stash.get(MONEY_KEY, None))

    def _plan(self, items: list[EvalItem]) -> None:
        assert self.planner is not None
        for item in items:
            try:
                self.planner.submit(item.grade_request())
            except AgentloopError:
                continue  # the item's own setup reports it
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and self.settings.judge_mode is not JudgeMode.REPLAY:
            reporter.write_line(
                f"agentloop: resolving {len(items) - len(self.planner.not_asked)} rubric verdicts "
                f"({self.settings.judge_mode.value} mode, "
                f"{self.planner.endpoint.describe()}, concurrency {self.settings.concurrency})"
            )

    def _write_verdicts(self, store_path: Path, verdicts: list[Verdict]) -> None:
        VerdictStore(store_path, self.settings.locks_dir(self.config.rootpath)).append(verdicts)
        self.stores.add(store_path)
        self.written.add(store_path)

    # -- outcomes ------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        """Where an eval runs, make its result record from the item and its first decisive report."""
        report: pytest.TestReport = yield
        python = is_python_eval(item)
        if isinstance(item, EvalItem) or python:
            self.durations[item.nodeid] += report.duration
            if item.nodeid not in self.records and (report.when == "call" or report.outcome != "passed"):
                if isinstance(item, EvalItem):
                    self.records[item.nodeid] = item.result(outcome_of(report), explanation_of(report, item))
                else:
                    self.records[item.nodeid] = python_result(item, report)
            elif python and report.when == "teardown" and report.failed and self.records[item.nodeid].passed:
                # A user fixture's teardown failed after the test passed: an error, as pytest counts it.
                self.records[item.nodeid] = python_result(item, report)
            if report.when == "teardown" and item.nodeid in self.records:
                # The total is known now, while the judge is still answering other evals; the session's end has
                # none of these copies left to make.
                self.records[item.nodeid] = self._with_duration(self.records[item.nodeid])
        return report

    def _with_duration(self, result: EvalResult) -> EvalResult:
        """``result`` with the eval's total duration over its setup, call and teardown."""
        total = round(self.durations.get(result.nodeid, result.duration), 6)
        return result if result.duration == total else replace(result, duration=total)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Note every item's outcome (on the controller too): Python-test failures, and evals a crash lost."""
        if report.nodeid not in self.reported and (report.when == "call" or report.outcome != "passed"):
            self.reported[report.nodeid] = outcome_of(report).value
        elif report.failed:
            self.reported[report.nodeid] = Outcome.ERROR.value

    # -- the end ---------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Stop the judge; workers hand their records to the controller, which finishes the session."""
        if self.planner is not None:
            self.planner.close()
        if is_worker(self.config):
            self.config.workeroutput[WORKER_KEY] = self.worker_output()  # type: ignore[attr-defined]
            return
        if not evaluates(self.config):
            return
        self.survey = survey(self.stores, self.wanted, _subjects_elsewhere)
        for path in sorted(self.written):  # only stores this session wrote: a replay run never writes
            VerdictStore(path, self.settings.locks_dir(self.config.rootpath)).rewrite()
        results = self.final_results()
        if not results:
            return
        status = self._finish(results, int(session.exitstatus))
        if status != session.exitstatus:
            session.exitstatus = pytest.ExitCode(status)
        self.config.hook.pytest_agentloop_results(config=self.config, results=self.gate_results(results))

    def _finish(self, results: list[EvalResult], status: int) -> int:
        """Gate, then handoff, then history, then summaries; returns the exit status."""
        status = self.gate.decide(results, self.selection, status, self.outside_failures())
        annotated = self.gate_results(results)
        if self.settings.handoff is not None:
            self._write_handoff(annotated)
        options = {k: str(v) for k, v in vars(self.settings).items() if k not in ("feedback", "given")}
        baseline_ref = self.gate.outcome.baseline_ref if self.gate.outcome is not None else None
        run = RunInfo(self.run_id, self.started, dict(options), baseline_ref)
        status = self.gate.record(run, self.selection, status)
        self.gate.summaries(results, self.handoff.handoff if self.handoff else None)
        return status

    def gate_results(self, results: list[EvalResult]) -> list[EvalResult]:
        """Results as the gate annotated them (baseline status), else as they are."""
        return self.gate.outcome.results if self.gate.outcome is not None else results

    def outside_failures(self) -> list[str]:
        """Failures the gate can never excuse: Python tests that are not Python evals, and collection errors."""
        broken = (n for n, o in self.reported.items() if o in ("failed", "error"))
        python = sorted(n for n in broken if not self.is_eval(n) and n not in self.records)
        return python + ["collection"] * (self.broken_eval_files + self.other_collect_errors)

    def final_results(self) -> list[EvalResult]:
        """Every eval's record with its total duration; evals reported without a record (a crashed worker) too."""
        rows = {n: self._with_duration(r) for n, r in self.records.items()}
        for nodeid, outcome in self.reported.items():
            if nodeid not in rows and self.is_eval(nodeid):
                rows[nodeid] = lost_result(nodeid, outcome)
        return [rows[n] for n in sorted(rows)]

    def worker_output(self) -> dict[str, Any]:
        """What a worker hands the controller: JSON-safe records, its selection, verdict bookkeeping."""
        return {
            "results": [r.to_json() for r in self.final_results() if r.nodeid in self.records],
            "selection": self.selection.to_json(),
            "wanted": [[f, i, s] for (f, i), s in self.wanted.items()],
            "stores": sorted(str(p) for p in self.stores),
            "written": sorted(str(p) for p in self.written),
        }

    def merge_worker(self, data: dict[str, Any]) -> None:
        """Take a worker's output (called from the xdist hook on the controller)."""
        for row in data.get("results", []):
            result = EvalResult.from_json(row)
            self.records[result.nodeid] = result
            self.durations[result.nodeid] = result.duration
        self.selection = self.selection.merged(Selection.from_json(data.get("selection")))
        for eval_file, eval_id, subject in data.get("wanted", []):
            self.wanted[(eval_file, eval_id)] = subject
        self.stores.update(Path(p) for p in data.get("stores", []))
        self.written.update(Path(p) for p in data.get("written", []))

    def _write_handoff(self, results: list[EvalResult]) -> None:
        """Run HALO (or write the evidence-only handoff) over the gate's results; never changes the outcome."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")

        def say(line: str) -> None:
            if reporter is not None:
                reporter.write_line(line)

        try:
            with using(session_registry(self.config)):  # the handoff re-reads eval files that may use plugin types
                from pytest_agentloop.handoff.writer import write_handoff  # the handoff's modules, only when asked

                self.handoff = write_handoff(self.config, self.settings, results, say, self.run_id)
        except Exception as exc:
            self.handoff_error = f"{type(exc).__name__}: {exc}"
            return
        self.config.hook.pytest_agentloop_handoff(config=self.config, outcome=self.handoff)

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Evals by outcome, where verdicts came from, flaky evals, unused verdicts, the gate and handoff."""
        if is_worker(self.config):
            return
        lines = self.gate.lines() if not self.records else []
        results = self.gate_results(self.final_results())
        if results:
            terminalreporter.section("agentloop")
            lines = summary_lines(results, self.settings, self.planner) + self._closing_lines()
        for text, colour in lines:
            terminalreporter.write_line(text, **({colour: True} if colour else {}))

    def _closing_lines(self) -> list[tuple[str, str | None]]:
        lines = self._store_lines()
        if self.handoff_error:
            lines.append((f"agentloop: no handoff written: {self.handoff_error}", "red"))
        if self.handoff is not None:
            lines += self.handoff.summary()
        return lines + self.gate.lines()

    def _store_lines(self) -> list[tuple[str, str | None]]:
        """Unused and old-key verdicts, unfinished final lines, unreadable stores."""
        found = self.survey
        lines: list[tuple[str, str | None]] = []
        if found.unused:
            text = "stored verdicts are not used by any collected eval; remove them with `agentloop verdicts prune`"
            lines.append((f"{found.unused} {text}", None))
        if found.legacy:
            text = "stored verdicts use key version 1; re-key them with `agentloop verdicts migrate`"
            lines.append((f"{found.legacy} {text}", None))
        lines += [
            (f"{path}:{line}: an unfinished final line (a killed run?) was ignored", "yellow")
            for path, line in found.torn
        ]
        lines += [(f"unreadable verdict store: {problem}", "red") for problem in found.problems]
        return lines


def _subjects_elsewhere(store: Path) -> Mapping[tuple[Path, str], set[str]]:
    """The subjects of the store's folder over all its trace stores; an unreadable folder counts as none."""
    from pytest_agentloop.judge.review import subjects_beside

    try:
        return subjects_beside(store)
    except AgentloopError:
        return {}


def _xdist_controller(config: pytest.Config) -> bool:
    """Whether this process hands the items to xdist workers (and so never judges itself)."""
    return not is_worker(config) and bool(getattr(config.option, "numprocesses", None))


class XdistHooks:
    """Controller-side merge of workers' records; registered only when xdist is present."""

    def __init__(self, session: AgentloopSession) -> None:
        self.session = session

    @pytest.hookimpl
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """Merge what a finished worker put in its workeroutput."""
        data = getattr(node, "workeroutput", {}).get(WORKER_KEY)
        if isinstance(data, dict):
            self.session.merge_worker(data)
