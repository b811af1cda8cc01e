"""Subcommands over the run history: ``runs``, ``stats``, ``export``.

The history is the one ``pytest`` in this folder writes: ``agentloop_history``
(or ``agentloop_artifacts_dir``) from the same ini, unless ``--history`` says otherwise.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from pytest_agentloop.cli.common import pytest_settings
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.fileio import write_atomic
from pytest_agentloop.gate import stats
from pytest_agentloop.gate.baseline import export_document
from pytest_agentloop.gate.history import History


def _history(args: argparse.Namespace) -> History:
    if args.history:
        return History(Path(args.history))
    view = pytest_settings()
    return History(view.settings.history_path(view.rootpath))


def _cmd_runs(args: argparse.Namespace) -> int:
    history = _history(args)
    runs = history.runs(limit=args.limit)
    if not runs:
        print(f"no runs recorded in {history.path}")
        return 0
    print("run\tstarted\tcommit\tbranch\tharness\texit\tpassed\tfailed\terror\tskipped")
    for run in runs:
        counts = [str(run.counts.get(k, 0)) for k in ("passed", "failed", "error", "skipped")]
        commit = (run.git_commit or "-")[:10]
        fields = [run.run_id, run.started, commit, run.git_branch or "-", run.harness_version or "-"]
        print("\t".join([*fields, str(run.exit_status), *counts]))
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _cmd_stats(args: argparse.Namespace) -> int:
    rows = stats.table(_history(args).series(since=args.since), tag=args.tag, split=args.split)
    if not rows:
        print("no results match")
        return 0
    print("eval\truns\tpass_rate\tmin\tmax\tmean\tflip_rate\tpassing_streak\tpassing_since\terrors")
    for row in rows:
        scores = [_fmt(row.min_score), _fmt(row.max_score), _fmt(row.mean_score)]
        streak = [f"{row.flip_rate:.2f}", str(row.passing_streak), row.passing_since or "-", str(row.errors)]
        print("\t".join([row.nodeid, str(row.runs), f"{row.pass_rate:.2f}", *scores, *streak]))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    history = _history(args)
    if not history.exists():
        raise AgentloopError(f"no run history at {history.path}; run pytest first")
    run_id = history.resolve(args.run_ref)
    if run_id is None:
        raise AgentloopError(f"no run {args.run_ref!r} in {history.path}; see `agentloop runs`")
    run = next(r for r in history.runs() if r.run_id == run_id)
    text = export_document(run.facts(), history.results(run_id), history.selection(run_id))
    if args.out:
        write_atomic(Path(args.out), text)
        print(f"exported run {run_id} to {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _since(text: str) -> str:
    """An ISO date or time, kept as text (history times are ISO strings in UTC)."""
    try:
        datetime.fromisoformat(text.removesuffix("Z"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO date or time such as 2026-11-01, got {text!r}") from None
    return text


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``runs``, ``stats`` and ``export``."""
    runs = commands.add_parser("runs", help="list recorded runs, newest first")
    runs.add_argument("--limit", type=_positive, default=20, help="how many runs (default: 20)")
    runs.set_defaults(run=_cmd_runs)
    stat = commands.add_parser("stats", help="per eval: runs, pass rate, scores, flip rate, passing streak")
    stat.add_argument("--tag", help="only evals with this tag")
    stat.add_argument("--split", choices=["optimization", "holdout"], help="only evals in this split")
    stat.add_argument("--since", type=_since, help="only runs started at or after this ISO time (e.g. 2026-11-01)")
    stat.set_defaults(run=_cmd_stats)
    export = commands.add_parser("export", help="write a run's results as JSON (a baseline for --agentloop-baseline)")
    export.add_argument("run_ref", metavar="RUN", help="run id (or unique prefix) or 'latest'")
    export.add_argument("-o", "--out", "--output", dest="out", help="file to write (default: standard output)")
    export.set_defaults(run=_cmd_export)
    for parser in (runs, stat, export):
        parser.add_argument(
            "--history", help="history database (default: the one pytest uses here: ini agentloop_history)"
        )
