"""``--agentloop-html``: the session's HTML report, written once on the controller at the end."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from pytest_agentloop.collect import EvalItem
from pytest_agentloop.config import settings_of
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.gate.history import History
from pytest_agentloop.report import build, html
from pytest_agentloop.report.model import ReportInput
from pytest_agentloop.report.traces import StoreTraces
from pytest_agentloop.results import EvalResult
from pytest_agentloop.spec import EvalSpec


class HtmlReportPlugin:
    """Registered when ``--agentloop-html`` is given; writes the report from the session's results."""

    name = "agentloop-html"

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.written: Path | None = None
        self.error: str | None = None
        self.specs: dict[str, EvalSpec] = {}
        self.seconds = 0.0

    @pytest.hookimpl
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Keep the definitions of collected evals (under xdist the eval files are read again at the end)."""
        self.specs.update({i.nodeid: i.spec for i in items if isinstance(i, EvalItem)})

    def path(self) -> Path:
        """Where the report goes (relative paths are relative to the rootdir)."""
        path = Path(str(settings_of(self.config).html))
        return path if path.is_absolute() else self.config.rootpath / path

    @pytest.hookimpl
    def pytest_agentloop_results(self, config: pytest.Config, results: list[EvalResult]) -> None:
        """Build and write the report; a failure is reported in the summary, never a traceback."""
        start = time.perf_counter()
        try:
            self.written = html.write(self.report_input(results), self.path())
            self.seconds = time.perf_counter() - start
        except (OSError, sqlite3.Error, AgentloopError, UnicodeError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def report_input(self, results: list[EvalResult]) -> ReportInput:
        """What the session knows: results, the gate's verdict and comparison, the history, the handoff."""
        config, settings = self.config, settings_of(self.config)
        session = config.pluginmanager.get_plugin("agentloop-session")
        run_id = str(getattr(session, "run_id", ""))
        history = History(settings.history_path(config.rootpath))
        recorded = next((r for r in history.runs() if r.run_id == run_id), None) if history.path.exists() else None
        gate = getattr(session, "gate", None)
        gate = getattr(gate, "outcome", gate)  # a newer session keeps its GateOutcome on a GateRun
        verdict = getattr(gate, "verdict", None)
        extra: dict[str, object] = {
            "judge_model": settings.judge_model,
            "judge_mode": settings.judge_mode.value,
            "gate_policy": settings.gate.value,
            "gate_passed": None if verdict is None else verdict.passed,
            "gate_reasons": () if verdict is None else tuple(verdict.reasons),
            "notes": tuple(getattr(gate, "notes", ()) or ()),
        }
        if recorded is None:
            extra["started"] = str(getattr(session, "started", ""))
        diffs = getattr(gate, "diffs", None)
        handoff = getattr(getattr(session, "handoff", None), "handoff", None)
        return ReportInput(
            run=build.run_info(recorded, run_id, **extra),
            rows=build.rows_of(results, config.rootpath, self.specs),
            diff=None if diffs is None else build.diff_of(str(gate.baseline_ref), diffs),  # type: ignore[union-attr]
            trends=build.trends_of(history, {r.nodeid for r in results}, run_id if recorded else None),
            load_trace=StoreTraces(config.rootpath, settings.traces_dirname),
            handoff=None if handoff is None else build.handoff_view(Path(handoff), self.path()),
        )

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Say where the report is, or why it is not."""
        if self.written is not None:
            size = self.written.stat().st_size / 1_000_000
            terminalreporter.write_line(f"HTML report written to {self.written} ({size:.1f} MB, {self.seconds:.1f}s)")
        elif self.error is not None:
            terminalreporter.write_line(f"agentloop: HTML report not written: {self.error}", red=True)
