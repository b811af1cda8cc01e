"""``agentloop html [RUN] -o PATH``: the HTML report of any run in the history."""

from __future__ import annotations

import argparse
from pathlib import Path

from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.gate.history import History
from pytest_agentloop.report import build, html
from pytest_agentloop.report.model import ReportInput
from pytest_agentloop.report.traces import StoreTraces


def report_for_run(history: History, ref: str, root: Path, out: Path, baseline: str | None = None) -> ReportInput:
    """The report of run ``ref`` (id, unique prefix or ``latest``), traces read from the stores under ``root``."""
    run_id = history.resolve(ref)
    if run_id is None:
        raise AgentloopError(f"no run {ref!r} in {history.path}; see `agentloop runs`")
    run = next(r for r in history.runs() if r.run_id == run_id)
    results = history.results(run_id)
    handoff = _handoff_path(run.options)
    return ReportInput(
        run=build.run_info(run, run_id),
        rows=build.rows_of(results, root),
        diff=build.history_diff(history, run_id, results, baseline),
        trends=build.trends_of(history, {r.nodeid for r in results}, run_id),
        load_trace=StoreTraces(root, str(run.options.get("traces_dirname") or "traces")),
        handoff=None if handoff is None else build.handoff_view(root / handoff, out),
    )


def _handoff_path(options: dict[str, object]) -> Path | None:
    """The handoff the run wrote, from its recorded options (``--agentloop-handoff`` alone means the default)."""
    value = str(options.get("handoff"))
    if value == "None":
        return None
    return Path(value) if value else Path(str(options.get("artifacts_dir") or ".agentloop")) / "handoff.md"


def _cmd_html(args: argparse.Namespace) -> int:
    history = History(Path(args.history))
    if not history.path.exists():
        raise AgentloopError(f"no run history at {history.path}; run pytest first (or pass --history)")
    out = Path(args.output)
    report = report_for_run(history, args.run_ref, Path(args.root), out, args.baseline)
    html.write(report, out)
    print(f"HTML report of run {report.run.run_id} ({len(report.rows)} evals) written to {out}")
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``html``."""
    default = ".agentloop/history.sqlite"
    parser = commands.add_parser("html", help="write a run's self-contained HTML report")
    parser.add_argument("run_ref", metavar="RUN", nargs="?", default="latest", help="run id, unique prefix or 'latest'")
    parser.add_argument("-o", "--out", "--output", dest="output", required=True, help="the HTML file to write")
    parser.add_argument("--baseline", help="compare with this run id, exported file or 'latest' (default: as recorded)")
    parser.add_argument("--history", default=default, help=f"history database (default: {default})")
    parser.add_argument("--root", default=".", help="folder the node ids are relative to (default: .)")
    parser.set_defaults(run=_cmd_html)
