"""Subcommands about eval files and trace stores: ``validate``, ``traces``, ``split``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pytest_agentloop.cli.common import eval_files
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.gate import splits
from pytest_agentloop.spec import load_suite
from pytest_agentloop.traces.store import TraceStore


def _cmd_validate(args: argparse.Namespace) -> int:
    failures = 0
    for path in args.files:
        try:
            suite = load_suite(Path(path), int(args.max_mb * 1_000_000))
        except AgentloopError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failures += 1
            continue
        print(f"{path}: {len(suite.evals)} evals ok")
    return 1 if failures else 0


def _cmd_traces(args: argparse.Namespace) -> int:
    store = TraceStore(Path(args.store))
    for record in store:
        print(f"{record.label}\t{record.trace_id}\t{record.harness_version}\t{record.question}")
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    if not 0.0 < args.holdout < 1.0:
        raise AgentloopError(f"--holdout must be between 0 and 1, got {args.holdout}")
    assignments = splits.assign(splits.load_specs(eval_files(args.paths)), args.holdout)
    for item in assignments:
        mark = "*" if item.changes else " "
        print(f"{mark} {item.target.value:<12} {item.spec.path}::{item.spec.id} (tag {item.spec.tags[:1] or '-'})")
    if args.dry_run:
        print("dry run: nothing written")
        return 0
    changed = splits.write_back(assignments)
    print(f"wrote {len(changed)} files" + "".join(f"\n  {path}" for path in changed))
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``validate``, ``traces`` and ``split``."""
    validate = commands.add_parser("validate", help="check eval files without running them")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--max-mb", type=float, default=10.0, help="largest file accepted, in MB")
    validate.set_defaults(run=_cmd_validate)
    traces = commands.add_parser("traces", help="list the recorded runs in a trace store")
    traces.add_argument("store", metavar="STORE_DIR")
    traces.set_defaults(run=_cmd_traces)
    split = commands.add_parser("split", help="assign evals to optimization/holdout, stratified per tag")
    split.add_argument("paths", nargs="*", metavar="PATH", help="eval files or folders (default: .)")
    split.add_argument("--holdout", type=float, default=0.3, help="fraction held out per tag (default: 0.3)")
    split.add_argument("--by", choices=["tag"], default="tag", help="stratify by the eval's first tag")
    split.add_argument("--dry-run", action="store_true", help="print the assignment, write nothing")
    split.set_defaults(run=_cmd_split)
