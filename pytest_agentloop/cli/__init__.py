"""The ``agentloop`` command: one module per group of subcommands, each with ``add_commands``.

Exit codes, for every subcommand: 0 ok, 1 checks failed, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pytest_agentloop.cli import authoring, evals, feedback, handoff, history, html, promptfoo, record, verdicts
from pytest_agentloop.errors import AgentloopError

COMMAND_MODULES = (evals, verdicts, history, handoff, feedback, authoring, record, promptfoo, html)


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    parser = argparse.ArgumentParser(
        prog="agentloop",
        description="pytest-agentloop: LLM-agent evals as pytest tests. Run evals with `pytest evals/`.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentloop`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.run(args))
    except AgentloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `agentloop stats | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
