"""Live runs' warm-up: the SDK import frozen, an offline dry run while the runs wait, an idle pool closed cleanly."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import agents  # noqa: F401  (imported before pytester snapshots sys.modules, as in test_live_runs)
import pytest

from pytest_agentloop.agent import warmup
from pytest_agentloop.testing.fake_openai import FakeOpenAI

FREEZE_CHECK = """
import gc, json, sys
if sys.argv[1] == "off":
    gc.disable()
from pytest_agentloop.agent.warmup import import_sdk
import_sdk()
print(json.dumps({"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}))
"""


@pytest.mark.parametrize("collector", ["on", "off"])
def test_the_sdk_import_is_frozen_and_the_collector_left_as_it_was(collector: str) -> None:
    done = subprocess.run([sys.executable, "-c", FREEZE_CHECK, collector], capture_output=True, text=True, check=True)
    state = json.loads(done.stdout)
    assert state["enabled"] is (collector == "on")
    assert state["frozen"] > 50_000  # the SDK's objects: never scanned by a full collection, never freed at exit


def test_the_dry_run_captures_a_whole_run_offline(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)  # the dry run must not use the session's endpoint
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    monkeypatch.chdir(tmp_path)
    run = asyncio.run(warmup.dry_run())
    assert run.ok, run.error
    assert (run.answer, run.usage.requests) == ("warm", 2)  # a tool call, then the answer
    assert fake_openai.requests == [] and list(tmp_path.iterdir()) == []
    assert not run.run_dir.exists()  # captured into a temporary store, gone after


def _hog(seconds: float) -> None:
    """Keep the running loop busy (CPU, no await) for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


async def _busy_loop(until: float) -> None:
    while time.monotonic() < until:
        _hog(0.03)  # longer than the idle probe allows
        await asyncio.sleep(0)


def test_the_warm_up_waits_until_the_loop_is_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warmup, "_dry_run_done", False)

    async def scenario() -> tuple[float, tuple[float, float] | None]:
        busy_until = time.monotonic() + 0.3
        busy = asyncio.create_task(_busy_loop(busy_until))
        began = await warmup.warm_beside_runs(lambda: True)
        await busy
        return time.time() - (time.monotonic() - busy_until), began

    busy_end, dry_run = asyncio.run(scenario())
    assert dry_run is not None and dry_run[0] >= busy_end - 0.01
    assert asyncio.run(warmup.warm_beside_runs(lambda: True)) is None  # once a process


def test_no_warm_up_when_no_run_is_pending(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warmup, "_dry_run_done", False)
    calls: list[str] = []

    async def counted() -> None:
        calls.append("dry run")

    monkeypatch.setattr(warmup, "dry_run", counted)
    assert asyncio.run(warmup.warm_beside_runs(lambda: False)) is None
    assert calls == []


TOOL = '''
from agents import function_tool


@function_tool
def lookup(topic: str) -> str:
    """Look a topic up."""
    return topic
'''


def test_a_live_session_with_nothing_to_run_closes_its_pool_cleanly(
    pytester: pytest.Pytester, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool warms up at configure and waits for runs that never come: closing it leaves no task pending."""
    pytester.makefile(".py", speedtools=TOOL)
    pytester.makefile(".yaml", harness="version: v1\nname: a\nsystem_prompt: Answer.\ntools: [speedtools:lookup]\n")
    run = pytester.path / "suite" / "traces" / "runs" / "q1"
    run.mkdir(parents=True)
    record = {"trace_id": "ab" * 16, "label": "q1", "question": "why?", "harness_version": "v0", "model": None}
    (run / "record.json").write_text(json.dumps({**record, "created": "2026-01-01T00:00:00Z"}))
    (run / "answer.md").write_text("because")
    (pytester.path / "suite" / "speed.eval.yaml").write_text(
        "evals:\n  - {id: e1, title: E1, trace: q1, assert: [{type: contains, value: because}]}\n"
    )
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "agentloop_agent = harness\nagentloop_harness = harness.yaml\n"
    )
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    result = pytester.runpytest_subprocess("suite", "--agentloop-live", "-k", "no_such_eval", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    errors = result.stderr.str()
    assert "Task was destroyed" not in errors and "Traceback" not in errors, errors
    assert fake_openai.requests == []


def test_runs_of_one_harness_share_its_agent(tmp_path: Path) -> None:
    from pytest_agentloop.agent.builtin import agent_for
    from pytest_agentloop.agent.harness import load_harness

    (tmp_path / "plaintools.py").write_text('def note(text: str) -> str:\n    """Note it."""\n    return text\n')
    (tmp_path / "harness.yaml").write_text("name: a\nsystem_prompt: Answer.\ntools: [plaintools:note]\n")
    harness = load_harness(tmp_path / "harness.yaml")
    agent = agent_for(harness)
    assert agent_for(harness) is agent  # the plain function is wrapped as a tool once, not at every run
    assert [tool.name for tool in agent.tools] == ["note"]
    assert agent_for(load_harness(tmp_path / "harness.yaml")) is not agent  # another session's harness
