"""``--agentloop-budget`` over judge calls: one ledger per session, shared by xdist workers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pytest_agentloop.agent.budget import hold_run
from pytest_agentloop.agent.cost import cost_of, parse_prices
from pytest_agentloop.agent.errors import BudgetExhausted
from pytest_agentloop.spend import Decision, MoneyBudget, MoneyLedger
from pytest_agentloop.testing.fake_openai import FakeOpenAI

from conftest import INI, verdict_reply

# Input is free, output $1000 per 1M tokens: a call with a 10-token cap holds $0.01 and, answering in 7 tokens
# (the fake server's usage), costs $0.007.
PRICES = "agentloop_prices = judge-1 0 1000\n"
BUDGET = 0.035


def spent_on_verdicts(root: Path) -> float:
    """What the verdicts written in the session cost, from their token counts (independent of the ledger)."""
    table = parse_prices(["judge-1 0 1000"])
    lines = [json.loads(line) for p in root.rglob("verdicts.jsonl") for line in p.read_text().splitlines()]
    fresh = [v for v in lines if v.get("judge_model") == "judge-1" and v.get("output_tokens") is not None]
    return sum(cost_of("judge-1", v["input_tokens"], v["output_tokens"], table) or 0 for v in fresh)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_the_budget_stops_starting_judge_calls(
    pytester: pytest.Pytester, example_copy: Path, judge_env: list[str], fake_openai: FakeOpenAI, workers: list[str]
) -> None:
    pytester.makeini(INI + PRICES)
    fake_openai.set_responder(lambda request: verdict_reply())
    args = ["evals", "-k", "not test_memo", "--agentloop-judge=refresh", "--agentloop-judge-max-tokens=10"]
    result = pytester.runpytest(*args, *judge_env, f"--agentloop-budget={BUDGET}", "-p", "no:cacheprovider", *workers)
    calls = len(fake_openai.requests)
    # a budget per worker would let each of two workers make 3 or 4 calls: 6 or more, $0.042 or more
    assert 3 <= calls <= 4 and spent_on_verdicts(pytester.path) == pytest.approx(calls * 0.007)
    assert spent_on_verdicts(pytester.path) <= BUDGET
    outcomes = result.parseoutcomes()
    assert outcomes["errors"] == 7 - calls  # the example's 7 judged evals: each graded, or an error saying why
    result.stdout.fnmatch_lines(
        [
            "*judge error: judge call not started: the budget of $0.035 could be passed ($0.0* spent, *",
            f"agentloop budget: ${calls * 0.007:.4f} of $0.035 spent; * live runs or judge calls not started",
        ]
    )
    assert not list((pytester.path / ".agentloop" / "rate").glob("budget-*"))  # the session's ledger is removed


def test_a_judge_model_without_a_price_is_a_usage_error(
    pytester: pytest.Pytester, example_copy: Path, judge_env: list[str], fake_openai: FakeOpenAI
) -> None:
    result = pytester.runpytest("evals", "--agentloop-judge=record", "--agentloop-budget=1", *judge_env)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--agentloop-budget cannot price judge model judge-1: add a line*agentloop_prices*"])
    assert fake_openai.requests == []


def test_the_first_run_prices_the_rest(tmp_path: Path) -> None:
    ledger = MoneyBudget(1.0, tmp_path, "s1").ledger()
    decision, first = ledger.try_hold(None)
    assert decision is Decision.GO and first.amount == 0.0
    assert ledger.try_hold(None)[0] is Decision.WAIT  # no run has ended: nothing to price the second from
    ledger.settle(first, 0.4)
    decision, second = ledger.try_hold(None)
    assert decision is Decision.GO and second.amount == 0.4
    assert ledger.try_hold(0.3)[0] is Decision.REFUSE  # 0.4 spent + 0.4 held + 0.3 > 1.0
    ledger.settle(second, None)  # unknown cost: the hold counts
    assert ledger.state()["spent"] == pytest.approx(0.8) and ledger.state()["held"] == 0.0
    assert MoneyBudget(1.0, tmp_path, "s1").ledger().state()["refused"] == 1  # another process reads the same file


def _ledger(tmp_path: Path, limit: float = 1.0, **wording: str) -> MoneyLedger:
    return MoneyBudget(limit, tmp_path, "s", **wording).ledger()


def test_a_run_refused_in_two_processes_is_counted_once(tmp_path: Path) -> None:
    """Under xdist a refused question is asked for again by the other worker: refused again, counted once."""
    ledger = _ledger(tmp_path, limit=0.0001)
    _, first = ledger.try_hold(None, "live run probe")
    ledger.settle(first, 0.0001)
    assert [ledger.try_hold(None, "live run q2")[0] for _ in range(2)] == [Decision.REFUSE] * 2
    assert ledger.try_hold(0.001)[0] is Decision.REFUSE  # an unnamed judge call
    assert ledger.state()["refused"] == 2


def test_after_a_run_of_unknown_cost_no_run_starts(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    hold = asyncio.run(hold_run(ledger, "live run q1"))
    ledger.settle(hold, None, "my-model")  # the model has no price: what the run cost is unknown
    with pytest.raises(BudgetExhausted) as refused:
        asyncio.run(hold_run(ledger, "live run q2"))
    assert str(refused.value) == (
        "live run q2 not started: the cost of live run q1 is unknown, so the budget cannot bind (model my-model "
        "has no price: add a line 'my-model USD_PER_1M_IN USD_PER_1M_OUT' to the ini option agentloop_prices)"
    )
    assert ledger.try_hold(0.01)[0] is Decision.GO  # judge calls are priced: they still may start


def test_a_refusal_names_the_callers_option(tmp_path: Path) -> None:
    """``agentloop record`` takes --budget and makes no judge calls; pytest's sessions are the default."""
    record = _ledger(tmp_path, limit=0.0001, flag="--budget", holders="runs")
    record.settle(record.try_hold(None, "run q0")[1], 0.0001)
    with pytest.raises(BudgetExhausted, match=r"\$0.0000 held by runs in flight\); raise --budget$"):
        asyncio.run(hold_run(record, "run q1"))
    pytest_session = MoneyBudget(0.0, tmp_path, "t").ledger()
    assert pytest_session.refusal().endswith("held by runs and judge calls in flight); raise --agentloop-budget")


def test_an_unpriced_harness_model_is_a_usage_error_with_a_budget(
    pytester: pytest.Pytester, example_copy: Path, judge_env: list[str], fake_openai: FakeOpenAI
) -> None:
    harness = example_copy / "diligence" / "harness.yaml"
    harness.write_text(harness.read_text().replace("model: gpt-5.1", "model: house-model-7"))
    pytester.makeini(INI + PRICES + "agentloop_agent = harness\nagentloop_harness = evals/diligence/harness.yaml\n")
    result = pytester.runpytest("evals", "--agentloop-live", "--agentloop-budget=1", *judge_env)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--agentloop-budget cannot price the harness's model house-model-7: add a line 'house-model-7 *"]
    )
    assert fake_openai.requests == []
