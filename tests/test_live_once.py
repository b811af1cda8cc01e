"""Under xdist each question is run once: a process that closes its pool lets its started runs finish."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_live_runs import QUESTIONS, Server, live_env, scripts

from pytest_agentloop.agent.harness import Harness
from pytest_agentloop.agent.pool import LivePool, Planned
from pytest_agentloop.agent.questions import QuestionSpec
from pytest_agentloop.agent.setup import AgentSetup
from pytest_agentloop.testing.fake_openai import FakeOpenAI, Reply, Request, first_user_text, tool_outputs

__all__ = ["live_env"]  # the fixture, shared with test_live_runs

WAIT = 20.0  # seconds: only a broken run ever waits this long


class Agent:
    """A user's agent whose first run waits for ``release``."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.started, self.release = threading.Event(), threading.Event()

    async def __call__(self, question: str, **_: Any) -> str:
        import asyncio

        self.calls.append(question)
        self.started.set()
        if len(self.calls) == 1:
            await asyncio.to_thread(self.release.wait, WAIT)
        return "the answer"


def test_closing_a_pool_lets_its_started_run_finish_for_the_other_process(tmp_path: Path) -> None:
    """Two pools on one folder stand for two xdist workers; the first closes while its run is in flight."""
    agent = Agent()
    setup = AgentSetup(agent=agent, agent_ref="tests:agent", harness=Harness(None, {}), timeout=WAIT)
    plan = Planned(QuestionSpec("q1", "slow question?"), "q1", "k1")
    first, second = LivePool(setup, tmp_path, 2, None), LivePool(setup, tmp_path, 2, None)
    try:
        first.start([plan], lambda key: None)
        assert agent.started.wait(WAIT)  # the first pool holds the question's lock and runs it
        second.start([plan], lambda key: None)  # the second waits for the lock
        closer = threading.Thread(target=first.close)
        closer.start()
        while closer.is_alive() and not getattr(first, "closing", False):  # the first has decided what to stop
            time.sleep(0.01)
        agent.release.set()
        closer.join(WAIT)
        record = second.futures["k1"].result(WAIT)
    finally:
        agent.release.set()
        first.close()
        second.close()
    assert agent.calls == ["slow question?"]  # run once: not cancelled half way and run again by the second
    assert record.label == "q1" and first.ran_here == 1 and second.ran_here == 0


SLOW = QUESTIONS["trace-01"]


class HeldServer(Server):
    """The slow question's first model call is answered only once a worker has finished its evals."""

    def __init__(self, example: Path) -> None:
        super().__init__(scripts(example))
        self.worker_done = threading.Event()

    def __call__(self, request: Request) -> Reply:
        if request.body.get("model") == "worker-done":
            self.worker_done.set()
            return Reply(text="noted")
        if request.body.get("model") != "judge-1" and SLOW in first_user_text(request) and not tool_outputs(request):
            self.worker_done.wait(WAIT)
        return super().__call__(request)


WORKER_CONFTEST = """
import json, os, urllib.request
import pytest

@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput"):  # this worker's evals are done: tell the fake server
        body = json.dumps({"model": "worker-done", "messages": [{"role": "user", "content": "done"}]}).encode()
        request = urllib.request.Request(
            os.environ["OPENAI_BASE_URL"] + "/chat/completions", body, {"Content-Type": "application/json"}
        )
        urllib.request.urlopen(request).read()
    return (yield)
"""


def test_under_xdist_a_slow_question_is_run_once(
    pytester: pytest.Pytester, example_copy: Path, fake_openai: FakeOpenAI, live_env: list[str]
) -> None:
    """While the slow run is in flight one worker finishes its evals and closes its pool; it is not run again."""
    server = HeldServer(example_copy)
    fake_openai.set_responder(server)
    pytester.makeconftest(WORKER_CONFTEST)
    selected = "runway-named or revenue or concentration"  # one eval on the slow question, several fast
    result = pytester.runpytest(*live_env[:2], selected, *live_env[3:], "-n", "2")
    assert server.worker_done.is_set()  # the slow run was surely in flight when a worker finished
    assert server.agent.calls[SLOW] == 4  # its four model calls, once: not cancelled and run again
    assert all(n == 4 for n in server.agent.calls.values())
    assert result.parseoutcomes()["passed"] >= 3 and "errors" not in result.parseoutcomes()
