"""The shared rate budget: pace, burst, header learning, one budget across processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from pytest_agentloop.ratelimit import RateBudget, RateLimit, parse_rate, parse_reset


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("text", "limit"), [("600", RateLimit(600)), ("60, 9000", RateLimit(60, 9000))])
def test_parse_rate(text: str, limit: RateLimit) -> None:
    assert parse_rate(text) == limit


@pytest.mark.parametrize("text", ["", "fast", "0", "-5", "1,2,3", "nan", "inf"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected RPM"):
        parse_rate(text)


@pytest.mark.parametrize(("text", "seconds"), [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m", 3720.0)])
def test_parse_reset(text: str, seconds: float) -> None:
    assert parse_reset(text) == pytest.approx(seconds)


def test_calls_go_out_evenly_spaced(tmp_path: Path) -> None:
    clock = Clock()
    budget = RateBudget("http://x", RateLimit(600), tmp_path, clock)
    assert budget.try_take() == 0.0
    assert budget.try_take() == pytest.approx(0.1)
    clock.now += 0.1
    assert budget.try_take() == 0.0
    clock.now += 5.0  # idle time builds a little credit at most: a quarter second's worth, 2.5 calls at 600 rpm
    assert [budget.try_take() == 0.0 for _ in range(3)] == [True, True, False]


def test_a_call_taken_late_keeps_the_pace(tmp_path: Path) -> None:
    """Slots are not lost to a late caller: over time the calls taken match the rate."""
    clock = Clock()
    budget = RateBudget("http://x", RateLimit(600), tmp_path, clock)
    taken = 0
    for _ in range(100):
        clock.now += 0.1 + 0.01 * (taken % 3 == 0)  # every third call is 10 ms late
        taken += budget.try_take() == 0.0
        taken += budget.try_take() == 0.0  # catching up uses the credit
    assert 1.0 >= taken / (clock.now - 1000.0) / 10 >= 0.99


@pytest.mark.parametrize(("rpm", "burst"), [(60, 1), (120, 1), (300, 2), (6000, 25)])
def test_credit_stays_under_half_the_endpoints_bucket(tmp_path: Path, rpm: int, burst: int) -> None:
    clock = Clock()
    budget = RateBudget("http://x", RateLimit(rpm), tmp_path, clock)
    assert budget.try_take() == 0.0
    clock.now += 60.0  # a long idle time
    assert sum(budget.try_take() == 0.0 for _ in range(burst + 5)) == burst


def test_token_budget_paces_large_calls(tmp_path: Path) -> None:
    clock = Clock()
    budget = RateBudget("http://x", RateLimit(6000, 60_000), tmp_path, clock)
    assert budget.try_take(tokens=1000) == 0.0
    clock.now += 0.02  # the next request is due; its tokens are not
    assert budget.try_take(tokens=1000) == pytest.approx(0.98)


def test_headers_lower_the_pace_and_pause_at_the_end_of_the_window(tmp_path: Path) -> None:
    clock = Clock()
    budget = RateBudget("http://x", RateLimit(6000), tmp_path, clock)
    budget.observe(
        {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"}
    )
    assert budget.try_take() == pytest.approx(2.0)
    clock.now += 2.0
    assert budget.try_take() == 0.0
    assert budget.try_take() == pytest.approx(1.0)  # 60 rpm now: one a second


def test_endpoints_have_separate_budgets(tmp_path: Path) -> None:
    clock = Clock()
    one = RateBudget("http://a", RateLimit(60), tmp_path, clock)
    two = RateBudget("http://b", RateLimit(60), tmp_path, clock)
    assert one.try_take() == 0.0 and two.try_take() == 0.0
    assert one.try_take() > 0


def _take(state_dir: str, count: int, queue: multiprocessing.Queue[int]) -> None:
    budget = RateBudget("http://shared", RateLimit(6), Path(state_dir))
    queue.put(sum(budget.try_take() == 0.0 for _ in range(count)))


def test_processes_share_one_budget(tmp_path: Path) -> None:
    """Two processes asking at once get one burst between them, not one each."""
    queue: multiprocessing.Queue[int] = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_take, args=(str(tmp_path), 5, queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=20)
    granted = queue.get(timeout=5) + queue.get(timeout=5)
    assert granted == 1  # a burst of one call at 6 rpm; the next is 10 s away
