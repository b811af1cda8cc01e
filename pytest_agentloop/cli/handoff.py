"""The ``handoff`` subcommand: run HALO again over a saved run."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from pytest_agentloop.cli.common import pytest_settings
from pytest_agentloop.errors import AgentloopError


def _cmd_handoff(args: argparse.Namespace) -> int:
    from pytest_agentloop.handoff.writer import rerun_handoff

    run_dir = Path(args.run_dir)
    _check_saved(run_dir)
    settings = pytest_settings().settings  # the ini and environment pytest would use here
    overrides = {"judge_model": args.model, "judge_base_url": args.base_url, "judge_key_env": args.key_env}
    overrides["handoff_timeout"] = args.timeout
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    outcome = rerun_handoff(run_dir, settings, Path(args.output) if args.output else None, print)
    print(f"handoff ({outcome.diagnosis}): {outcome.handoff}")
    if outcome.draft:
        print(f"HALO's report kept as a draft: {outcome.draft}; missing: {'; '.join(outcome.problems)}")
    for note in outcome.notes:
        print(f"note: {note}")
    return 0


def _check_saved(run_dir: Path) -> None:
    """A run folder the handoff can be made again from: it has the run.json pytest saves with --agentloop-handoff.

    Every session run has a folder (a live run's traces and verdicts are there too), but only a run made with
    ``--agentloop-handoff`` keeps the handoff's inputs (run.json, results.json, context.jsonl).
    """
    if (run_dir / "run.json").is_file():
        return
    if not run_dir.is_dir():
        raise AgentloopError(
            "not a saved run: no such folder; give a run folder pytest wrote with --agentloop-handoff, "
            "e.g. .agentloop/runs/<run id>",
            path=run_dir,
        )
    saved = sorted(p.parent.name for p in run_dir.parent.glob("*/run.json"))
    hint = f"; the latest run here that has one: {run_dir.parent / saved[-1]}" if saved else ""
    raise AgentloopError(
        "not a saved run for a handoff: this run folder has no run.json (pytest keeps it, with results.json and "
        f"context.jsonl, only for a run made with --agentloop-handoff); rerun the evals with --agentloop-handoff{hint}",
        path=run_dir,
    )


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``handoff``."""
    handoff = commands.add_parser("handoff", help="run HALO again over a saved run and write its handoff")
    handoff.add_argument("run_dir", metavar="RUN_DIR", help="a saved run, e.g. .agentloop/runs/<run id>")
    handoff.add_argument(
        "-o", "--out", "--output", dest="output", help="where to write the handoff (default: RUN_DIR/handoff.md)"
    )
    handoff.add_argument("--model", help="HALO model (default: the judge model pytest would use here)")
    handoff.add_argument(
        "--base-url", help="OpenAI-compatible base URL (default: as pytest here: ini, $OPENAI_BASE_URL)"
    )
    handoff.add_argument("--key-env", help="variable holding the API key (default: as pytest here)")
    handoff.add_argument("--timeout", type=float, help="HALO time budget in seconds (default: as pytest here)")
    handoff.set_defaults(run=_cmd_handoff)
