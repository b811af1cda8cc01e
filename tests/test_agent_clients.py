"""A user's own agent callable is paced like the built-in runner when it uses the plugin's client.

`pytest_agentloop.agent.openai_client()` (plain `openai` calls) and `model_provider()` (Agents SDK runs)
hand the callable the running loop's client, whose requests wait for the endpoint's rate budget when a
rate is set. Driven through `agentloop record` in this process against the rate-limited fake server.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from pytest_agentloop.cli import main
from pytest_agentloop.testing.fake_openai import AgentScript, FakeOpenAI, Reply, ToolCall, first_user_text

from conftest import SECRET_KEY

RPM = 240  # the fake endpoint admits a burst of 4 calls, then 4 a second; 3 runs of 2 calls start at once
RUNS = 3

PLAIN_AGENT = '''
from pytest_agentloop.agent import openai_client


async def run(question, *, metadata, workdir, harness):
    """Two chat calls: a draft, then the final answer."""
    client = openai_client()
    answer = ""
    for prompt in (question, f"final: {question}"):
        messages = [{"role": "user", "content": prompt}]
        reply = await client.chat.completions.create(model="gpt-4.1-mini", messages=messages)
        answer = reply.choices[0].message.content
    return answer
'''

SDK_AGENT = '''
from agents import Agent, RunConfig, Runner, function_tool

from pytest_agentloop.agent import model_provider


@function_tool
def lookup(topic: str) -> str:
    """Look a topic up."""
    return f"notes on {topic}"


async def run(question, *, metadata, workdir, harness):
    """An Agents SDK agent run on the plugin's provider: a tool call, then the answer."""
    agent = Agent(name="support", instructions="Answer.", model="gpt-4.1-mini", tools=[lookup])
    return await Runner.run(agent, question, run_config=RunConfig(model_provider=model_provider()))
'''

_names = itertools.count()


def script(sdk: bool, runs: int = RUNS) -> AgentScript:
    """Each question's two model calls: the SDK agent's tool call and answer, or the plain agent's draft and answer."""
    if sdk:
        lookup = Reply(tool_calls=(ToolCall("lookup", {"topic": "x"}),))
        return AgentScript({f"question {n}?": [lookup, Reply(text=f"answer {n}")] for n in range(runs)})
    finals = {f"final: question {n}?": [Reply(text=f"answer {n}")] for n in range(runs)}  # matched first
    return AgentScript(finals | {f"question {n}?": [Reply(text="draft")] for n in range(runs)})


@pytest.mark.parametrize("sdk", [False, True], ids=["openai-client", "agents-sdk"])
def test_a_users_agent_on_the_plugins_client_is_paced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sdk: bool
) -> None:
    """Paced, no call is refused (unpaced, the 6 calls arriving within a second pass the burst of 4: checked)."""
    module = f"user_agent_{next(_names)}"
    (tmp_path / f"{module}.py").write_text(SDK_AGENT if sdk else PLAIN_AGENT)
    (tmp_path / "questions.yaml").write_text(
        "".join(f"- {{label: q{n}, question: 'question {n}?'}}\n" for n in range(RUNS))
    )
    monkeypatch.chdir(tmp_path)  # the rate budget lives under ./.agentloop/rate; the module is importable
    monkeypatch.syspath_prepend(tmp_path)
    with FakeOpenAI(rpm=RPM) as server:
        server.set_responder(script(sdk))
        monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        code = main(["record", "questions.yaml", "-o", "store", "--agent", f"{module}:run", "--rate", str(RPM)])
        admitted, rejected = server.rate_limited
    assert code == 0
    assert rejected == [] and len(admitted) == 2 * RUNS
    answers = sorted((tmp_path / "store" / "runs" / f"q{n}" / "answer.md").read_text() for n in range(RUNS))
    assert answers == sorted(f"answer {n}" for n in range(RUNS))
    record = json.loads((tmp_path / "store" / "runs" / "q0" / "record.json").read_text())
    assert record["usage"] == {"input_tokens": 22, "output_tokens": 14, "requests": 2}  # the server's 11/7 a call
    assert record["cost_usd"] == pytest.approx((22 * 0.4 + 14 * 1.6) / 1e6)  # gpt-4.1-mini's price


OWN_CLIENT_AGENT = """
import openai


async def run(question, *, metadata, workdir, harness):
    reply = await openai.AsyncOpenAI().chat.completions.create(
        model="gpt-4.1-mini", messages=[{"role": "user", "content": question}]
    )
    return reply.choices[0].message.content
"""


def test_an_agent_on_its_own_client_has_unknown_usage_not_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI
) -> None:
    """The plugin never saw its calls and it returned only the answer: usage and cost are null."""
    module = f"user_agent_{next(_names)}"
    (tmp_path / f"{module}.py").write_text(OWN_CLIENT_AGENT)
    (tmp_path / "questions.yaml").write_text("- {label: q0, question: 'question 0?'}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(tmp_path)
    fake_openai.set_responder(script(sdk=False))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    assert main(["record", "questions.yaml", "-o", "store", "--agent", f"{module}:run"]) == 0
    record = json.loads((tmp_path / "store" / "runs" / "q0" / "record.json").read_text())
    assert record["status"] == "ok" and record["usage"] is None and record["cost_usd"] is None


def test_record_with_a_budget_starts_no_run_that_could_pass_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run costs 2 calls x (11 + 7) tokens at $1000 per 1M = $0.036: the first runs alone and prices the rest,
    a second fits in $0.09, a third could pass it, so 4 of 6 are not started and nothing of theirs is written."""
    module = f"user_agent_{next(_names)}"
    (tmp_path / f"{module}.py").write_text(PLAIN_AGENT)
    (tmp_path / "questions.yaml").write_text(
        "".join(f"- {{label: q{n}, question: 'question {n}?'}}\n" for n in range(6))
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\nagentloop_prices =\n    gpt-4.1-mini 1000 1000\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(tmp_path)
    fake_openai.set_responder(script(sdk=False, runs=6))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    command = ["record", "questions.yaml", "-o", "store", "--agent", f"{module}:run"]
    assert main([*command, "--budget", "0.09"]) == 1
    out = capsys.readouterr().out
    assert len(list((tmp_path / "store" / "runs").iterdir())) == 2  # which two: the order runs start in
    assert out.count("not started: the budget of $0.09 could be passed") == 4
    assert "budget: $0.0720 of $0.09 spent; 4 runs not started" in out
    asked = {first_user_text(r) for r in fake_openai.requests}  # a retried request asks again: count prompts
    assert len(asked) == 4, out  # two runs of two calls
    assert "FAILED" not in out and "unknown cost" not in out
    assert "held by runs in flight); raise --budget" in out and "--agentloop-budget" not in out  # record's own flag
    assert not list((tmp_path / ".agentloop" / "rate").glob("budget-*.json"))  # the ledger is removed
    with pytest.raises(SystemExit):
        main([*command, "--budget", "nothing"])
    assert "expected an amount in USD" in capsys.readouterr().err


def test_record_with_a_budget_refuses_an_unpriced_harness_model_before_any_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "harness.yaml").write_text("version: v1\nmodel_settings: {model: in-house-llm}\n")
    (tmp_path / "questions.yaml").write_text("- {label: q0, question: 'question 0?'}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    command = ["record", "questions.yaml", "-o", "store", "--agent", "harness", "--harness", "harness.yaml"]
    assert main([*command, "--budget", "1"]) == 2
    err = capsys.readouterr().err
    assert "--budget cannot price the harness's model in-house-llm: add a line 'in-house-llm USD_PER_1M_IN" in err
    assert not (tmp_path / "store").exists() and not fake_openai.requests
