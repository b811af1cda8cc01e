"""The ``handoff`` subcommand: run HALO again over a saved run."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pytest_agentloop.config import DEFAULT_JUDGE_MODEL, Settings
from pytest_agentloop.errors import AgentloopError


def _cmd_handoff(args: argparse.Namespace) -> int:
    from pytest_agentloop.handoff.writer import rerun_handoff

    run_dir = Path(args.run_dir)
    if not (run_dir / "run.json").is_file():
        raise AgentloopError("not a saved run (no run.json); runs live under .agentloop/runs/", path=run_dir)
    settings = Settings(
        judge_model=args.model or os.environ.get("AGENTLOOP_JUDGE_MODEL") or DEFAULT_JUDGE_MODEL,
        judge_base_url=args.base_url or os.environ.get("OPENAI_BASE_URL") or None,
        judge_key_env=args.key_env,
        handoff_timeout=args.timeout,
    )
    outcome = rerun_handoff(run_dir, settings, Path(args.output) if args.output else None, print)
    print(f"handoff ({outcome.diagnosis}): {outcome.handoff}")
    if outcome.draft:
        print(f"HALO's report kept as a draft: {outcome.draft}; missing: {'; '.join(outcome.problems)}")
    for note in outcome.notes:
        print(f"note: {note}")
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``handoff``."""
    handoff = commands.add_parser("handoff", help="run HALO again over a saved run and write its handoff")
    handoff.add_argument("run_dir", metavar="RUN_DIR", help="a saved run, e.g. .agentloop/runs/<run id>")
    handoff.add_argument("--output", help="where to write the handoff (default: RUN_DIR/handoff.md)")
    handoff.add_argument("--model", help="HALO model (default: $AGENTLOOP_JUDGE_MODEL or the judge default)")
    handoff.add_argument("--base-url", help="OpenAI-compatible base URL (default: $OPENAI_BASE_URL)")
    handoff.add_argument("--key-env", default="OPENAI_API_KEY", help="variable holding the API key")
    handoff.add_argument("--timeout", type=float, default=900.0, help="HALO time budget in seconds")
    handoff.set_defaults(run=_cmd_handoff)
