"""``agentloop adopt``: a live run's fresh runs (and their verdicts) into a tracked trace store.

``--agentloop-live`` writes fresh runs to ``.agentloop/runs/<run id>/traces/`` and their verdicts to that
folder's ``verdicts.jsonl``, never into the tracked store. Adopting is the explicit step that makes them the
recorded runs the evals replay: each run folder is copied whole (staged, then renamed into place, so a reader
never sees half a run), a replaced format-1 run's span lines leave the store's shared ``spans.jsonl``, and with
``--verdicts`` the verdicts of the evals that check an adopted run go to the ``verdicts.jsonl`` beside those
evals (verdict keys cover the output and the question, so they match the adopted run and nothing else).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import uuid
from pathlib import Path

from pytest_agentloop.cli.common import pytest_collection, pytest_settings
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.judge.verdicts import Verdict, VerdictStore
from pytest_agentloop.traces.store import TraceRecord, TraceStore

REPEAT_SAMPLE = re.compile(r"\.r\d+$")
"""Labels ``--agentloop-live-repeat`` gives the 2nd..Kth samples (``trace-01.r2``): adopted only when named."""


def _source(path: Path) -> Path:
    """The trace store inside a live run's folder (``<run>/traces``), or ``path`` when it is a store itself."""
    for store in (path / "traces", path):
        if (store / "runs").is_dir():
            return store
    raise AgentloopError(f"{path}: no runs here; give a live run's folder (.agentloop/runs/<run id>) or a store")


def _chosen(source: TraceStore, labels: list[str]) -> list[TraceRecord]:
    """The runs to adopt: those named, else every run but repeat samples."""
    if labels:
        return [source.get(label) for label in labels]
    return [record for record in source if not REPEAT_SAMPLE.search(record.label)]


def _place(run: TraceRecord, target: Path, old: TraceRecord | None) -> None:
    """Copy ``run`` into the store at ``target``, staged then renamed into place (``old``: the run it replaces)."""
    runs = target / "runs"
    stage = runs / f".adopting-{run.label}-{uuid.uuid4().hex[:8]}"
    shutil.copytree(run.run_dir, stage, symlinks=True)
    if old is None:
        stage.rename(runs / run.label)
        return
    gone = runs / f".replaced-{run.label}-{uuid.uuid4().hex[:8]}"
    (runs / run.label).rename(gone)
    stage.rename(runs / run.label)
    shutil.rmtree(gone)


def _drop_span_lines(spans: Path, trace_ids: set[str]) -> int:
    """Remove the lines of ``trace_ids`` from a store's shared ``spans.jsonl`` (streamed, atomic); how many."""
    if not trace_ids or not spans.is_file():
        return 0
    dropped = 0
    temporary = spans.with_name(f".{spans.name}.{uuid.uuid4().hex[:8]}")
    with spans.open("rb") as reading, temporary.open("wb") as writing:
        for line in reading:
            if any(t.encode() in line for t in trace_ids) and json.loads(line).get("trace_id") in trace_ids:
                dropped += 1
                continue
            writing.write(line)
        writing.flush()
        os.fsync(writing.fileno())
    os.replace(temporary, spans)
    return dropped


def _verdicts(run_folder: Path, adopted: set[str], root: Path, file_name: str, lock_dir: Path) -> dict[Path, int]:
    """The live run's verdicts of evals that check an adopted run, appended beside those evals; counts by file."""
    found = run_folder / "verdicts.jsonl"
    if not found.is_file():
        return {}
    made = VerdictStore(found, lock_dir).read()
    files = sorted({v.eval_file for v in made if (root / v.eval_file).is_file()})
    view = pytest_collection(files) if files else None
    checks = {
        (str(path.relative_to(root)), spec.id): spec.trace
        for path, suite in (view.suites.items() if view else ())
        for spec in suite.evals
    }
    targets: dict[Path, list[Verdict]] = {}
    for verdict in made:
        if checks.get((verdict.eval_file, verdict.eval_id)) in adopted:
            targets.setdefault(root / Path(verdict.eval_file).parent / file_name, []).append(verdict)
    for path, verdicts in sorted(targets.items()):
        store = VerdictStore(path, lock_dir)
        known = {v.key for v in store.read()} if path.is_file() else set()
        store.append(v for v in verdicts if v.key not in known)
        store.rewrite()
    return {path: len(verdicts) for path, verdicts in targets.items()}


def _cmd_adopt(args: argparse.Namespace) -> int:
    view = pytest_settings()
    root, settings = view.rootpath, view.settings
    run_folder = Path(args.folder)
    source = TraceStore(_source(run_folder))
    target = Path(args.into)
    if not (target / "runs").is_dir():
        raise AgentloopError(f"{target}: not a trace store (no runs/ folder); --into names the tracked store")
    runs = _chosen(source, args.label)
    if not runs:
        raise AgentloopError(f"{run_folder}: no runs to adopt")
    taken = [run.label for run in runs if (target / "runs" / run.label).exists()]
    if taken and not args.replace:
        raise AgentloopError(f"{target} already has {', '.join(taken)}; pass --replace to adopt the fresh runs")
    tracked = TraceStore(target)
    olds = {label: tracked.get(label) for label in taken}  # read (and checked) before anything moves
    shared = {old.trace_id for old in olds.values() if not (old.run_dir / "spans.jsonl").is_file()}  # format 1
    for run in runs:
        _place(run, target, olds.get(run.label))
    replaced = list(olds.values())
    dropped = _drop_span_lines(target / "spans.jsonl", shared)
    print(f"adopted {len(runs)} runs into {target} ({len(replaced)} replaced): {', '.join(r.label for r in runs)}")
    if dropped:
        print(f"removed {dropped} span lines of the replaced runs from {target / 'spans.jsonl'}")
    if args.verdicts:
        written = _verdicts(run_folder, {run.label for run in runs}, root, settings.verdicts_filename,
                            settings.locks_dir(root))  # fmt: skip
        for path, count in sorted(written.items()):
            print(f"{count} verdicts into {path.relative_to(root) if path.is_relative_to(root) else path}")
        if not written:
            print("no verdicts of the adopted runs in the run's folder")
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``adopt``."""
    adopt = commands.add_parser(
        "adopt", help="copy a live run's fresh runs (and, with --verdicts, their verdicts) into a tracked store"
    )
    adopt.add_argument("folder", metavar="RUN", help="a live run's folder, .agentloop/runs/<run id> (or a trace store)")
    adopt.add_argument("--into", required=True, metavar="STORE", help="the tracked trace store to adopt them into")
    adopt.add_argument(
        "--label", action="append", default=[], help="only this run (repeat; default: all but repeat samples)"
    )
    adopt.add_argument("--replace", action="store_true", help="replace runs of the same labels in the store")
    adopt.add_argument(
        "--verdicts", action="store_true", help="also the verdicts of the evals that check them, beside those evals"
    )
    adopt.set_defaults(run=_cmd_adopt)
