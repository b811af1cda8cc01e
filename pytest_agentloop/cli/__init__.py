"""The ``agentloop`` command: one module per group of subcommands, each with ``add_commands``.

Conventions every subcommand follows:

- exit 0 ok, 1 checks failed, 2 usage or input error (a bad argument, a
  missing or unreadable file, a corrupt history, an output that cannot be
  written) — always one line naming the problem, never a traceback;
- ``-o/--out`` names an output path;
- settings come from the same ini files and environment as ``pytest``, and
  eval files are read through pytest's own collection, so custom assertion
  types from conftests and plugins resolve here too.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence
from typing import NoReturn

from pytest_agentloop.cli import (
    adopt,
    authoring,
    evals,
    feedback,
    handoff,
    history,
    html,
    merge,
    promptfoo,
    record,
    verdicts,
)
from pytest_agentloop.cli.common import pytest_view
from pytest_agentloop.errors import AgentloopError

COMMAND_MODULES = (evals, verdicts, history, handoff, feedback, authoring, record, adopt, promptfoo, merge, html)
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        """One line naming the problem (argparse prints the usage block otherwise)."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    parser = Parser(
        prog="agentloop",
        description="pytest-agentloop: LLM-agent evals as pytest tests. Run evals with `pytest evals/`.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_commands(commands)
    return parser


def _eval_paths(args: argparse.Namespace) -> list[str] | None:
    """The eval files a subcommand from another module reads, when it needs their assertion types."""
    if args.command == "label":
        return [str(args.nodeid).partition("::")[0]]
    if args.command == "verdicts" and getattr(args, "action", None) in ("prune", "migrate"):
        return list(args.paths)
    return None


def _run(args: argparse.Namespace) -> int:
    paths = _eval_paths(args)
    if paths is None:
        return int(args.run(args))
    with pytest_view(paths) as view:
        if args.command == "verdicts" and view.errors:
            for line in "\n".join(view.errors).splitlines():
                print(f"error: {line}", file=sys.stderr)
            print(
                f"error: {args.action} needs every eval file to load (it must know every verdict in use)",
                file=sys.stderr,
            )
            return EXIT_FAILED
        return int(args.run(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentloop`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    try:
        return _run(args)
    except AgentloopError as exc:
        message = str(exc)
    except sqlite3.Error as exc:
        message = f"database error: {exc}"
    except BrokenPipeError:  # `agentloop stats | head`
        sys.stderr.close()
        return EXIT_OK
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        message = f"{where}{exc.strerror or exc}"
    print(f"agentloop {args.command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
