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
  from. Once a run ends at an unknown cost (its model has no price), no
  further run starts: the budget could no longer bind.

A run refused in one process may be asked for again by another (xdist workers
share every question): it is refused again, and counted once.
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
    name: str = ""
    """What holds it (``live run trace-01``): a refused run is counted once by this name."""


@dataclass(frozen=True)
class MoneyBudget:
    """The session's limit in USD, where its ledger lives, and the price lines (``agentloop_prices``)."""

    limit: float
    state_dir: Path
    session: str
    prices: tuple[str, ...] = ()
    flag: str = "--agentloop-budget"
    """The option that sets the limit, named in refusals (``agentloop record`` takes ``--budget``)."""
    holders: str = "runs and judge calls"
    """What holds money in this session, as refusals say it (``agentloop record`` makes no judge calls)."""

    def ledger(self) -> MoneyLedger:
        """This process's handle on the shared ledger."""
        return MoneyLedger(self)


MONEY_KEY = pytest.StashKey[MoneyBudget]()

_EMPTY = {"spent": 0.0, "held": 0.0, "dearest_run": 0.0, "runs_done": 0, "runs_out": 0, "refused": 0, "unpriced": 0}
_PRICES_LINE = "add a line '{model} USD_PER_1M_IN USD_PER_1M_OUT' to the ini option agentloop_prices"


class MoneyLedger:
    """Spent and held money of one session, in a file every process shares."""

    def __init__(self, budget: MoneyBudget) -> None:
        self.budget = budget
        self.file = SharedJson(budget.state_dir / f"budget-{budget.session}.json")

    def try_hold(self, amount: float | None, name: str = "") -> tuple[Decision, Hold]:
        """Hold ``amount`` (None: a live run, priced as the dearest run so far) if it cannot pass the budget.

        A run (or call) named ``name`` that was refused once is refused again, and counted once.
        """
        run = amount is None
        with self.file.update() as state:
            for key, value in _EMPTY.items():
                state.setdefault(key, value)
            refused: list[str] = state.setdefault("refused_names", [])
            if name and name in refused:
                return Decision.REFUSE, Hold(0.0, run, name)
            if run and state["runs_done"] == 0 and state["runs_out"] > 0:
                return Decision.WAIT, Hold(0.0, run, name)
            price = float(state["dearest_run"] if amount is None else amount)
            if (run and state.get("unknown_run")) or state["spent"] + state["held"] + price > self.budget.limit:
                if name:
                    refused.append(name)
                else:
                    state["refused"] += 1
                return Decision.REFUSE, Hold(0.0, run, name)
            state["held"] += price
            state["runs_out"] += run
            return Decision.GO, Hold(price, run, name)

    def settle(self, hold: Hold, cost: float | None, model: str | None = None) -> None:
        """The run or call ended costing ``cost`` (None: unknown, so the hold counts; ``model``: the run's)."""
        spent = hold.amount if cost is None else cost
        with self.file.update() as state:
            state["held"] = max(0.0, state.get("held", 0.0) - hold.amount)
            state["spent"] = state.get("spent", 0.0) + spent
            state["unpriced"] = state.get("unpriced", 0) + (cost is None)
            if hold.run:
                state["runs_out"] = max(0, state.get("runs_out", 0) - 1)
                state["runs_done"] = state.get("runs_done", 0) + 1
                state["dearest_run"] = max(state.get("dearest_run", 0.0), spent)
                if cost is None and not state.get("unknown_run"):
                    state["unknown_run"] = {"name": hold.name or "a run", "model": model}

    def state(self) -> dict[str, float]:
        """Spent, held, and how many starts were refused (a fresh ledger reads as zeros)."""
        data = self.file.read() or {}
        figures = {key: data.get(key, value) for key, value in _EMPTY.items()}
        figures["refused"] += len(data.get("refused_names") or [])
        return figures

    def refusal(self) -> str:
        """Why something was not started, and what to do."""
        data = self.file.read() or {}
        unknown = data.get("unknown_run")
        if unknown:
            model = unknown.get("model")
            why = (
                f"model {model} has no price: " + _PRICES_LINE.format(model=model)
                if model
                else ("its model has no price: add the model's line to the ini option agentloop_prices")
            )
            return f"the cost of {unknown['name']} is unknown, so the budget cannot bind ({why})"
        state = self.state()
        return (
            f"the budget of ${self.budget.limit:g} could be passed (${state['spent']:.4f} spent, "
            f"${state['held']:.4f} held by {self.budget.holders} in flight); raise {self.budget.flag}"
        )
