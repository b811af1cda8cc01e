"""Wiring of ``--agentloop-budget``: the session's ledger, shared with xdist workers, and its summary line.

The ledger itself is :mod:`pytest_agentloop.spend`; live runs
(:mod:`~pytest_agentloop.agent.pool`) and judge calls
(:mod:`~pytest_agentloop.judge.spending`) hold money against it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from pytest_agentloop.agent.cost import cost_of, parse_prices
from pytest_agentloop.agent.errors import AgentConfigError, BudgetExhausted
from pytest_agentloop.agent.harness import load_harness
from pytest_agentloop.agent.options import build_live_settings
from pytest_agentloop.agent.runner import BUILTIN
from pytest_agentloop.config import JudgeMode, is_worker, settings_of
from pytest_agentloop.spend import MONEY_KEY, Decision, Hold, MoneyBudget, MoneyLedger

SESSION_KEY = "agentloop_budget_session"
PROBE_POLL = 0.1  # seconds between looks at the ledger while the first run prices runs


async def hold_run(ledger: MoneyLedger, what: str, stop: Callable[[], bool] | None = None) -> Hold:
    """Hold an agent run's likely cost (waiting while the first run probes it); BudgetExhausted if it could pass.

    ``what`` names the run (``live run trace-01``): a run refused once is refused again, and counted once.
    While waiting, ``stop()`` true gives up (CancelledError): nothing was held.
    """
    while True:
        decision, hold = await asyncio.to_thread(ledger.try_hold, None, what)
        if decision is Decision.GO:
            return hold
        if decision is Decision.REFUSE:
            raise BudgetExhausted(f"{what} not started: {ledger.refusal()}")
        if stop is not None and stop():
            raise asyncio.CancelledError
        await asyncio.sleep(PROBE_POLL)


def price_missing(
    model: str | None, what: str, table: dict[str, tuple[float, float]], flag: str = "--agentloop-budget"
) -> str | None:
    """Why a budget cannot price ``model`` (the judge's, the built-in runner's), naming what to add; None if it can."""
    if model is None:
        return f"{flag} cannot price {what}: it names no model (set model_settings: {{model: ...}})"
    if cost_of(model, 1, 1, table) is None:
        return (
            f"{flag} cannot price {what} {model}: add a line "
            f"'{model} USD_PER_1M_IN USD_PER_1M_OUT' to the ini option agentloop_prices"
        )
    return None


def require_price(model: str | None, what: str, table: dict[str, tuple[float, float]]) -> None:
    """A session's budget must price ``model``: else a usage error (see :func:`price_missing`)."""
    missing = price_missing(model, what, table)
    if missing is not None:
        raise pytest.UsageError(missing)


def register_budget(config: pytest.Config) -> None:
    """With a budget, put the session's :class:`MoneyBudget` in the stash (usage errors raised here)."""
    live = build_live_settings(config)
    if live.budget is None:
        return
    settings = settings_of(config)
    try:
        table = parse_prices(list(live.prices))
    except AgentConfigError as exc:
        raise pytest.UsageError(f"--agentloop-budget: {exc}") from None
    if settings.judge_mode in (JudgeMode.RECORD, JudgeMode.REFRESH):
        require_price(settings.judge_model, "judge model", table)
    if live.live and live.agent == BUILTIN and settings.harness:
        with contextlib.suppress(AgentConfigError):  # a harness that does not load is --agentloop-live's to report
            require_price(load_harness(config.rootpath / settings.harness).model, "the harness's model", table)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and SESSION_KEY in workerinput:
        session = str(workerinput[SESSION_KEY])
    else:
        session = str(getattr(config.pluginmanager.get_plugin("agentloop-session"), "run_id", "session"))
    budget = MoneyBudget(live.budget, settings.rate_dir(config.rootpath), session, live.prices)
    config.stash[MONEY_KEY] = budget
    config.pluginmanager.register(SessionBudget(budget), SessionBudget.name)


class SessionBudget:
    """Hands the ledger's name to workers; the controller reports what was spent and removes the ledger."""

    name = "agentloop-budget"

    def __init__(self, budget: MoneyBudget) -> None:
        self.budget = budget

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Every worker holds money against the controller's ledger."""
        node.workerinput[SESSION_KEY] = self.budget.session

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
        """``agentloop budget: $S of $L spent; N runs or judge calls not started``."""
        if is_worker(config):
            return
        state = self.budget.ledger().state()
        refused = f"; {state['refused']:g} live runs or judge calls not started" if state["refused"] else ""
        unpriced = f"; {state['unpriced']:g} of unknown cost, counted at what they held" if state["unpriced"] else ""
        terminalreporter.write_line(
            f"agentloop budget: ${state['spent']:.4f} of ${self.budget.limit:g} spent{refused}{unpriced}",
            yellow=bool(state["refused"] or state["unpriced"]),
        )

    @pytest.hookimpl
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """The controller removes the session's ledger file; unregister."""
        if not is_worker(config):
            self.budget.ledger().file.remove()
        config.pluginmanager.unregister(self)
