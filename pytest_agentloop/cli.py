"""The ``agentloop`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_agentloop.config import DEFAULT_EVAL_PATTERNS, DEFAULT_VERDICTS_FILE
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.fileio import write_atomic
from pytest_agentloop.gate import splits, stats
from pytest_agentloop.gate.baseline import export_document
from pytest_agentloop.gate.history import History
from pytest_agentloop.judge import review
from pytest_agentloop.judge.verdicts import VerdictStore
from pytest_agentloop.spec import load_suite
from pytest_agentloop.traces.store import TraceStore


def _eval_files(paths: list[str]) -> list[Path]:
    found: set[Path] = set()
    for name in paths or ["."]:
        path = Path(name)
        if path.is_file():
            found.add(path)
        else:
            found.update(p for pattern in DEFAULT_EVAL_PATTERNS for p in path.rglob(pattern))
    return sorted(found)


def _stores(paths: list[str], file_name: str) -> list[Path]:
    return sorted({p.parent / file_name for p in _eval_files(paths) if (p.parent / file_name).is_file()})


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


def _cmd_label(args: argparse.Namespace) -> int:
    target = review.resolve(args.nodeid, Path.cwd(), args.verdicts)
    verdict = review.human_verdict(target, passed=args.passed, score=args.score, reason=args.reason, by=args.by)
    VerdictStore(target.store_path).append([verdict])
    VerdictStore(target.store_path).rewrite()
    outcome = "pass" if verdict.passed else "fail"
    print(f"recorded {outcome} (score {verdict.score:g}) by {args.by} for {args.nodeid} in {target.store_path}")
    return 0


def _cmd_agreement(args: argparse.Namespace) -> int:
    rows = review.agreement(_stores(args.paths, args.verdicts))
    if not rows:
        print("no output has both a person's and the model's verdict yet")
        return 0
    for row in rows:
        print(f"{row.eval_file}::{row.eval_id}\t{row.agreed}/{row.compared} agree")
    compared, agreed = sum(r.compared for r in rows), sum(r.agreed for r in rows)
    print(f"overall: model agrees with people on {agreed}/{compared} outputs ({agreed / compared:.0%})")
    return 0


def _cmd_prune(args: argparse.Namespace) -> int:
    current = review.current_subjects(_eval_files(args.paths))
    total = 0
    for store in _stores(args.paths, args.verdicts):
        removed = review.prune(store, current)
        total += removed
        print(f"{store}: removed {removed} unused verdicts")
    print(f"removed {total} in all")
    return 0


def _cmd_handoff(args: argparse.Namespace) -> int:
    import os

    from pytest_agentloop.config import DEFAULT_JUDGE_MODEL, Settings
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


def _history(args: argparse.Namespace) -> History:
    return History(Path(args.history))


def _cmd_runs(args: argparse.Namespace) -> int:
    runs = _history(args).runs(limit=args.limit)
    if not runs:
        print(f"no runs recorded in {args.history}")
        return 0
    print("run\tstarted\tcommit\tbranch\tharness\texit\tpassed\tfailed\terror\tskipped")
    for run in runs:
        counts = [str(run.counts.get(k, 0)) for k in ("passed", "failed", "error", "skipped")]
        commit = (run.git_commit or "-")[:10]
        print(
            "\t".join(
                [
                    run.run_id,
                    run.started,
                    commit,
                    run.git_branch or "-",
                    run.harness_version or "-",
                    str(run.exit_status),
                    *counts,
                ]
            )
        )
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _cmd_stats(args: argparse.Namespace) -> int:
    rows = stats.table(_history(args).series(since=args.since), tag=args.tag, split=args.split)
    if not rows:
        print("no results match")
        return 0
    print("eval\truns\tpass_rate\tmin\tmax\tmean\tflip_rate\tpassing_streak\tpassing_since")
    for row in rows:
        print(
            "\t".join(
                [
                    row.nodeid,
                    str(row.runs),
                    f"{row.pass_rate:.2f}",
                    _fmt(row.min_score),
                    _fmt(row.max_score),
                    _fmt(row.mean_score),
                    f"{row.flip_rate:.2f}",
                    str(row.passing_streak),
                    row.passing_since or "-",
                ]
            )
        )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    history = _history(args)
    run_id = history.resolve(args.run_ref)
    if run_id is None:
        raise AgentloopError(f"no run {args.run_ref!r} in {args.history}; see `agentloop runs`")
    run = next(r for r in history.runs() if r.run_id == run_id)
    meta = {
        "run_id": run.run_id,
        "started": run.started,
        "finished": run.finished,
        "git_commit": run.git_commit,
        "git_branch": run.git_branch,
        "harness_version": run.harness_version,
        "exit_status": run.exit_status,
    }
    text = export_document(meta, history.results(run_id))
    if args.output:
        write_atomic(Path(args.output), text)
        print(f"exported run {run_id} to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    if not 0.0 < args.holdout < 1.0:
        raise AgentloopError(f"--holdout must be between 0 and 1, got {args.holdout}")
    assignments = splits.assign(splits.load_specs(_eval_files(args.paths)), args.holdout)
    for item in assignments:
        mark = "*" if item.changes else " "
        print(f"{mark} {item.target.value:<12} {item.spec.path}::{item.spec.id} (tag {item.spec.tags[:1] or '-'})")
    if args.dry_run:
        print("dry run: nothing written")
        return 0
    changed = splits.write_back(assignments)
    print(f"wrote {len(changed)} files" + "".join(f"\n  {path}" for path in changed))
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
    handoff = commands.add_parser("handoff", help="run HALO again over a saved run and write its handoff")
    handoff.add_argument("run_dir", metavar="RUN_DIR", help="a saved run, e.g. .agentloop/runs/<run id>")
    handoff.add_argument("--output", help="where to write the handoff (default: RUN_DIR/handoff.md)")
    handoff.add_argument("--model", help="HALO model (default: $AGENTLOOP_JUDGE_MODEL or the judge default)")
    handoff.add_argument("--base-url", help="OpenAI-compatible base URL (default: $OPENAI_BASE_URL)")
    handoff.add_argument("--key-env", default="OPENAI_API_KEY", help="variable holding the API key")
    handoff.add_argument("--timeout", type=float, default=900.0, help="HALO time budget in seconds")
    handoff.set_defaults(run=_cmd_handoff)
    _label_parser(commands)
    _verdicts_parser(commands)
    _history_parsers(commands)
    split = commands.add_parser("split", help="assign evals to optimization/holdout, stratified per tag")
    split.add_argument("paths", nargs="*", metavar="PATH", help="eval files or folders (default: .)")
    split.add_argument("--holdout", type=float, default=0.3, help="fraction held out per tag (default: 0.3)")
    split.add_argument("--by", choices=["tag"], default="tag", help="stratify by the eval's first tag")
    split.add_argument("--dry-run", action="store_true", help="print the assignment, write nothing")
    split.set_defaults(run=_cmd_split)
    return parser


def _label_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    label = commands.add_parser("label", help="record a person's verdict on an eval's current output")
    label.add_argument("nodeid", help="path/to/file.eval.yaml::<eval id>, relative to the current folder")
    verdict = label.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--pass", dest="passed", action="store_true", help="the output satisfies the rubric")
    verdict.add_argument("--fail", dest="passed", action="store_false", help="it does not")
    label.add_argument("--score", type=float, default=None, help="0-1 (default: 1 for pass, 0 for fail)")
    label.add_argument("--reason", required=True, help="why, in a sentence or two")
    label.add_argument("--by", required=True, help="who is labelling (name or handle)")
    label.add_argument("--verdicts", default=DEFAULT_VERDICTS_FILE, help="verdict store file name")
    label.set_defaults(run=_cmd_label)


def _verdicts_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verdicts = commands.add_parser("verdicts", help="inspect and tidy recorded verdicts")
    actions = verdicts.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, run, text in (
        ("agreement", _cmd_agreement, "how often the model judge agrees with people, per eval and overall"),
        ("prune", _cmd_prune, "remove verdicts no current eval output uses"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("paths", nargs="*", metavar="PATH", help="eval files or folders (default: .)")
        action.add_argument("--verdicts", default=DEFAULT_VERDICTS_FILE, help="verdict store file name")
        action.set_defaults(run=run)


def _history_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    default = ".agentloop/history.sqlite"
    runs = commands.add_parser("runs", help="list recorded runs, newest first")
    runs.add_argument("--limit", type=int, default=20)
    runs.set_defaults(run=_cmd_runs)
    stat = commands.add_parser("stats", help="per eval: runs, pass rate, scores, flip rate, passing streak")
    stat.add_argument("--tag", help="only evals with this tag")
    stat.add_argument("--split", choices=["optimization", "holdout"], help="only evals in this split")
    stat.add_argument("--since", help="only runs started at or after this ISO time (e.g. 2026-11-01)")
    stat.set_defaults(run=_cmd_stats)
    export = commands.add_parser("export", help="write a run's results as JSON (a baseline for --agentloop-baseline)")
    export.add_argument("run_ref", metavar="RUN", help="run id (or unique prefix) or 'latest'")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    export.set_defaults(run=_cmd_export)
    for parser in (runs, stat, export):
        parser.add_argument("--history", default=default, help=f"history database (default: {default})")


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
