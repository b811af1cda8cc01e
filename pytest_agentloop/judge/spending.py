"""Judge calls against the session's money budget (``--agentloop-budget``): the client's one hook."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pytest_agentloop.agent.cost import cost_of, parse_prices
from pytest_agentloop.judge.endpoint import JudgeEndpoint, JudgeError
from pytest_agentloop.spend import Decision, MoneyLedger

Call = Callable[[], Awaitable[Any]]


class JudgeOverBudget(JudgeError):
    """A judge call was not started: it could pass the session's budget."""


def most_cost(endpoint: JudgeEndpoint, ledger: MoneyLedger, prompt_tokens: int) -> float:
    """The most a call may cost: its prompt and the output cap at the judge model's prices."""
    table = parse_prices(list(ledger.budget.prices))
    cost = cost_of(endpoint.model, prompt_tokens, endpoint.max_tokens, table)
    if cost is None:
        raise JudgeOverBudget(
            f"judge call not started: --agentloop-budget cannot price judge model {endpoint.model}; "
            f"add a line '{endpoint.model} USD_PER_1M_IN USD_PER_1M_OUT' to the ini option agentloop_prices"
        )
    return cost


def paid(ledger: MoneyLedger | None, endpoint: JudgeEndpoint, prompt_tokens: int, call: Call) -> Call:
    """``call`` made only if its most cost fits the budget, its real cost (from the usage) then spent."""
    if ledger is None:
        return call

    async def within_budget() -> Any:
        decision, hold = await asyncio.to_thread(ledger.try_hold, most_cost(endpoint, ledger, prompt_tokens))
        if decision is not Decision.GO:
            raise JudgeOverBudget(f"judge call not started: {ledger.refusal()}")
        cost = None
        try:
            raw = await call()
            usage = getattr(raw.parse(), "usage", None)
            tokens_in = getattr(usage, "input_tokens", None) or getattr(usage, "prompt_tokens", None)
            tokens_out = getattr(usage, "output_tokens", None) or getattr(usage, "completion_tokens", None)
            if usage is not None:
                table = parse_prices(list(ledger.budget.prices))
                cost = cost_of(endpoint.model, int(tokens_in or 0), int(tokens_out or 0), table)
        finally:
            await asyncio.to_thread(ledger.settle, hold, cost)
        return raw

    return within_budget
