"""``--agentloop-live --agentloop-handoff``: the fresh runs' span lines are in the optimization context."""

from __future__ import annotations

import json
from pathlib import Path

# Imported before pytester snapshots sys.modules (as in test_live_runs.py): the live runs import on their own thread.
import agents  # noqa: F401
import engine.telemetry.local_processor
import engine.traces.models.canonical_span  # noqa: F401
import pydantic.root_model  # noqa: F401
import pytest
from test_live_runs import recorded_steps

import pytest_agentloop.agent.builtin
import pytest_agentloop.agent.capture  # noqa: F401
from pytest_agentloop.testing.fake_openai import AgentScript, FakeOpenAI

from conftest import INI, SECRET_KEY

# The agent's key is OPENAI_API_KEY; HALO's (the judge's) is a variable left unset, so the handoff is evidence only.
LIVE_INI = INI + (
    "agentloop_agent = harness\nagentloop_harness = evals/diligence/harness.yaml\n"
    "agentloop_judge_key_env = NO_HALO_KEY\n"
)


def test_fresh_runs_span_lines_are_in_the_handoff_context(
    pytester: pytest.Pytester, example_copy: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(LIVE_INI)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.delenv("NO_HALO_KEY", raising=False)
    recorded = example_copy / "diligence" / "traces" / "runs" / "trace-01"
    fake_openai.set_responder(AgentScript({"runway and burn": recorded_steps(recorded)}))
    result = pytester.runpytest(
        "evals/diligence/financing_risk.eval.yaml",
        "--agentloop-live",
        "--agentloop-judge=off",
        "--agentloop-handoff=out/handoff.md",
        "-p",
        "no:cacheprovider",
    )
    result.stdout.fnmatch_lines(["handoff (evidence only): *out/handoff.md"])
    [fresh] = (pytester.path / ".agentloop" / "runs").glob("*/traces/runs/trace-01")
    fresh_id = json.loads((fresh / "record.json").read_text())["trace_id"]
    old_id = json.loads((recorded / "record.json").read_text())["trace_id"]
    fresh_lines = [json.loads(line) for line in (fresh / "spans.jsonl").read_text().splitlines()]
    assert fresh_id != old_id and len(fresh_lines) >= 4  # the agent span and its model and tool calls

    context = (pytester.path / "out" / "handoff.context.jsonl").read_text().splitlines()
    agent = [json.loads(line) for line in context if not json.loads(line)["name"].isupper()]
    assert {s["span_id"] for s in agent} == {s["span_id"] for s in fresh_lines}
    assert {s["trace_id"] for s in agent} == {fresh_id}  # the recorded run is not what was checked
    assert sorted(json.dumps(s, ensure_ascii=False) for s in fresh_lines) == sorted(
        line for line in context if json.loads(line)["trace_id"] == fresh_id and not json.loads(line)["name"].isupper()
    )
    [root] = [s for s in fresh_lines if not s["parent_span_id"]]
    results = [json.loads(line) for line in context if json.loads(line)["name"] == "EVAL_RESULT"]
    assert results and all((r["trace_id"], r["parent_span_id"]) == (fresh_id, root["span_id"]) for r in results)
