"""Subcommands about eval files and trace stores: ``validate``, ``traces``, ``split``.

``validate`` and ``split`` read eval files through pytest's own collection
(:mod:`pytest_agentloop.cli.common`): the same ini, conftests and checks as a
``pytest`` run, unknown traces included.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pytest_agentloop.cli.common import existing, pytest_collection
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.gate import splits
from pytest_agentloop.traces.store import TraceStore


def _cmd_validate(args: argparse.Namespace) -> int:
    view = pytest_collection(args.files)
    for path, suite in sorted(view.suites.items()):
        print(f"{_shown(path)}: {len(suite.evals)} evals ok")
    for line in "\n".join(view.errors).splitlines():
        print(f"error: {line}", file=sys.stderr)
    if not view.suites and not view.errors:
        print(
            f"error: no eval files under {' '.join(args.files)} (patterns: {' '.join(view.settings.eval_patterns)})",
            file=sys.stderr,
        )
        return 1
    return 1 if view.errors else 0


def _shown(path: Path) -> str:
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def _cmd_traces(args: argparse.Namespace) -> int:
    store = TraceStore(Path(existing([args.store])[0]))
    for record in store:
        print(f"{record.label}\t{record.trace_id}\t{record.harness_version}\t{record.question}")
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    if not 0.0 < args.holdout < 1.0:
        raise AgentloopError(f"--holdout must be between 0 and 1, got {args.holdout}")
    view = pytest_collection(args.paths)
    if view.errors:
        for line in "\n".join(view.errors).splitlines():
            print(f"error: {line}", file=sys.stderr)
        print("error: fix the eval files above first; split assigns every eval of the suite", file=sys.stderr)
        return 1
    specs = [spec for _, suite in sorted(view.suites.items()) for spec in suite.evals]
    assignments = splits.assign(specs, args.holdout)
    for item in assignments:
        mark = "*" if item.changes else " "
        print(f"{mark} {item.target.value:<12} {item.spec.path}::{item.spec.id} (tag {item.spec.tags[:1] or '-'})")
    if args.dry_run:
        print("dry run: nothing written")
        return 0
    changed = splits.write_back(assignments, view.registry(), view.settings.max_eval_file_bytes)
    print(f"wrote {len(changed)} files" + "".join(f"\n  {path}" for path in changed))
    return 0


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (exclusive), got {text!r}")
    return value


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``validate``, ``traces`` and ``split``."""
    validate = commands.add_parser(
        "validate", help="check eval files as pytest's collection does (schema, types, traces), without running them"
    )
    validate.add_argument("files", nargs="+", metavar="PATH", help="eval files or folders")
    validate.set_defaults(run=_cmd_validate)
    traces = commands.add_parser("traces", help="list the recorded runs in a trace store")
    traces.add_argument("store", metavar="STORE_DIR")
    traces.set_defaults(run=_cmd_traces)
    split = commands.add_parser("split", help="assign evals to optimization/holdout, stratified per tag")
    split.add_argument("paths", nargs="*", metavar="PATH", help="eval files or folders (default: .)")
    split.add_argument("--holdout", type=_fraction, default=0.3, help="fraction held out per tag (default: 0.3)")
    split.add_argument("--by", choices=["tag"], default="tag", help="stratify by the eval's first tag")
    split.add_argument("--dry-run", action="store_true", help="print the assignment, write nothing")
    split.set_defaults(run=_cmd_split)
