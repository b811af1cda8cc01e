"""Subcommands about Promptfoo: ``promptfoo export``, ``promptfoo import``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pytest_agentloop.cli.common import eval_files
from pytest_agentloop.config import DEFAULT_JUDGE_MODEL, DEFAULT_KEY_ENV, JudgeApi
from pytest_agentloop.errors import AgentloopError


def _cmd_export(args: argparse.Namespace) -> int:
    from pytest_agentloop.backends.promptfoo_export import Grader, dump_config, export_config
    from pytest_agentloop.backends.promptfoo_targets import targets_for

    files = eval_files(args.paths)
    if not files:
        raise AgentloopError(f"no eval files under {' '.join(args.paths) or '.'}")
    grader = Grader(
        model=args.judge_model or os.environ.get("AGENTLOOP_JUDGE_MODEL") or DEFAULT_JUDGE_MODEL,
        base_url=args.judge_base_url or os.environ.get("OPENAI_BASE_URL") or None,
        api=JudgeApi(args.judge_api),
        key_env=args.judge_key_env,
    )
    targets = targets_for(files, Path.cwd())
    exported = export_config(targets, grader, f"pytest-agentloop evals from {' '.join(args.paths) or '.'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dump_config(exported.config), encoding="utf-8")
    print(f"wrote {out}: {len(targets)} tests from {len(files)} eval files")
    for note in exported.notes:
        print(f"  {note.line()}")
    if exported.not_exported:
        print(f"{len(exported.not_exported)} parts not exported (listed above)", file=sys.stderr)
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from pytest_agentloop.backends.promptfoo_import import import_config

    out = Path(args.out)
    imported = import_config(Path(args.config), trace=args.trace, out=out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(imported.text, encoding="utf-8")
    print(f"wrote {out}: {imported.count} evals from {args.config}")
    for note in imported.notes:
        print(f"  not imported: {note}")
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``promptfoo export`` and ``promptfoo import``."""
    group = commands.add_parser("promptfoo", help="export evals to a Promptfoo config, or import one")
    sub = group.add_subparsers(dest="promptfoo_command", metavar="COMMAND", required=True)
    export = sub.add_parser("export", help="write a promptfooconfig.yaml grading the recorded outputs")
    export.add_argument("paths", nargs="*", metavar="PATH", help="eval files or folders (default: .)")
    export.add_argument("-o", "--out", default="promptfooconfig.yaml", help="config to write")
    export.add_argument(
        "--judge-model", default=None, help=f"grader model (default: $AGENTLOOP_JUDGE_MODEL or {DEFAULT_JUDGE_MODEL})"
    )
    export.add_argument("--judge-base-url", default=None, help="grader base URL (default: $OPENAI_BASE_URL)")
    export.add_argument("--judge-api", choices=[a.value for a in JudgeApi], default=JudgeApi.RESPONSES.value)
    export.add_argument("--judge-key-env", default=DEFAULT_KEY_ENV, help="variable holding the grader's key")
    export.set_defaults(run=_cmd_export)
    imp = sub.add_parser("import", help="turn a promptfooconfig.yaml's tests into an eval file")
    imp.add_argument("config", metavar="CONFIG")
    imp.add_argument("-o", "--out", required=True, help="eval file to write (e.g. evals/imported.eval.yaml)")
    imp.add_argument("--trace", default=None, help="trace label for tests that do not name one (default: trace-01)")
    imp.set_defaults(run=_cmd_import)
