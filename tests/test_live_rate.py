"""``--agentloop-rate`` covers live runs: the built-in runner's calls and the judge's share one budget."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_live_runs import LIVE_INI, PYTHON_EVALS, Server, scripts

from pytest_agentloop.testing.fake_openai import FakeOpenAI

from conftest import SECRET_KEY

RPM = 240  # the fake endpoint admits a burst of 4 calls, then 4 a second; the 5 runs start at once
# Each run makes two model calls (its tool calls in one reply): a paced session waits for what passes the burst.


@pytest.mark.parametrize("rate", [None, RPM], ids=["unpaced", "paced"])
def test_live_runs_and_the_judge_stay_under_the_endpoint_rate(
    pytester: pytest.Pytester, example_copy: Path, monkeypatch: pytest.MonkeyPatch, rate: int | None
) -> None:
    pytester.makeini(LIVE_INI)
    with FakeOpenAI(rpm=RPM) as server:
        server.set_responder(Server(scripts(example_copy, one_turn=True)))
        monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)  # the agent's endpoint is the judge's
        args = ["evals", "-k", PYTHON_EVALS, "--agentloop-live", "--agentloop-judge-model=judge-1"]
        paced = [f"--agentloop-rate={rate}"] if rate else []
        result = pytester.runpytest(*args, f"--agentloop-judge-base-url={server.base_url}", *paced)
        admitted, rejected = server.rate_limited
    if rate:
        result.assert_outcomes(passed=20, deselected=3)
        assert rejected == [] and len(admitted) == 17  # 5 runs of 2 model calls and 7 judge calls, no 429
    else:  # the same session unpaced: the runs' first calls arrive together and pass the limit
        assert rejected
