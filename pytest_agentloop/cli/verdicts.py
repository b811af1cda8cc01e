"""Subcommands about verdicts: ``label``, ``verdicts agreement``, ``verdicts prune``, ``verdicts migrate``."""

from __future__ import annotations

import argparse
from pathlib import Path

from pytest_agentloop.cli.common import eval_files, verdict_stores
from pytest_agentloop.config import DEFAULT_VERDICTS_FILE
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.judge import review


def _cmd_label(args: argparse.Namespace) -> int:
    target = review.resolve(args.nodeid, Path.cwd(), args.verdicts)
    verdict = review.human_verdict(target, passed=args.passed, score=args.score, reason=args.reason, by=args.by)
    store = review.store(target.store_path)
    store.read()  # a store with a bad line is refused before anything is written
    store.append([verdict])
    store.rewrite()
    outcome = "pass" if verdict.passed else "fail"
    print(f"recorded {outcome} (score {verdict.score:g}) by {args.by} for {args.nodeid} in {target.store_path}")
    return 0


def _cmd_agreement(args: argparse.Namespace) -> int:
    rows = review.agreement(verdict_stores(_existing(args.paths), args.verdicts))
    if not rows:
        print("no output has both a person's and the model's verdict yet")
        return 0
    for row in rows:
        print(f"{row.eval_file}::{row.eval_id}\t{row.agreed}/{row.compared} agree")
    compared, agreed = sum(r.compared for r in rows), sum(r.agreed for r in rows)
    print(f"overall: model agrees with people on {agreed}/{compared} outputs ({agreed / compared:.0%})")
    return 0


def _cmd_prune(args: argparse.Namespace) -> int:
    total = 0
    for store in review.stores_in(eval_files(_existing(args.paths)), args.verdicts):
        removed = review.prune(store)
        total += removed
        print(f"{store}: removed {removed} unused verdicts")
    print(f"removed {total} in all")
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    stores = review.stores_in(eval_files(_existing(args.paths)), args.verdicts)
    for store in stores:
        done = review.migrate(store)
        line = f"{store}: re-keyed {done.migrated} verdicts to key version 2, {done.current} already current"
        if done.stale:
            line += (
                f"; {done.stale} left as they were (their eval, rubric or output changed; `verdicts prune` drops them)"
            )
        print(line)
    if not stores:
        print("no verdict stores found")
    return 0


def _existing(paths: list[str]) -> list[str]:
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise AgentloopError(f"no such file or folder: {', '.join(missing)}")
    return paths


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``label`` and ``verdicts``."""
    _label_parser(commands)
    _verdicts_parser(commands)


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
        ("prune", _cmd_prune, "remove verdicts no eval of the folder uses any more"),
        ("migrate", _cmd_migrate, "re-key verdicts stored under an older key version whose inputs are unchanged"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("paths", nargs="*", metavar="PATH", help="eval files or folders (default: .)")
        action.add_argument("--verdicts", default=DEFAULT_VERDICTS_FILE, help="verdict store file name")
        action.set_defaults(run=run)
