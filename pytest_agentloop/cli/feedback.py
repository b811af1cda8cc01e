"""Subcommands about human feedback: ``feedback add`` and ``feedback list``."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from pytest_agentloop.authoring import locate
from pytest_agentloop.authoring.feedback import (
    HUMAN,
    Feedback,
    FeedbackError,
    FeedbackFile,
    from_json,
    read_files,
)
from pytest_agentloop.recordings import now

HF_ID = re.compile(r"^hf-(\d+)$")


def _next_id(existing: list[Feedback]) -> str:
    numbers = [int(m.group(1)) for f in existing if (m := HF_ID.match(f.id))]
    return f"hf-{max(numbers, default=0) + 1:02d}"


def _cmd_add(args: argparse.Namespace) -> int:
    ini = locate.read_ini(Path.cwd())
    path = locate.feedback_path(ini, args.file)
    store = locate.trace_store(ini, path.parent, args.traces)
    if args.trace not in store:
        known = ", ".join(r.label for r in store) or "none"
        raise FeedbackError(f"no recorded run {args.trace!r} in {store.root} (known: {known})")
    if not args.summary.strip():
        raise FeedbackError("--summary must not be empty: say in a sentence what is good or wrong")
    existing = FeedbackFile(path).read()
    feedback_id = args.id or _next_id(existing)
    if any(f.id == feedback_id for f in existing):
        raise FeedbackError(f"feedback id {feedback_id!r} is already used; pick another --id", path=path)
    record = store.get(args.trace)
    line = _validated(
        {
            "id": feedback_id,
            "trace_id": record.trace_id,
            "label": record.label,
            "question": record.question,
            "source": HUMAN,
            "author": args.by,
            "theme": args.theme,
            "summary": args.summary.strip(),
            "required_observations": args.require,
            "prohibited_claims": args.prohibit,
            "created": now(),
            **({"rating": args.rating} if args.rating else {}),
        }
    )
    FeedbackFile(path).append([line])
    print(f"added {feedback_id} on {record.label} ({record.trace_id}) to {path}")
    return 0


def _validated(data: dict[str, object]) -> Feedback:
    """The new line, checked by the same code that reads the file (options named as on the command line)."""
    try:
        return from_json(data)
    except ValueError as exc:
        message = str(exc).replace("field 'author'", "--by").replace("field 'required_observations'", "--require")
        message = message.replace("field 'prohibited_claims'", "--prohibit").replace("field 'theme'", "--theme")
        raise FeedbackError(message) from None


def _cmd_list(args: argparse.Namespace) -> int:
    ini = locate.read_ini(Path.cwd())
    paths = [Path(p) for p in args.file] if args.file else ini.paths("agentloop_feedback")
    if not paths:
        raise FeedbackError("no feedback file: pass --file PATH, or set agentloop_feedback in the pytest ini")
    shown = 0
    for item in read_files(paths):
        if args.trace and args.trace not in (item.label, item.trace_id):
            continue
        who = f"by {item.author}" if item.is_human else f"model {item.model}"
        rating = f", rated {item.rating}" if item.rating else ""
        print(f"{item.id}\t{item.label}\t{item.theme or '-'}\t{item.source} {who}{rating}")
        for text in item.lines():
            if not text.startswith("rating: "):  # already on the header line
                print(f"    {text}")
        shown += 1
    print(f"{shown} feedback lines")
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``feedback add`` and ``feedback list``."""
    feedback = commands.add_parser("feedback", help="add or list reviewer feedback on traces")
    actions = feedback.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="append a person's feedback on one trace to the feedback file")
    add.add_argument("trace", metavar="TRACE", help="label or trace id of the recorded run")
    add.add_argument("--theme", required=True, help="the behaviour it is about (a tag: letters, digits, _)")
    add.add_argument("--summary", required=True, help="what is good or wrong, in a sentence")
    add.add_argument("--require", action="append", default=[], help="an observation the answer must make (repeat)")
    add.add_argument("--prohibit", action="append", default=[], help="a claim the answer must not make (repeat)")
    rating = add.add_mutually_exclusive_group()
    rating.add_argument("--good", dest="rating", action="store_const", const="good", help="the output is good")
    rating.add_argument("--bad", dest="rating", action="store_const", const="bad", help="the output is bad")
    add.add_argument("--by", required=True, help="who is giving the feedback (name or handle)")
    add.add_argument("--id", default=None, help="feedback id (default: the next hf-NN)")
    add.add_argument("--file", default=None, help="feedback file (default: the first agentloop_feedback entry)")
    add.add_argument("--traces", default=None, help="trace store folder (default: the nearest traces/ above the file)")
    add.set_defaults(run=_cmd_add)
    listing = actions.add_parser("list", help="show feedback lines (human feedback and model insights)")
    listing.add_argument("--trace", default=None, help="only this trace (label or id)")
    listing.add_argument(
        "--file", action="append", default=[], help="feedback file (default: every agentloop_feedback)"
    )
    listing.set_defaults(run=_cmd_list)
