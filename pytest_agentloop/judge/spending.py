"""Judge calls against the session's money budget (``--agentloop-budget``): the client's one hook."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pytest_agentloop.agent.cost import cost_of, parse_prices
from pytest_agentloop.judge.endpoint import JudgeEndpoint, JudgeError
from pytest_agentloop.judge.rubric import Prompt
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


def prompt_tokens(prompt: Prompt) -> int:
    """About how many tokens the prompt is (four characters a token), before the endpoint counts them."""
    return (len(prompt.system) + len(prompt.user)) // 4 + 1


def paid(ledger: MoneyLedger | None, endpoint: JudgeEndpoint, prompt_tokens: int, call: Call) -> Call:
    """``call`` made only if its most cost fits the budget, its real cost (from the answer's token counts) then spent.

    ``call`` returns an answer with ``input_tokens`` and ``output_tokens`` (None when the endpoint sent no usage).
    """
    if ledger is None:
        return call

    async def within_budget() -> Any:
        decision, hold = await asyncio.to_thread(ledger.try_hold, most_cost(endpoint, ledger, prompt_tokens))
        if decision is not Decision.GO:
            raise JudgeOverBudget(f"judge call not started: {ledger.refusal()}")
        cost = None
        try:
            answer = await call()
            tokens_in, tokens_out = answer.input_tokens, answer.output_tokens
            if tokens_in is not None or tokens_out is not None:
                table = parse_prices(list(ledger.budget.prices))
                cost = cost_of(endpoint.model, tokens_in or 0, tokens_out or 0, table)
        finally:
            await asyncio.to_thread(ledger.settle, hold, cost)
        return answer

    return within_budget
