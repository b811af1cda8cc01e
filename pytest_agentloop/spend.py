"""``--agentloop-budget=USD``: one money ledger per session, fed by live agent runs and judge calls.

The ledger is a :class:`~pytest_agentloop.sharedfile.SharedJson` file under
the rate folder, named by the session's run id, so the xdist controller and
every worker draw from one budget (``-n 4`` is not four budgets). Before a
call or run starts it *holds* what it may cost; when it ends the hold becomes
what it did cost. Nothing starts that could take spent plus held past the
budget.

What a thing may cost before it starts:

- a judge call: its prompt (about 4 characters a token) at the model's input
  price plus the output cap (``--agentloop-judge-max-tokens``) at its output
  price. A call that fails keeps its hold as spent: whether it was billed is
  unknown.
- a live run has no cap, so it is priced as the dearest run so far; the first
  run of the session goes alone, as until it ends there is nothing to price
  from.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_agentloop.sharedfile import SharedJson


class Decision(enum.Enum):
    """What the ledger says to a run or call that wants to start."""

    GO = "go"
    WAIT = "wait"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Hold:
    """Money held for one run or call until it ends."""

    amount: float
    run: bool


@dataclass(frozen=True)
class MoneyBudget:
    """The session's limit in USD, where its ledger lives, and the price lines (``agentloop_prices``)."""

    limit: float
    state_dir: Path
    session: str
    prices: tuple[str, ...] = ()

    def ledger(self) -> MoneyLedger:
        """This process's handle on the shared ledger."""
        return MoneyLedger(self)


MONEY_KEY = pytest.StashKey[MoneyBudget]()

_EMPTY = {"spent": 0.0, "held": 0.0, "dearest_run": 0.0, "runs_done": 0, "runs_out": 0, "refused": 0, "unpriced": 0}


class MoneyLedger:
    """Spent and held money of one session, in a file every process shares."""

    def __init__(self, budget: MoneyBudget) -> None:
        self.budget = budget
        self.file = SharedJson(budget.state_dir / f"budget-{budget.session}.json")

    def try_hold(self, amount: float | None) -> tuple[Decision, Hold]:
        """Hold ``amount`` (None: a live run, priced as the dearest run so far) if it cannot pass the budget."""
        with self.file.update() as state:
            for key, value in _EMPTY.items():
                state.setdefault(key, value)
            run = amount is None
            if run and state["runs_done"] == 0 and state["runs_out"] > 0:
                return Decision.WAIT, Hold(0.0, run)
            price = float(state["dearest_run"] if amount is None else amount)
            if state["spent"] + state["held"] + price > self.budget.limit:
                state["refused"] += 1
                return Decision.REFUSE, Hold(0.0, run)
            state["held"] += price
            state["runs_out"] += run
            return Decision.GO, Hold(price, run)

    def settle(self, hold: Hold, cost: float | None) -> None:
        """The run or call ended costing ``cost`` (None: unknown, so the hold counts)."""
        spent = hold.amount if cost is None else cost
        with self.file.update() as state:
            state["held"] = max(0.0, state.get("held", 0.0) - hold.amount)
            state["spent"] = state.get("spent", 0.0) + spent
            state["unpriced"] = state.get("unpriced", 0) + (cost is None)
            if hold.run:
                state["runs_out"] = max(0, state.get("runs_out", 0) - 1)
                state["runs_done"] = state.get("runs_done", 0) + 1
                state["dearest_run"] = max(state.get("dearest_run", 0.0), spent)

    def state(self) -> dict[str, float]:
        """Spent, held, and how many starts were refused (a fresh ledger reads as zeros)."""
        return {**_EMPTY, **(self.file.read() or {})}

    def refusal(self) -> str:
        """Why something was not started, and what to do."""
        state = self.state()
        return (
            f"the budget of ${self.budget.limit:g} could be passed (${state['spent']:.4f} spent, "
            f"${state['held']:.4f} held by runs and judge calls in flight); raise --agentloop-budget"
        )
