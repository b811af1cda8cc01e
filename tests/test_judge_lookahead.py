"""Under xdist a worker grades the items queued for it ahead, up to the concurrency, not just the next one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_agentloop.testing.fake_openai import FakeOpenAI, Reply

VERDICT = Reply(text=json.dumps({"pass": True, "score": 0.9, "reason": "ok"}), delay=0.2)


def test_workers_keep_more_than_two_calls_in_flight(
    pytester: pytest.Pytester, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = "".join(
        f"  - {{id: e{n}, title: E{n}, trace: trace-01, scoring: llm_judge, rubric: 'PASS if fact {n}.'}}\n"
        for n in range(80)
    )
    pytester.makefile(".eval.yaml", suite="evals:\n" + body)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with FakeOpenAI(lambda request: VERDICT) as server:
        result = pytester.runpytest_subprocess(
            "-n",
            "2",
            f"--agentloop-judge-base-url={server.base_url}",
            "--agentloop-judge-model=judge-1",
            "--agentloop-judge=record",
            "--agentloop-concurrency=8",
        )
        result.assert_outcomes(passed=80)
        assert len(server.requests) == 80  # nothing graded twice
        assert server.max_in_flight > 4  # more than (the running item + the next) x 2 workers
        assert server.max_in_flight <= 16  # and no more than the concurrency per worker
