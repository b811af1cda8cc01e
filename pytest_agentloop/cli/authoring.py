"""Subcommands that ask a model: ``insights`` and ``generate`` (recorded and replayed offline)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_agentloop.authoring import locate
from pytest_agentloop.authoring.feedback import Feedback, FeedbackError, FeedbackFile, read_files
from pytest_agentloop.cli.common import eval_files
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.spec import EvalSpec, load_suite
from pytest_agentloop.traces.store import TraceStore

if TYPE_CHECKING:  # the model modules import the openai client: only when a command runs
    from pytest_agentloop.authoring.generate import Outcome
    from pytest_agentloop.authoring.model import Caller

INSIGHTS_FILE = "insights.jsonl"
SOURCES = ("feedback", "insights")
MODES = ("replay", "record", "refresh")


def _caller(args: argparse.Namespace, ini: locate.Ini, store: TraceStore) -> Caller:
    from pytest_agentloop.authoring.model import Caller, Mode, recordings

    overrides = {
        name: getattr(args, name) for name in ("model", "base_url", "api", "key_env", "timeout", "retries", "rate")
    }
    endpoint, key_env = locate.endpoint(ini, {k: None if v is None else str(v) for k, v in overrides.items()})
    mode = Mode(args.mode) if args.mode else (Mode.RECORD if endpoint.api_key else Mode.REPLAY)
    store_file = recordings(locate.recordings_path(store, args.recordings))
    concurrency = args.concurrency if args.concurrency is not None else int(ini.text("agentloop_concurrency") or 8)
    if concurrency < 1:
        raise AgentloopError(f"--concurrency must be at least 1, got {concurrency}")
    return Caller(endpoint, mode, store_file, concurrency, key_env)


def _feedback_files(args: argparse.Namespace, ini: locate.Ini) -> list[Path]:
    paths = [Path(p) for p in args.feedback] if args.feedback else ini.paths("agentloop_feedback")
    if not paths:
        raise FeedbackError("no feedback file: pass --feedback PATH, or set agentloop_feedback in the pytest ini")
    return paths


def _insights_path(args: argparse.Namespace, feedback: list[Path]) -> Path:
    return Path(args.insights) if args.insights else feedback[0].parent / INSIGHTS_FILE


def _cmd_insights(args: argparse.Namespace) -> int:
    from pytest_agentloop.authoring import insights

    ini = locate.read_ini(Path.cwd())
    files = _feedback_files(args, ini)
    store = locate.trace_store(ini, files[0].parent, args.traces)
    out = Path(args.out) if args.out else _insights_path(args, files)
    feedback = read_files([p for p in files if p.resolve() != out.resolve()])
    caller = _caller(args, ini, store)
    lines = insights.run(store, insights.select(store, args.trace), feedback, caller)
    FeedbackFile(out).upsert(lines)
    for line in lines:
        print(f"{line.id}\t{line.label}\t{len(line.observations)} observations")
    print(f"wrote {len(lines)} insights to {out} (model {caller.endpoint.model}, {caller.mode.value} mode)")
    return 0


def _inputs(args: argparse.Namespace, files: list[Path]) -> tuple[list[Feedback], list[Feedback]]:
    """(input feedback for the model, every human feedback line for the contradiction check)."""
    kinds = {k.strip() for k in args.sources.split(",") if k.strip()}
    if not kinds or not kinds <= set(SOURCES):
        raise AgentloopError(f"--from takes a comma-separated list of {', '.join(SOURCES)}, got {args.sources!r}")
    insight_file = _insights_path(args, files)
    paths = list(files)
    if "insights" in kinds and insight_file.is_file() and insight_file.resolve() not in {p.resolve() for p in files}:
        paths.append(insight_file)
    every = read_files(paths)
    human = [f for f in every if f.is_human]
    wanted = [f for f in every if ("feedback" if f.is_human else "insights") in kinds]
    if args.trace:
        wanted = [f for f in wanted if f.label in args.trace or f.trace_id in args.trace]
    if args.tag:
        traces = {f.trace_id for f in human if f.theme in args.tag}
        wanted = [f for f in wanted if f.trace_id in traces and (not f.is_human or f.theme in args.tag)]
    return wanted, human


def _siblings(target: Path) -> list[EvalSpec]:
    """Evals in the other eval files of the target's folder (for near-duplicates)."""
    specs: list[EvalSpec] = []
    for path in eval_files([str(target.parent)]) if target.parent.is_dir() else []:
        if path.resolve() != target.resolve() and path.parent.resolve() == target.parent.resolve():
            try:
                specs += load_suite(path, 10_000_000).evals
            except AgentloopError:
                continue  # a broken sibling is collection's to report; it cannot be a duplicate
    return specs


def _cmd_generate(args: argparse.Namespace) -> int:
    from pytest_agentloop.authoring import generate

    ini = locate.read_ini(Path.cwd())
    files = _feedback_files(args, ini)
    target = Path(args.out)
    if not target.name.endswith((".eval.yaml", ".eval.yml")):
        raise AgentloopError(f"-o {target}: an eval file's name ends in .eval.yaml (so pytest collects it)")
    store = locate.trace_store(ini, target.parent if target.parent.is_dir() else files[0].parent, args.traces)
    wanted, human = _inputs(args, files)
    options = generate.Options(target, args.update, args.keep_contradicting, args.dry_run)
    run = generate.Generation(store, options, human, _siblings(target))
    caller = _caller(args, ini, store)
    outcome = run.run(wanted, caller)
    for line in outcome.lines:
        print(f"{line.mark} {target}::{line.eval_id}  {line.text}")
    _report(outcome, target, args.dry_run, caller)
    return 1 if outcome.rejected else 0


def _report(outcome: Outcome, target: Path, dry_run: bool, caller: Caller) -> None:
    source = f"model {caller.endpoint.model}, {caller.mode.value} mode"
    if dry_run:
        print(f"dry run: nothing written ({len(outcome.written)} evals would go to {target}; {source})")
    elif outcome.written:
        print(f"wrote {len(outcome.written)} evals to {target} ({source}); run: pytest {target}")
    else:
        print(f"nothing written to {target} ({source})")
    if outcome.rejected:
        print(f"{outcome.rejected} definitions refused (marked !)")


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--feedback", action="append", default=[], help="feedback file (default: every agentloop_feedback)"
    )
    parser.add_argument(
        "--insights", default=None, help=f"insights file (default: {INSIGHTS_FILE} beside the feedback)"
    )
    parser.add_argument("--traces", default=None, help="trace store folder (default: the nearest traces/)")
    parser.add_argument("--trace", action="append", default=[], help="only this trace, label or id (repeat)")
    parser.add_argument("--mode", choices=MODES, default=None, help="record with a key, else replay")
    parser.add_argument("--recordings", default=None, help="recordings file (default: recordings.jsonl in the suite)")
    parser.add_argument("--model", default=None, help="model (default: the judge's, agentloop_judge_model)")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (default: the judge's)")
    parser.add_argument(
        "--api",
        default=None,
        choices=["auto", "responses", "chat"],
        help="default: the judge's (auto: Responses on OpenAI's API, Chat Completions elsewhere)",
    )
    parser.add_argument("--key-env", default=None, help="variable holding the key (default: OPENAI_API_KEY)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per call (default: the judge's, 60)")
    parser.add_argument("--retries", type=int, default=None, help="retries per call (default: the judge's, 4)")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="calls in flight (default: agentloop_concurrency, 8)"
    )
    parser.add_argument(
        "--rate",
        default=None,
        metavar="RPM[,TPM]",
        help="the endpoint's rate limit, shared with pytest's judge (default: agentloop_rate; none: no pacing)",
    )


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``insights`` and ``generate``."""
    found = commands.add_parser("insights", help="a model's observations on each trace, kept as llm_insight lines")
    _model_options(found)
    found.add_argument(
        "-o", "--out", default=None, help=f"insights file to write (default: {INSIGHTS_FILE} beside the feedback)"
    )
    found.set_defaults(run=_cmd_insights)
    gen = commands.add_parser("generate", help="eval definitions from feedback and insights, checked, written as YAML")
    _model_options(gen)
    gen.add_argument("-o", "--out", required=True, help="eval file to write or add to (…/<name>.eval.yaml)")
    gen.add_argument("--from", dest="sources", default="feedback,insights", help="feedback, insights or both (default)")
    gen.add_argument("--tag", action="append", default=[], help="only feedback with this theme (repeat)")
    gen.add_argument("--update", action="store_true", help="replace evals whose id is already in the file")
    gen.add_argument("--keep-contradicting", action="store_true", help="write evals whose checks contradict a person")
    gen.add_argument("--dry-run", action="store_true", help="show what would be written, write nothing")
    gen.set_defaults(run=_cmd_generate)
