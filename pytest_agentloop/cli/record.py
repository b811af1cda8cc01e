"""``agentloop record``: run the agent on questions and write the runs into a trace store."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from fnmatch import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_agentloop.agent.errors import AgentConfigError
from pytest_agentloop.agent.pacing import Pacing
from pytest_agentloop.agent.questions import QuestionSpec, distinct, from_record, load_questions
from pytest_agentloop.cli.common import PytestView, pytest_collection, pytest_settings
from pytest_agentloop.config import DEFAULT_TRACES_DIRNAME
from pytest_agentloop.ratelimit import parse_rate
from pytest_agentloop.spend import MoneyBudget

if TYPE_CHECKING:
    from pytest_agentloop.agent.setup import AgentSetup

QUESTION_SUFFIXES = (".yaml", ".yml", ".jsonl")


def gather_questions(sources: list[str], view: PytestView) -> list[QuestionSpec]:
    """Questions from questions files, and from the recorded runs eval files check (one per distinct question)."""
    found: list[QuestionSpec] = []
    for name in sources:
        path = Path(name)
        if not path.exists():
            raise AgentConfigError("no such file or folder", path=path)
        if path.is_dir() or any(fnmatch(path.name, p) for p in view.settings.eval_patterns):
            found.extend(_eval_questions(path))
        elif path.suffix in QUESTION_SUFFIXES:
            found.extend(load_questions(path))
        else:
            raise AgentConfigError("give a questions file (.yaml, .yml, .jsonl), eval files or folders", path=path)
    labels = [q.label for q in found]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise AgentConfigError(f"labels given twice: {', '.join(twice)}")
    return found


def _eval_questions(path: Path) -> list[QuestionSpec]:
    """The questions of the runs the eval files under ``path`` check, the files loaded as pytest loads them
    (the ini's patterns and traces folder, assertion types from conftest.py)."""
    view = pytest_collection([str(path)])
    if view.errors:
        raise AgentConfigError(f"eval files that do not load: {'; '.join(view.errors)}", path=path)
    if not view.suites:
        raise AgentConfigError("no eval files here", path=path)
    questions = [
        from_record(view.stores[file].get(spec.trace))
        for file, suite in sorted(view.suites.items())
        for spec in suite.evals
    ]
    return distinct(questions)


def _cmd_record(args: argparse.Namespace) -> int:
    from pytest_agentloop.agent.capture import CapturedRun
    from pytest_agentloop.agent.setup import NotStarted, record_all, say

    view = pytest_settings()  # the rootdir and ini pytest would use here, found upwards as pytest finds them
    setup = _setup(args, view)
    questions = gather_questions(args.sources, view)
    store = Path(args.out)
    pacing = _pacing(args.rate, view)
    budget = _budget(args.budget, view, setup)
    if not args.replace:
        taken = [q.label for q in questions if (store / "runs" / q.label).exists()]
        if taken:
            raise AgentConfigError(f"runs already recorded: {', '.join(taken)}; pass --replace to record them again")
    (store / "runs").mkdir(parents=True, exist_ok=True)
    done: list[int] = [0, 0]

    def progress(run: object) -> None:
        done[0] += 1
        done[1] += not getattr(run, "ok", False)
        say(f"agentloop record: {done[0]}/{len(questions)} runs, {done[1]} failed")

    say(
        f"agentloop record: {len(questions)} questions, harness {setup.harness.version}, concurrency {args.concurrency}"
    )
    ledger = budget.ledger() if budget is not None else None
    try:
        results = asyncio.run(
            record_all(setup, questions, store, args.concurrency, args.replace, progress, pacing, ledger)
        )
        spent = ledger.state() if ledger is not None else None
    finally:
        if ledger is not None:
            ledger.file.remove()
    runs = [r for r in results if isinstance(r, CapturedRun)]
    skipped = [r for r in results if isinstance(r, NotStarted)]
    for result in sorted(results, key=lambda r: r.label):
        if isinstance(result, NotStarted):
            print(f"{result.label}\t-\t-\t{result.reason}")
            continue
        state = "ok" if result.ok else f"FAILED: {result.error}"
        cost = "" if result.cost_usd is None else f", ${result.cost_usd:.4f}"
        print(f"{result.label}\t{result.trace_id}\t{result.wall_seconds:.1f}s{cost}\t{state}")
    if budget is not None and spent is not None:
        unknown = f"; {spent['unpriced']:g} of unknown cost, counted at what they held" if spent["unpriced"] else ""
        print(f"budget: ${spent['spent']:.4f} of ${budget.limit:g} spent; {len(skipped)} runs not started{unknown}")
    not_started = f", {len(skipped)} not started (budget)" if skipped else ""
    print(f"wrote {len(runs)} runs to {store} ({sum(not r.ok for r in runs)} failed{not_started})")
    return 1 if skipped or any(not r.ok for r in runs) else 0


def _setup(args: argparse.Namespace, view: PytestView) -> AgentSetup:
    """The agent, checked as ``--agentloop-live`` checks it (an agent, its key), before any run or file."""
    from pytest_agentloop.agent.setup import build_setup, missing_key

    agent = args.agent or view.agent.agent
    if not agent:
        raise AgentConfigError("no agent: pass --agent package.module:function (or 'harness'), or set agentloop_agent")
    missing = missing_key(view.agent.key_env)
    if missing is not None:
        raise AgentConfigError(missing)
    harness = view.rootpath / view.settings.harness if view.settings.harness else None
    return build_setup(
        agent,
        Path(args.harness) if args.harness else harness,
        view.rootpath,
        timeout=args.timeout,
        redact=args.redact or view.agent.redact or None,
        redact_builtin=view.agent.redact_builtin,
        prices=list(view.agent.prices),
        upload=args.upload_traces,
    )


def _budget(limit: float | None, view: PytestView, setup: AgentSetup) -> MoneyBudget | None:
    """``--budget USD``: a ledger of this command's own, priced with ini ``agentloop_prices``."""
    if limit is None:
        return None
    from pytest_agentloop.agent.budget import price_missing
    from pytest_agentloop.agent.runner import BUILTIN

    if setup.agent_ref.strip() == BUILTIN:  # the built-in runner's model is known before it runs: it must be priced
        missing = price_missing(setup.harness.model, "the harness's model", setup.prices, "--budget")
        if missing is not None:
            raise AgentConfigError(missing)
    artifacts = view.rootpath / view.settings.artifacts_dir
    session = f"record-{uuid.uuid4().hex[:12]}"
    return MoneyBudget(limit, artifacts / "rate", session, view.agent.prices, flag="--budget", holders="runs")


def _pacing(rate: str | None, view: PytestView) -> Pacing | None:
    """``--rate`` (else ini ``agentloop_rate``): the agent endpoint's budget, the one pytest's live runs share."""
    limit = view.settings.rate
    if rate:
        try:
            limit = parse_rate(rate)
        except ValueError as exc:
            raise AgentConfigError(f"--rate: {exc}") from None
    if limit is None:
        return None
    return Pacing(limit, view.rootpath / view.settings.artifacts_dir / "rate", view.agent.key_env)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {text}")
    return value


def _dollars(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an amount in USD, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive amount in USD, got {text}")
    return value


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``record``."""
    record = commands.add_parser(
        "record", help="run the agent on questions (a questions file, or eval files) and store the runs"
    )
    record.add_argument("sources", nargs="+", metavar="PATH", help="questions file (YAML/JSONL), eval files or folders")
    record.add_argument("-o", "--out", default=DEFAULT_TRACES_DIRNAME, help="trace store to write (default: traces)")
    record.add_argument("--agent", help="the agent callable, package.module:function, or 'harness' (default: ini)")
    record.add_argument("--harness", help="harness config YAML (default: ini agentloop_harness)")
    record.add_argument("--concurrency", type=_positive, default=8, help="runs in flight at once (default: 8)")
    record.add_argument("--timeout", type=float, default=None, help="seconds before a run counts as failed")
    record.add_argument("--replace", action="store_true", help="record labels that already exist again")
    record.add_argument("--redact", help="redaction hook package.module:function (default: ini agentloop_redact)")
    record.add_argument(
        "--rate",
        metavar="RPM[,TPM]",
        help="the agent endpoint's rate limit, shared with pytest's judge and live runs (default: agentloop_rate)",
    )
    record.add_argument(
        "--budget",
        type=_dollars,
        metavar="USD",
        help="start no run that could take the total cost past USD (priced as the dearest run so far)",
    )
    record.add_argument(
        "--upload-traces", action="store_true", help="also send traces to OpenAI's trace ingest (off by default)"
    )
    record.set_defaults(run=_cmd_record)
