"""Capture of Agents SDK runs into a trace store, against the fake OpenAI server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from agent_scripts import analyst_steps, escape_steps
from agents import set_trace_processors
from agents.tracing.processors import BackendSpanExporter, BatchTraceProcessor
from engine.traces.models.canonical_span import SpanRecord

from pytest_agentloop.agent.builtin import build_agent
from pytest_agentloop.agent.capture import CaptureOptions, capture_run
from pytest_agentloop.agent.cost import PRICES
from pytest_agentloop.agent.harness import load_harness
from pytest_agentloop.agent.runner import AgentReply, Usage
from pytest_agentloop.testing.fake_openai import AgentScript, FakeOpenAI, Reply, Request, tool_outputs
from pytest_agentloop.traces.store import TraceStore

from conftest import CONTRACT_ARTIFACTS, EXAMPLE, SECRET_KEY

HARNESS = EXAMPLE / "diligence" / "harness.yaml"
ANSWER = "Burn is $2.9M a month; runway is 11 months (financials/p_and_l.csv)."


@pytest.fixture
def agent_env(monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI) -> FakeOpenAI:
    """The agent's client pointed at the fake server."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    return fake_openai


def capture(question: str, store: Path, label: str, agent: Any = None, **options: Any) -> Any:
    harness = load_harness(HARNESS)
    return asyncio.run(
        capture_run(
            agent or build_agent(harness),
            question,
            store=store,
            label=label,
            options=CaptureOptions(harness=harness, **options),
        )
    )


def read_lines(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "spans.jsonl").read_text().splitlines()]


def test_a_captured_run_has_record_artifacts_and_halo_span_lines(agent_env: FakeOpenAI, tmp_path: Path) -> None:
    agent_env.set_responder(AgentScript({"runway": analyst_steps(ANSWER)}))
    run = capture("What do runway and burn tell us?", tmp_path, "trace-01")
    assert run.ok, run.error
    record = json.loads((run.run_dir / "record.json").read_text())
    assert record["trace_id"] == run.trace_id and len(run.trace_id) == 32 and not run.trace_id.startswith("trace_")
    assert record["harness_version"] == "v001" and record["model"] == "gpt-5.1"
    assert record["provenance"]["source"] == "captured" and record["status"] == "ok"
    assert record["usage"] == {"input_tokens": 11 * 4 + 120, "output_tokens": 7 * 4 + 40, "requests": 5}
    assert record["cost_usd"] == pytest.approx((164 * 1.25 + 68 * 10.0) / 1e6)
    assert (run.run_dir / "answer.md").read_text() == ANSWER
    assert {p.name for p in (run.run_dir / "artifacts").iterdir()} == set(CONTRACT_ARTIFACTS)
    lines = read_lines(run.run_dir)
    for line in lines:
        SpanRecord.model_validate(line)
    kinds = [line["attributes"]["inference.observation_kind"] for line in lines]
    assert kinds.count("LLM") == 5 and kinds.count("TOOL") == 9 and kinds.count("AGENT") == 1
    llm = [line for line in lines if line["attributes"]["inference.observation_kind"] == "LLM"]
    assert {line["attributes"]["llm.model_name"] for line in llm} == {"gpt-5.1"}
    assert llm[-1]["attributes"]["output.value"] == ANSWER
    assert "runway" in llm[0]["attributes"]["llm.input_messages"]
    assert {line["resource"]["attributes"]["agentloop.harness_version"] for line in lines} == {"v001"}
    store = TraceStore(tmp_path)
    assert store.get("trace-01").answer == ANSWER
    assert len(store.spans(run.trace_id)) == len(lines)


def test_the_model_that_answered_is_recorded_and_priced_not_the_one_asked_for(
    agent_env: FakeOpenAI, tmp_path: Path
) -> None:
    """A server may answer with another model than the harness asks for (a local server's alias, a dated
    snapshot): the record names the one that answered, priced call by call at its own price."""
    steps = analyst_steps(ANSWER)
    answered = [dataclasses.replace(s, model="gpt-4.1-mini-2025-04-14") for s in steps[:4]] + [
        dataclasses.replace(steps[4], model="local-alias")
    ]
    agent_env.set_responder(AgentScript({"runway": answered}))
    run = capture("What do runway and burn tell us?", tmp_path, "t", prices={**PRICES, "local-alias": (1.0, 2.0)})
    record = json.loads((run.run_dir / "record.json").read_text())
    assert record["model"] == "gpt-4.1-mini-2025-04-14"  # the first call's (the harness asked for gpt-5.1)
    mini = (4 * 11 * 0.4 + 4 * 7 * 1.6) / 1e6  # gpt-4.1-mini's family price, per million tokens
    assert record["cost_usd"] == pytest.approx(mini + (120 * 1.0 + 40 * 2.0) / 1e6)
    unpriced = capture("What do runway and burn tell us?", tmp_path, "u")
    assert unpriced.cost_usd is None  # one call at an unknown model: the run's cost is unknown, never a guess


def test_capture_replaces_the_uploading_processor(agent_env: FakeOpenAI, tmp_path: Path) -> None:
    exporter = BackendSpanExporter(api_key="k", endpoint=agent_env.base_url + "/traces/ingest")
    uploader = BatchTraceProcessor(exporter, schedule_delay=0.01)
    set_trace_processors([uploader])
    agent_env.set_responder(AgentScript({"runway": analyst_steps(ANSWER)}))
    run = capture("runway?", tmp_path, "r1")
    uploader.force_flush()
    uploader.shutdown()
    assert run.ok
    paths = [r.path for r in agent_env.requests]
    assert paths == ["/v1/responses"] * 5  # nothing reached the ingest endpoint


def test_a_callable_without_the_sdk_gets_one_agent_span(tmp_path: Path) -> None:
    async def agent(question: str, *, metadata: dict[str, Any], workdir: Path, harness: Any) -> AgentReply:
        (workdir / "notes.md").write_text(f"notes on {question}")
        return AgentReply("plain answer", Usage(5, 3, 1), model="gpt-4.1-mini")

    run = capture("q?", tmp_path, "plain", agent=agent, metadata={"topic": "x"})
    [line] = read_lines(run.run_dir)
    SpanRecord.model_validate(line)
    assert line["attributes"]["inference.observation_kind"] == "AGENT"
    assert line["attributes"]["output.value"] == "plain answer" and line["status"]["code"] == "STATUS_CODE_OK"
    assert line["trace_id"] == run.trace_id
    record = json.loads((run.run_dir / "record.json").read_text())
    assert record["usage"]["input_tokens"] == 5 and record["metadata"] == {"topic": "x"}
    assert (run.run_dir / "artifacts" / "notes.md").read_text() == "notes on q?"


def test_a_failing_run_is_kept_as_failed_never_as_good(tmp_path: Path) -> None:
    async def agent(question: str, **_: Any) -> str:
        raise RuntimeError("tool exploded")

    run = capture("q?", tmp_path, "bad", agent=agent)
    assert not run.ok and run.error == "RuntimeError: tool exploded"
    record = json.loads((run.run_dir / "record.json").read_text())
    assert record["status"] == "failed" and record["error"] == "RuntimeError: tool exploded"
    assert not (run.run_dir / "answer.md").exists()
    [line] = read_lines(run.run_dir)
    assert line["status"] == {"code": "STATUS_CODE_ERROR", "message": "RuntimeError: tool exploded"}


def test_a_run_past_its_timeout_fails(tmp_path: Path) -> None:
    async def agent(question: str, **_: Any) -> str:
        await asyncio.sleep(30)
        return "late"

    run = capture("q?", tmp_path, "slow", agent=agent, timeout=0.05)
    assert run.error == "timed out after 0.05s"


def test_a_tool_escaping_the_dataroom_fails_the_run(agent_env: FakeOpenAI, tmp_path: Path) -> None:
    agent_env.set_responder(AgentScript({"escape": escape_steps()}))
    run = capture("escape please", tmp_path, "escape")
    assert not run.ok and "refused path '../harness.yaml'" in str(run.error)
    assert len(agent_env.requests) == 1  # the refusal ended the run; the model never saw the file
    tool = [line for line in read_lines(run.run_dir) if line["attributes"]["inference.observation_kind"] == "TOOL"]
    assert tool[0]["status"]["code"] == "STATUS_CODE_ERROR"


def test_the_turn_limit_makes_a_failed_run_with_its_usage(agent_env: FakeOpenAI, tmp_path: Path) -> None:
    agent_env.set_responder(AgentScript({"loop": analyst_steps(ANSWER)}))
    harness = load_harness(HARNESS)
    agent = build_agent(harness)
    from pytest_agentloop.agent.builtin import run_sdk_agent

    async def two_turns(question: str, **kwargs: Any) -> Any:
        return await run_sdk_agent(agent, question, max_turns=2, **kwargs)

    run = capture("loop", tmp_path, "turns", agent=two_turns)
    assert run.error is not None and run.error.startswith("hit the turn limit")
    assert run.usage.requests == 2


def test_concurrent_captures_never_interleave_span_lines(agent_env: FakeOpenAI, tmp_path: Path) -> None:
    questions = {f"q{i} runway": analyst_steps(f"answer {i}") for i in range(6)}
    script, together = AgentScript(questions), threading.Barrier(len(questions), timeout=20)

    def respond(request: Request) -> Reply:
        if tool_outputs(request) == 0:
            together.wait()  # every run's first call is in the server at once: the captures overlap
        return script(request)

    agent_env.set_responder(respond)
    harness = load_harness(HARNESS)

    async def all_runs() -> list[Any]:
        return await asyncio.gather(
            *(
                capture_run(
                    build_agent(harness), q, store=tmp_path, label=f"r{i}", options=CaptureOptions(harness=harness)
                )
                for i, q in enumerate(questions)
            )
        )

    runs = asyncio.run(all_runs())
    assert not together.broken
    for i, run in enumerate(runs):
        lines = read_lines(run.run_dir)
        assert {line["trace_id"] for line in lines} == {run.trace_id} and len(
            lines
        ) == 21  # 5 LLM, 9 TOOL, 1 AGENT, 5 turns, 1 task
        assert (run.run_dir / "answer.md").read_text() == f"answer {i}"


def test_secrets_and_addresses_never_reach_the_store(tmp_path: Path) -> None:
    async def agent(question: str, *, workdir: Path, **_: Any) -> str:
        (workdir / "memo.md").write_text(f"contact ana@example.com, key {SECRET_KEY.replace('test-key', 'sk')}")
        return "mail ana@example.com"

    run = capture("who is ana@example.com?", tmp_path, "secret", agent=agent)
    written = "".join(p.read_text() for p in run.run_dir.rglob("*") if p.is_file())
    assert "ana@example.com" not in written and "sk-agentloop" not in written
    assert "[REDACTED:email]" in (run.run_dir / "answer.md").read_text()
    assert "[REDACTED:api-key]" in (run.run_dir / "artifacts" / "memo.md").read_text()


def test_a_failed_runs_error_is_redacted_in_its_span_too(tmp_path: Path) -> None:
    key = SECRET_KEY.replace("test-key", "sk")

    async def agent(question: str, **_: Any) -> str:
        raise RuntimeError(f"upstream rejected key {key} for dave@example.com")

    run = capture("q", tmp_path, "leak", agent=agent)
    assert not run.ok and run.error is not None and "[REDACTED:api-key]" in run.error
    written = "".join(p.read_text() for p in run.run_dir.rglob("*") if p.is_file())
    assert key not in written and "dave@example.com" not in written
    [span] = read_lines(run.run_dir)
    assert "[REDACTED:email]" in span["status"]["message"]


def test_a_label_is_not_recorded_twice_without_replace(tmp_path: Path) -> None:
    async def agent(question: str, **_: Any) -> str:
        return "a"

    capture("q", tmp_path, "once", agent=agent)
    with pytest.raises(Exception, match="already exists"):
        capture("q", tmp_path, "once", agent=agent)
    assert capture("q", tmp_path, "once", agent=agent, replace=True).ok


def test_capture_survives_a_cleared_processor_list_and_ignores_other_traces(
    agent_env: FakeOpenAI, tmp_path: Path
) -> None:
    from agents import Agent, Runner, trace

    set_trace_processors([])  # what HALO's engine does when it runs in the same process
    agent_env.set_responder(AgentScript({"runway": analyst_steps(ANSWER)}, default=[Reply(text="other answer")]))

    async def both() -> Any:
        harness = load_harness(HARNESS)
        captured = capture_run(
            build_agent(harness), "runway?", store=tmp_path, label="r1", options=CaptureOptions(harness=harness)
        )

        async def users_own_agent() -> None:
            with trace("user's own"):
                await Runner.run(Agent(name="other", model="gpt-4.1-mini"), "something else")

        run, _ = await asyncio.gather(captured, users_own_agent())
        return run

    run = asyncio.run(both())
    lines = read_lines(run.run_dir)
    assert len(lines) == 21 and {line["trace_id"] for line in lines} == {run.trace_id}
    assert len(agent_env.requests) == 6  # five for the captured run, one for the user's own agent


def test_the_plugin_imports_neither_the_sdk_nor_halo() -> None:
    import subprocess
    import sys

    code = "import sys, pytest_agentloop.plugin, pytest_agentloop.cli; print(sorted({'agents', 'engine'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_missing_extra_is_named(tmp_path: Path) -> None:
    from pytest_agentloop.agent.errors import MissingExtra, require

    with pytest.raises(MissingExtra, match=r"install the extra: pip install 'pytest-agentloop\[halo\]'"):
        require("engine.no_such_module")


def test_harness_tools_load_from_the_harness_folder_and_a_missing_one_is_named(tmp_path: Path) -> None:
    from pytest_agentloop.agent.errors import AgentConfigError

    (tmp_path / "kbtools_for_test.py").write_text("def lookup(topic: str) -> str:\n    'Look up.'\n    return topic\n")
    (tmp_path / "harness.yaml").write_text("version: v9\ntools: [kbtools_for_test:lookup]\n")
    [tool] = build_agent(load_harness(tmp_path / "harness.yaml")).tools
    assert tool.name == "lookup"  # a plain function, wrapped as a function tool
    (tmp_path / "harness.yaml").write_text("version: v9\ntools: [kbtools_for_test:nope]\n")
    with pytest.raises(AgentConfigError, match=r"harness.yaml.*tools: 'kbtools_for_test:nope' cannot be loaded"):
        build_agent(load_harness(tmp_path / "harness.yaml"))
