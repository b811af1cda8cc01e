"""The ``agentloop`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_agentloop.errors import AgentloopError
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
    try:
        store = TraceStore(Path(args.store))
    except AgentloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for record in store:
        print(f"{record.label}\t{record.trace_id}\t{record.harness_version}\t{record.question}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    parser = argparse.ArgumentParser(
        prog="agentloop",
        description="pytest-agentloop: LLM-agent evals as pytest tests. Run evals with `pytest evals/`.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    validate = commands.add_parser("validate", help="check eval files without running them")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--max-mb", type=float, default=10.0, help="largest file accepted, in MB")
    validate.set_defaults(run=_cmd_validate)
    traces = commands.add_parser("traces", help="list the recorded runs in a trace store")
    traces.add_argument("store", metavar="STORE_DIR")
    traces.set_defaults(run=_cmd_traces)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentloop`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
