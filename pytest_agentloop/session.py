"""The session: plans judging, writes verdicts, gathers outcomes (xdist workers' too), summarises.

Only this module and the CLI decide when files are written; the stores own how.
"""

from __future__ import annotations

import re
import sqlite3
import warnings
from collections import Counter, defaultdict
from dataclasses import replace
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.collect import JUDGE_OFF, EvalItem
from pytest_agentloop.config import JudgeMode, JudgeSchema, Settings, settings_of
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.gate.finish import GateOutcome, judge_gate, record_run, write_summaries
from pytest_agentloop.gate.finish import now as now_utc
from pytest_agentloop.gate.history import History
from pytest_agentloop.handoff.produce import HandoffOutcome
from pytest_agentloop.handoff.writer import new_run_id, write_handoff
from pytest_agentloop.judge.endpoint import JudgeEndpoint
from pytest_agentloop.judge.planner import PLANNER_KEY, JudgePlanner
from pytest_agentloop.judge.verdicts import StoreSurvey, Verdict, VerdictStore, survey
from pytest_agentloop.results import EvalResult, Outcome
from pytest_agentloop.spec import Split

WORKER_KEY = "agentloop"


def is_worker(config: pytest.Config) -> bool:
    """Whether this process is a pytest-xdist worker."""
    return hasattr(config, "workerinput")


def endpoint_for(settings: Settings) -> JudgeEndpoint:
    """The judge endpoint the settings describe (key read from the environment)."""
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
    )


class AgentloopSession:
    """Registered as a plugin for one session; the controller alone writes the summary and rewrites stores."""

    name = "agentloop-session"

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings = settings_of(config)
        self.outcomes: dict[str, str] = {}
        self.flaky: dict[str, str] = {}
        self.broken_eval_files = 0
        self.other_collect_errors = 0
        self.wanted: dict[tuple[str, str], str] = {}
        self.stores: set[Path] = set()
        self.written: set[Path] = set()
        self.survey = StoreSurvey()
        self.judge_counts: Counter[str] = Counter()
        self.planner: JudgePlanner | None = None
        self.results: dict[str, EvalResult] = {}
        self.durations: dict[str, float] = defaultdict(float)
        self.other_failures: set[str] = set()
        self.run_id = new_run_id()
        self.started = now_utc()
        self.gate: GateOutcome | None = None
        self.gate_error: str | None = None
        self.handoff: HandoffOutcome | None = None
        self.handoff_error: str | None = None

    # -- collection --------------------------------------------------------------------

    @pytest.hookimpl
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """Count broken eval files apart from other collection errors."""
        if not report.failed:
            return
        if any(fnmatch(Path(report.fspath).name, p) for p in self.settings.eval_patterns):
            self.broken_eval_files += 1
        else:
            self.other_collect_errors += 1

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Note the current subject of every judged eval, before -k/-m deselect any; apply --agentloop-split."""
        evals = [i for i in items if isinstance(i, EvalItem)]
        warn_single_split_tags(evals)
        if self.settings.split:
            dropped = [i for i in evals if i.spec.split.value != self.settings.split]
            if dropped:
                self.config.hook.pytest_deselected(items=dropped)
                items[:] = [i for i in items if i not in set(dropped)]
        for item in items:
            if isinstance(item, EvalItem) and item.spec.scoring.needs_judge:
                try:
                    request = item.grade_request()
                except AgentloopError:
                    continue
                self.wanted[(str(request.eval_path), request.eval_id)] = request.subject
                self.stores.add(request.store_path)

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Let other evals run past broken eval files; start judging the selected items."""
        if self.broken_eval_files and not self.other_collect_errors:
            self.config.option.continue_on_collection_errors = True
        if self.config.option.collectonly:
            return
        judged = [i for i in session.items if isinstance(i, EvalItem) and i.judged]
        self.planner = JudgePlanner(
            endpoint_for(self.settings),
            self.settings.judge_mode,
            self.settings.concurrency,
            self._write_verdicts,
            self.settings.judge_context_bytes,
        )
        self.config.stash[PLANNER_KEY] = self.planner
        if judged and not is_worker(self.config):
            self._plan(judged)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        """On an xdist worker, start grading the next item while this one runs (it is known to run here)."""
        if self.planner is None or not is_worker(self.config):
            return
        for candidate in (item, nextitem):
            if isinstance(candidate, EvalItem) and candidate.judged:
                try:
                    self.planner.submit(candidate.grade_request())
                except AgentloopError:
                    continue

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
                f"agentloop: resolving {len(items)} rubric verdicts ({self.settings.judge_mode.value} mode, "
                f"{self.planner.endpoint.describe()}, concurrency {self.settings.concurrency})"
            )

    def _write_verdicts(self, store_path: Path, verdicts: list[Verdict]) -> None:
        VerdictStore(store_path, self.settings.locks_dir(self.config.rootpath)).append(verdicts)
        self.stores.add(store_path)
        self.written.add(store_path)

    # -- outcomes ------------------------------------------------------------------------

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Record each eval's final outcome (setup errors and skips included)."""
        props = dict(report.user_properties)
        if "eval_id" not in props:
            if report.failed:
                self.other_failures.add(report.nodeid)
            return
        self.durations[report.nodeid] += report.duration
        if props.get("judge_flaky") == "true":
            self.flaky[report.nodeid] = str(props.get("judge_votes"))
        if report.when == "call" or report.outcome != "passed":
            outcome: str = "error" if report.failed and report.when != "call" else report.outcome
            if outcome == "skipped" and JUDGE_OFF in str(report.longrepr):
                outcome = "judge off"
            self.outcomes.setdefault(report.nodeid, outcome)
            if report.nodeid not in self.results:
                self.results[report.nodeid] = result_from_report(report, props, outcome)
        if report.when == "teardown" and "verdict_source" in props:
            self.judge_counts[str(props["verdict_source"]).split(":")[0]] += 1

    # -- the end ---------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Stop the judge; workers hand their notes to the controller, which tidies the stores."""
        if self.planner is not None:
            self.planner.close()
        if is_worker(self.config):
            self.config.workeroutput[WORKER_KEY] = {  # type: ignore[attr-defined]
                "wanted": [[f, i, s] for (f, i), s in self.wanted.items()],
                "stores": sorted(str(p) for p in self.stores),
                "written": sorted(str(p) for p in self.written),
            }
            return
        self.survey = survey(self.stores, self.wanted)
        for path in sorted(self.written):  # only stores this session wrote: a replay run never writes
            VerdictStore(path, self.settings.locks_dir(self.config.rootpath)).rewrite()
        if self.settings.handoff is not None:
            self._write_handoff()
            if self.handoff is not None:
                self.config.hook.pytest_agentloop_handoff(config=self.config, outcome=self.handoff)
        if self.results and not self.config.option.collectonly:
            self._finish_gate(session)
            final = self.gate.results if self.gate is not None else self.final_results()
            self.config.hook.pytest_agentloop_results(config=self.config, results=final)

    def final_results(self) -> list[EvalResult]:
        """Every eval's row with its total duration (setup, call and teardown)."""
        return [replace(r, duration=round(self.durations[r.nodeid], 6)) for _, r in sorted(self.results.items())]

    def _finish_gate(self, session: pytest.Session) -> None:
        """Baseline comparison, gate policy, run history, CI summaries."""
        results = self.final_results()
        history = History(self.settings.history_path(self.config.rootpath))
        try:
            outside = sorted(self.other_failures) + ["collection"] * (
                self.broken_eval_files + self.other_collect_errors
            )
            self.gate = judge_gate(self.settings, history, results, self.run_id, int(session.exitstatus), outside)
            if self.gate.exit_status is not None and self.gate.exit_status != session.exitstatus:
                session.exitstatus = pytest.ExitCode(self.gate.exit_status)
            options = {k: v for k, v in vars(self.settings).items() if k != "feedback"}
            record_run(
                self.settings,
                history,
                self.config.rootpath,
                self.run_id,
                self.started,
                self.gate.results,
                {k: str(v) for k, v in options.items()},
                int(session.exitstatus),
            )
            handoff = self.handoff.handoff if self.handoff else None
            self.gate.notes += [
                f"gate summary written to {p}"
                for p in write_summaries(self.settings, self.config.rootpath, results, self.gate, handoff)
            ]
        except (OSError, sqlite3.Error, AgentloopError) as exc:
            self.gate_error = f"{type(exc).__name__}: {exc}"

    def _write_handoff(self) -> None:
        """Run HALO (or write the evidence-only handoff); never changes the session's outcome."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")

        def say(line: str) -> None:
            if reporter is not None:
                reporter.write_line(line)

        try:
            self.handoff = write_handoff(self.config, self.settings, self.final_results(), say, self.run_id)
        except Exception as exc:
            self.handoff_error = f"{type(exc).__name__}: {exc}"

    def merge_worker(self, data: dict[str, Any]) -> None:
        """Take a worker's notes (called from the xdist hook on the controller)."""
        for eval_file, eval_id, subject in data.get("wanted", []):
            self.wanted[(eval_file, eval_id)] = subject
        self.stores.update(Path(p) for p in data.get("stores", []))
        self.written.update(Path(p) for p in data.get("written", []))

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Evals by outcome, where verdicts came from, flaky evals, unused verdicts."""
        if is_worker(self.config) or not self.outcomes:
            return
        write = terminalreporter.write_line
        terminalreporter.section("agentloop")
        counts = Counter(self.outcomes.values())
        order = ("passed", "failed", "error", "skipped", "judge off")
        write(f"{len(self.outcomes)} evals: " + ", ".join(f"{counts[k]} {k}" for k in order if counts[k]))
        if self.judge_counts:
            sources = ", ".join(f"{n} {k}" for k, n in sorted(self.judge_counts.items()))
            write(f"rubric verdicts ({self.settings.judge_mode.value} mode): {sources}")
        stats = self.planner.stats if self.planner is not None else None
        if stats is not None and stats.calls:
            write(
                f"judge calls: {stats.calls} in {stats.calling_seconds:.2f}s "
                f"(concurrency {self.settings.concurrency}, {stats.errors} failed)"
            )
        for nodeid, votes in sorted(self.flaky.items()):
            write(f"flaky: {nodeid} (judge verdicts disagree: {votes} passed)", yellow=True)
        self._summarise_outcomes(write)
        self._summarise_stores(write)

    def _summarise_stores(self, write: Any) -> None:
        """Unused and old-key verdicts, unfinished final lines, unreadable stores."""
        found = self.survey
        if found.unused:
            write(
                f"{found.unused} stored verdicts are not used by any collected eval; "
                "remove them with `agentloop verdicts prune`"
            )
        if found.legacy:
            write(f"{found.legacy} stored verdicts use key version 1; re-key them with `agentloop verdicts migrate`")
        for path, line in found.torn:
            write(f"{path}:{line}: an unfinished final line (a killed run?) was ignored", yellow=True)
        for problem in found.problems:
            write(f"unreadable verdict store: {problem}", red=True)

    def _summarise_outcomes(self, write: Any) -> None:
        """The handoff's and the gate's lines, each preceded by its error if it could not finish."""
        lines: list[tuple[str, str | None]] = []
        if self.handoff_error:
            lines.append((f"agentloop: no handoff written: {self.handoff_error}", "red"))
        if self.handoff is not None:
            lines += self.handoff.summary()
        if self.gate_error:
            lines.append((f"agentloop: run history / gate summary not written: {self.gate_error}", "red"))
        if self.gate is not None:
            lines += self.gate.summary(self.settings.gate.value)
            lines.append((f"run {self.run_id} recorded in {self.settings.history_path(self.config.rootpath)}", None))
        for text, colour in lines:
            write(text, **({colour: True} if colour else {}))


class AgentloopWarning(pytest.PytestWarning):
    """A problem with the eval suite that does not stop the run."""


def warn_single_split_tags(evals: list[EvalItem]) -> None:
    """Warn about tags whose evals all sit in one split, when the suite uses both."""
    splits: dict[str, set[str]] = {}
    for item in evals:
        for tag in item.spec.tags:
            splits.setdefault(tag, set()).add(item.spec.split.value)
    if len({s for found in splits.values() for s in found}) < len(Split):
        return
    for tag in sorted(tag for tag, found in splits.items() if len(found) == 1):
        first = next(i for i in evals if tag in i.spec.tags)
        message = (
            f"tag {tag!r} has evals in only one split ({first.spec.split.value}): no holdout check, or nothing "
            "to tune on; assign splits with `split:` in the eval files"
        )
        warnings.warn_explicit(AgentloopWarning(message), AgentloopWarning, str(first.path), first.spec.line)


def result_from_report(report: pytest.TestReport, props: dict[str, Any], outcome: str) -> EvalResult:
    """One gate row from an eval item's report and user properties."""
    score = props.get("judge_score") or props.get("literal_score")
    if report.passed:
        explanation = str(props.get("judge_reason") or "")
    elif report.skipped and isinstance(report.longrepr, tuple):
        explanation = str(report.longrepr[2]).removeprefix("Skipped: ")
    else:
        explanation = _first_lines(report.longreprtext)
    return EvalResult(
        eval_id=str(props["eval_id"]),
        nodeid=report.nodeid,
        title=str(props.get("title", "")),
        trace_id=str(props.get("trace_id", "")),
        trace_label=str(props.get("trace_label", "")),
        outcome=Outcome(outcome if outcome in {o.value for o in Outcome} else "skipped"),
        score=None if score is None else float(score),
        explanation=explanation,
        tags=tuple(t for t in str(props.get("tags", "")).split(",") if t),
        split=str(props.get("split", "optimization")),
        must_pass=props.get("must_pass") == "true",
        scoring=str(props.get("scoring", "deterministic")),
        verdict_source=str(props["verdict_source"]) if "verdict_source" in props else None,
        repeats=int(str(props.get("judge_votes", "0/1")).split("/")[1]),
        flaky=props.get("judge_flaky") == "true",
        input_tokens=_int(props.get("judge_input_tokens")),
        output_tokens=_int(props.get("judge_output_tokens")),
    )


def _int(value: object) -> int | None:
    return None if value in (None, "") else int(str(value))


def _first_lines(text: str, count: int = 6) -> str:
    """The start of a failure report, without xdist's ``[gw0] linux -- Python ...`` line."""
    lines = [line for line in text.splitlines() if line.strip() and not re.match(r"^\[gw\d+\] ", line)]
    return "\n".join(lines[:count])


class XdistHooks:
    """Controller-side merge of workers' notes; registered only when xdist is present."""

    def __init__(self, session: AgentloopSession) -> None:
        self.session = session

    @pytest.hookimpl
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """Merge what a finished worker put in its workeroutput."""
        data = getattr(node, "workeroutput", {}).get(WORKER_KEY)
        if data:
            self.session.merge_worker(data)
