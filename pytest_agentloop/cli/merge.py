"""``agentloop merge``: N shard files become one run: one history row, one gate, one summary, one handoff.

The order is the session's: check the shards, materialise what they carry in
the merged run's folder, the gate decides, the handoff (which then agrees with
it), the run history, the summaries and reports.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pytest_agentloop.cli.common import pytest_settings, pytest_view
from pytest_agentloop.config import GateMode, Settings, enum_value
from pytest_agentloop.fileio import write_atomic
from pytest_agentloop.gate.carry import Materialised, materialise
from pytest_agentloop.gate.finish import RunInfo, now
from pytest_agentloop.gate.junit import junit_document
from pytest_agentloop.gate.merge import ShardFile, check_shards, exit_status, merged_results, read_shard
from pytest_agentloop.gate.run import GateRun, new_run_id
from pytest_agentloop.handoff.produce import HandoffOutcome
from pytest_agentloop.results import EvalResult, Selection

SHARD_ONLY_OPTIONS = ("shard", "shard_out", "durations", "handoff", "html", "report", "junitxml")


def _settings(args: argparse.Namespace, settings: Settings) -> Settings:
    changes: dict[str, object] = {"handoff": args.handoff}
    if args.baseline:
        changes["baseline"] = args.baseline
    if args.gate:
        changes["gate"] = GateMode(args.gate)
    if args.history:
        changes["history"] = args.history
    if args.report:
        changes["report"] = args.report
    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]


@contextmanager
def _view(args: argparse.Namespace, results: list[EvalResult]) -> Iterator[tuple[Settings, Path]]:
    """Pytest's settings here; with ``--handoff``, within a collection of the eval files (conftest types resolve)."""
    if not args.handoff:
        view = pytest_settings()
        yield _settings(args, view.settings), view.rootpath
        return
    files = sorted({r.nodeid.split("::")[0] for r in results if Path(r.nodeid.split("::")[0]).is_file()})
    with pytest_view(files) as collected:
        yield _settings(args, collected.settings), collected.rootpath


def _cmd_merge(args: argparse.Namespace) -> int:
    shards = [read_shard(Path(p)) for p in args.shards]
    check_shards(shards)
    results = merged_results(shards)
    with _view(args, results) as (settings, root):
        return _merge(args, shards, results, settings, root)


def _merge(
    args: argparse.Namespace, shards: list[ShardFile], results: list[EvalResult], settings: Settings, root: Path
) -> int:
    ran = tuple(sorted(n for s in shards for n in s.ran))
    selection = Selection(ran, ())
    outside = [n for s in shards for n in s.outside]
    gate = GateRun(settings, root, new_run_id())
    gate.check_inputs()
    run_dir = root / settings.artifacts_dir / "runs" / gate.run_id
    carried = [(str(s.path), s.carried) for s in shards]
    written = materialise(carried, root, run_dir, settings.locks_dir(root), args.verdicts_into_stores)
    status = gate.decide(results, selection, exit_status(shards), outside)
    annotated = gate.outcome.results if gate.outcome is not None else results
    handoff = _handoff(args, settings, root, annotated, written, gate.run_id) if args.handoff else None
    started = min((s.started for s in shards if s.started), default=now())
    options = _options(shards, settings)
    run = RunInfo(gate.run_id, started, options, gate.outcome.baseline_ref if gate.outcome else None)
    status = gate.record(run, selection, status)
    gate.summaries(annotated, handoff.handoff if handoff else None)
    if args.junitxml:
        outcomes = {n: o for s in shards for n, o in s.outcomes.items()}
        write_atomic(Path(args.junitxml), junit_document(annotated, outcomes))
    if args.html and gate.recorded is not None:
        from pytest_agentloop.cli.html import report_for_run
        from pytest_agentloop.report import html

        out = Path(args.html)
        html.write(report_for_run(gate.history, gate.run_id, root, out, settings.baseline), out)
        print(f"HTML report written to {out}")
    _say(gate, shards, results, status, settings, written, handoff)
    return status


def _options(shards: list[ShardFile], settings: Settings) -> dict[str, object]:
    """The shards' options (one configuration, checked), less the per-shard ones, plus what the merge decided."""
    options: dict[str, object] = {k: v for k, v in shards[0].carried.options.items() if k not in SHARD_ONLY_OPTIONS}
    options |= {"merged_shards": ", ".join(str(s.path) for s in shards), "gate": settings.gate.value}
    return options | {"baseline": str(settings.baseline), "history": str(settings.history)}


def _handoff(
    args: argparse.Namespace,
    settings: Settings,
    root: Path,
    results: list[EvalResult],
    written: Materialised,
    run_id: str,
) -> HandoffOutcome:
    """The merged run's handoff, as ``pytest --agentloop-handoff`` writes a single run's (HALO when a key is set)."""
    from pytest_agentloop.handoff.evidence import gather
    from pytest_agentloop.handoff.produce import produce
    from pytest_agentloop.handoff.report import RunInfo as HandoffRun
    from pytest_agentloop.handoff.writer import halo_or_reason

    target = Path(args.handoff)
    target = target if target.is_absolute() else Path.cwd() / target
    evidence = gather(
        results,
        root,
        settings.traces_dirname,
        written.harness,
        written.feedback,
        extra_stores=[written.traces] if written.traces is not None else [],
    )
    command = shlex.join(["agentloop", "merge", *args.shards, "--handoff", args.handoff])
    run = HandoffRun(run_id=run_id, harness_version=evidence.harness_version, command=command)
    halo, why = halo_or_reason(settings)
    outcome = produce(evidence, run, target, root / settings.artifacts_dir / "runs" / run_id, halo, print, why)
    if why.startswith("HALO is not installed"):
        outcome.notes.append(why)
    return outcome


def _say(
    gate: GateRun,
    shards: list[ShardFile],
    results: list[EvalResult],
    status: int,
    settings: Settings,
    written: Materialised,
    handoff: HandoffOutcome | None,
) -> None:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.outcome.value] = counts.get(result.outcome.value, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    print(f"merged {len(shards)} shards: {len(results)} evals ({summary})")
    if written.traces is not None:
        print(f"live traces of every shard: {written.traces}")
    for store in written.verdict_stores:
        print(f"verdicts the shards made: {store}")
    if gate.outcome is not None:
        for line, _colour in gate.outcome.summary(settings.gate.value):
            print(line)
    for line, _colour in handoff.summary() if handoff is not None else []:
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
    merge.add_argument(
        "--handoff", metavar="PATH", help="write the merged run's handoff (and PATH's .context.jsonl) once"
    )
    merge.add_argument(
        "--verdicts-into-stores",
        action="store_true",
        help="append the verdicts the shards' judge made to the verdict stores in this checkout "
        "(default: into the merged run's folder, <artifacts_dir>/runs/<run id>/verdicts/)",
    )
    merge.set_defaults(run=_cmd_merge)
