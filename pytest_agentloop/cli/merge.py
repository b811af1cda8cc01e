"""``agentloop merge``: N shard files become one run: one history row, one gate, one summary."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from pytest_agentloop.cli.common import pytest_settings
from pytest_agentloop.config import GateMode, Settings, enum_value
from pytest_agentloop.fileio import write_atomic
from pytest_agentloop.gate.finish import RunInfo, now
from pytest_agentloop.gate.junit import junit_document
from pytest_agentloop.gate.merge import ShardFile, check_shards, exit_status, merged_results, read_shard
from pytest_agentloop.gate.run import GateRun
from pytest_agentloop.handoff.writer import new_run_id
from pytest_agentloop.results import EvalResult, Selection


def _settings(args: argparse.Namespace) -> tuple[Settings, Path]:
    view = pytest_settings()
    settings = view.settings
    changes: dict[str, object] = {"handoff": None}
    if args.baseline:
        changes["baseline"] = args.baseline
    if args.gate:
        changes["gate"] = GateMode(args.gate)
    if args.history:
        changes["history"] = args.history
    if args.report:
        changes["report"] = args.report
    return dataclasses.replace(settings, **changes), view.rootpath  # type: ignore[arg-type]


def _cmd_merge(args: argparse.Namespace) -> int:
    shards = [read_shard(Path(p)) for p in args.shards]
    check_shards(shards)
    settings, root = _settings(args)
    results = merged_results(shards)
    ran = tuple(sorted(n for s in shards for n in s.ran))
    selection = Selection(ran, ())
    outside = [n for s in shards for n in s.outside]
    gate = GateRun(settings, root, new_run_id())
    gate.check_inputs()
    status = gate.decide(results, selection, exit_status(shards), outside)
    annotated = gate.outcome.results if gate.outcome is not None else results
    started = min((s.started for s in shards if s.started), default=now())
    options: dict[str, object] = {"merged_shards": ", ".join(str(s.path) for s in shards), "gate": settings.gate.value}
    run = RunInfo(gate.run_id, started, options, gate.outcome.baseline_ref if gate.outcome else None)
    status = gate.record(run, selection, status)
    gate.summaries(annotated, None)
    if args.junitxml:
        outcomes = {n: o for s in shards for n, o in s.outcomes.items()}
        write_atomic(Path(args.junitxml), junit_document(annotated, outcomes))
    if args.html and gate.recorded is not None:
        from pytest_agentloop.cli.html import report_for_run
        from pytest_agentloop.report import html

        out = Path(args.html)
        html.write(report_for_run(gate.history, gate.run_id, root, out, settings.baseline), out)
        print(f"HTML report written to {out}")
    _say(gate, shards, results, status, settings)
    return status


def _say(gate: GateRun, shards: list[ShardFile], results: list[EvalResult], status: int, settings: Settings) -> None:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.outcome.value] = counts.get(result.outcome.value, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    print(f"merged {len(shards)} shards: {len(results)} evals ({summary})")
    if gate.outcome is not None:
        for line, _colour in gate.outcome.summary(settings.gate.value):
            print(line)
    for error in gate.errors:
        print(f"error: {error}")
    if gate.recorded is not None:
        print(f"run {gate.run_id} recorded in {gate.recorded}")
    print(f"exit status {status}")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``merge``."""
    merge = commands.add_parser("merge", help="merge shard files (--agentloop-shard-out) into one run and gate it")
    merge.add_argument("shards", nargs="+", metavar="SHARD_FILE")
    merge.add_argument("--baseline", help="compare with a run id, an exported results file, or 'latest'")
    merge.add_argument("--gate", type=enum_value(GateMode), help="all (default) or regressions")
    merge.add_argument("--history", help="run history database (default: as pytest's)")
    merge.add_argument("--report", help="also write the gate summary (markdown) to this path")
    merge.add_argument("--junitxml", help="write a JUnit XML file of the merged run")
    merge.add_argument("--html", help="write the merged run's self-contained HTML report")
    merge.set_defaults(run=_cmd_merge)
