"""Everything a run needs besides its question, built once from ini settings or command-line flags."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pytest_agentloop.agent.budget import hold_run
from pytest_agentloop.agent.builtin import pace_loop
from pytest_agentloop.agent.capture import CapturedRun, CaptureOptions, capture_run
from pytest_agentloop.agent.cost import PRICES, parse_prices
from pytest_agentloop.agent.errors import BudgetExhausted
from pytest_agentloop.agent.harness import Harness, load_harness
from pytest_agentloop.agent.pacing import Pacing
from pytest_agentloop.agent.questions import QuestionSpec
from pytest_agentloop.agent.redact import BUILTIN_KINDS, Hook, Redactor, load_hook, parse_kinds
from pytest_agentloop.agent.runner import AgentCallable, load_agent
from pytest_agentloop.spend import MoneyLedger


@dataclass(frozen=True)
class AgentSetup:
    """The agent callable, its harness and what capture does around it."""

    agent: AgentCallable
    agent_ref: str
    harness: Harness
    timeout: float | None = None
    redact_hook: str | None = None
    hook: Hook | None = None
    """The redaction hook ``redact_hook`` names, loaded (from the project root) when the setup was built."""
    redact_kinds: frozenset[str] = frozenset(BUILTIN_KINDS)
    """The built-in redaction patterns that apply (``agentloop_redact_builtin``)."""
    prices: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(PRICES))
    upload: bool = False

    def options(self, question: QuestionSpec, provenance: str, replace: bool = False) -> CaptureOptions:
        """Capture options for one run (a fresh redactor, so its counts are the run's)."""
        return CaptureOptions(
            harness=self.harness,
            metadata=question.metadata,
            timeout=self.timeout,
            redactor=Redactor(hook=self.hook, kinds=self.redact_kinds),
            prices=self.prices,
            provenance=provenance,
            agent_ref=self.agent_ref,
            upload=self.upload,
            replace=replace,
        )


def build_setup(
    agent_ref: str,
    harness_path: Path | None,
    root: Path,
    *,
    timeout: float | None = None,
    redact: str | None = None,
    redact_builtin: str = " ".join(BUILTIN_KINDS),
    prices: list[str] | None = None,
    upload: bool = False,
) -> AgentSetup:
    """Load the agent callable, the redaction hook and the harness; raise AgentConfigError naming what is wrong.

    ``root`` is the project's root (pytest's rootdir): every import path resolves against it.
    """
    return AgentSetup(
        agent=load_agent(agent_ref, root),
        agent_ref=agent_ref,
        harness=load_harness(harness_path),
        timeout=timeout,
        redact_hook=redact or None,
        hook=load_hook(redact, root) if redact else None,
        redact_kinds=parse_kinds(redact_builtin),
        prices=parse_prices(prices or []),
        upload=upload,
    )


def missing_key(key_env: str) -> str | None:
    """Why the agent cannot run for want of its key variable (``none``: it needs no key); None when it is set."""
    if key_env.lower() == "none" or os.environ.get(key_env):
        return None
    return (
        f"no key for the agent's endpoint in ${key_env} "
        "(set it, or set agentloop_agent_key_env = none for an agent that needs none)"
    )


Progress = Callable[[CapturedRun], None]


@dataclass(frozen=True)
class NotStarted:
    """A question ``agentloop record --budget`` did not run, and why."""

    label: str
    reason: str


async def record_all(
    setup: AgentSetup,
    questions: list[QuestionSpec],
    store: Path,
    concurrency: int,
    replace: bool,
    progress: Progress,
    pacing: Pacing | None = None,
    ledger: MoneyLedger | None = None,
) -> list[CapturedRun | NotStarted]:
    """Capture every question into ``store``, ``concurrency`` runs in flight.

    ``pacing`` paces the runs' model calls; with a ``ledger`` a run starts only
    when its likely cost cannot pass the budget (the others are NotStarted).
    """
    pace_loop(pacing)
    gate = asyncio.Semaphore(concurrency)

    async def one(question: QuestionSpec) -> CapturedRun | NotStarted:
        async with gate:
            try:
                hold = None if ledger is None else await hold_run(ledger, f"run {question.label}")
            except BudgetExhausted as exc:
                return NotStarted(question.label, str(exc))
            cost: float | None = None
            model: str | None = None
            try:
                run = await capture_run(
                    setup.agent,
                    question.question,
                    store=store,
                    label=question.label,
                    options=setup.options(question, "captured", replace),
                )
                cost, model = run.cost_usd, run.model
            finally:
                if ledger is not None and hold is not None:
                    await asyncio.to_thread(ledger.settle, hold, cost, model)
        progress(run)
        return run

    return list(await asyncio.gather(*(one(q) for q in questions)))


def say(text: str) -> None:
    """A line on stderr."""
    print(text, file=sys.stderr, flush=True)
