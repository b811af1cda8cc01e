"""``agentloop insights``: structured calls per trace, recorded and replayed, and their LLM_FEEDBACK spans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from authoring_helpers import (
    INSIGHTS,
    TRACE_01,
    TRACE_02,
    agentloop,
    asked_trace,
    lines,
    model_args,
    script,
    use_example,
)

from pytest_agentloop.authoring.feedback import read_files
from pytest_agentloop.handoff.context import Evidence, build_context
from pytest_agentloop.testing.fake_openai import FakeOpenAI, Fault, Reply, Request
from pytest_agentloop.traces.store import TraceStore


@pytest.fixture
def suite(pytester: pytest.Pytester, example_copy: Path) -> Path:
    """The example copied into the pytester folder, with the ini naming its feedback file."""
    return use_example(pytester)


def test_one_structured_call_per_trace_written_as_llm_insight_lines(
    suite: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_openai.set_responder(script())
    code, out, err = agentloop(capsys, "insights", *model_args(fake_openai, monkeypatch), "--api", "responses")
    assert code == 0, err
    assert "wrote 5 insights to" in out and "(model fake-1, record mode)" in out
    request = fake_openai.requests[0]
    assert request.path.endswith("/responses")  # as asked (auto would choose Chat Completions here)
    schema = request.body["text"]["format"]
    assert schema["type"] == "json_schema" and schema["strict"] is True
    assert set(schema["schema"]["properties"]["trace"]["enum"]) == {r.trace_id for r in TraceStore(suite / "traces")}
    written = {item["trace_id"]: item for item in lines(suite.parent.parent / INSIGHTS)}
    assert len(written) == 5
    first = written[TRACE_01]
    assert first["source"] == "llm_insight" and first["model"] == "fake-1" and first["prompt_version"] == "insights-1"
    assert first["observations"] == [f"observation on {TRACE_01[:6]}"] and first["feedback_ids"] == ["hf-01"]
    prompt = next(r for r in fake_openai.requests if asked_trace(r) == TRACE_01).text()
    assert "names the 11-month runway" in prompt and "Spans:" in prompt and "<<<ANSWER " in prompt
    assert len(lines(suite / "recordings.jsonl")) == 5
    assert read_files([suite.parent.parent / INSIGHTS])  # the written file passes the strict reader


def test_replay_without_a_key_gives_the_same_file_and_asks_nothing(
    suite: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_openai.set_responder(script())
    args = model_args(fake_openai, monkeypatch)
    assert agentloop(capsys, "insights", *args)[0] == 0
    first = (suite.parent.parent / INSIGHTS).read_text()
    asked = len(fake_openai.requests)
    monkeypatch.delenv("OPENAI_API_KEY")
    code, out, err = agentloop(capsys, "insights", *args)
    assert code == 0, err
    assert "replay mode" in out
    assert len(fake_openai.requests) == asked
    assert (suite.parent.parent / INSIGHTS).read_text() == first


def test_a_missing_recording_says_how_to_get_one(
    suite: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = agentloop(capsys, "insights", "--trace", "trace-02", "--model", "gpt-x")
    assert code != 0
    assert "no recorded answer for insight for trace-02 (model gpt-x, prompt insights-1)" in err
    assert f"{suite / 'recordings.jsonl'}; to get one, set $OPENAI_API_KEY" in err
    assert not (suite.parent.parent / INSIGHTS).exists()


def test_an_answer_about_another_trace_is_rejected_and_not_recorded(
    suite: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_openai.push(Reply(text=json.dumps({"trace": TRACE_01, "observations": ["x"]})))
    code, _, err = agentloop(capsys, "insights", "--trace", "trace-02", *model_args(fake_openai, monkeypatch))
    assert code != 0
    assert f"the answer names trace '{TRACE_01}', not the one asked about ({TRACE_02})" in err
    assert "nothing was recorded or written" in err
    assert not (suite / "recordings.jsonl").exists() and not (suite.parent.parent / INSIGHTS).exists()


@pytest.mark.parametrize(
    "reply",
    [Reply(text='{"trace": "' + TRACE_02 + '", "observ'), Reply(text="I think the agent did well.")],
    ids=["truncated", "prose"],
)
def test_a_malformed_answer_is_an_error_and_nothing_is_written(
    suite: Path,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    reply: Reply,
) -> None:
    fake_openai.push(reply)
    code, _, err = agentloop(capsys, "insights", "--trace", "trace-02", *model_args(fake_openai, monkeypatch))
    assert code != 0
    assert "insight for trace-02: endpoint" in err and "the answer is not valid JSON" in err
    assert not (suite / "recordings.jsonl").exists() and not (suite.parent.parent / INSIGHTS).exists()


def test_calls_are_concurrent_and_bounded(
    suite: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = script()

    def slow(request: Request) -> Reply:
        return Reply(text=answer(request).text, delay=0.05)

    fake_openai.set_responder(slow)
    code, _, err = agentloop(capsys, "insights", "--concurrency", "2", *model_args(fake_openai, monkeypatch))
    assert code == 0, err
    assert fake_openai.max_in_flight == 2


def test_chat_completions_api_sends_the_same_strict_schema(
    suite: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_openai.set_responder(script())
    args = [*model_args(fake_openai, monkeypatch), "--api", "chat", "--trace", "trace-01"]
    assert agentloop(capsys, "insights", *args)[0] == 0
    [request] = fake_openai.requests
    assert request.path.endswith("/chat/completions")
    assert request.body["response_format"]["json_schema"]["strict"] is True


def test_insights_become_llm_feedback_spans_that_halo_accepts(
    suite: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.traces.models.canonical_span import SpanRecord

    fake_openai.set_responder(script())
    assert agentloop(capsys, "insights", "--trace", "trace-01", *model_args(fake_openai, monkeypatch))[0] == 0
    store = TraceStore(suite / "traces")
    feedback = read_files(
        [suite.parent.parent / p for p in ("evals/diligence/feedback/human_feedback.jsonl", INSIGHTS)]
    )
    record = store.get("trace-01")
    evidence = Evidence(
        results=(),
        specs={},
        records=(record,),
        agent_spans=tuple(store.spans(record.trace_id)),
        feedback=tuple(f.to_json() for f in feedback),
    )
    spans = [s for s in build_context(evidence) if s["name"] in ("LLM_FEEDBACK", "HUMAN_FEEDBACK")]
    assert sorted(s["name"] for s in spans) == ["HUMAN_FEEDBACK", "LLM_FEEDBACK"]
    [insight] = [s for s in spans if s["name"] == "LLM_FEEDBACK"]
    SpanRecord.model_validate(insight)
    assert insight["trace_id"] == TRACE_01 and insight["attributes"]["optimizer.signal_source"] == "llm_insight"
    payload = json.loads(insight["attributes"]["input.value"])
    assert payload["observations"] == [f"observation on {TRACE_01[:6]}"] and payload["model"] == "fake-1"
    assert insight["parent_span_id"]  # hangs under the trace's root span


def test_rate_limits_are_retried_and_a_failing_endpoint_is_named(
    suite: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*model_args(fake_openai, monkeypatch), "--trace", "trace-02"]
    fake_openai.push(Reply(fault=Fault.RATE_LIMIT), Reply(text=json.dumps({"trace": TRACE_02, "observations": ["o"]})))
    assert agentloop(capsys, "insights", *args)[0] == 0
    assert len(fake_openai.requests) == 2
    fake_openai.push(Reply(fault=Fault.SERVER_ERROR, text="overloaded"))
    code, _, err = agentloop(capsys, "insights", *args, "--mode", "refresh", "--retries", "0")
    assert code != 0
    assert (
        f"insight for trace-02: endpoint {fake_openai.base_url} (model fake-1) answered HTTP 500: " in err
        and "overloaded" in err
    )
    assert len(lines(suite.parent.parent / INSIGHTS)) == 1  # the earlier insight is kept as it was


def test_the_ini_is_read_from_pyproject_toml(pytester: pytest.Pytester) -> None:
    from pytest_agentloop.authoring.locate import read_ini

    (pytester.path / "pytest.ini").unlink(missing_ok=True)
    (pytester.path / "tox.ini").unlink(missing_ok=True)
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\nagentloop_feedback = ["a/f.jsonl", "b/g.jsonl"]\nagentloop_judge_model = "m-2"\n'
    )
    (pytester.path / "sub").mkdir()
    ini = read_ini(pytester.path / "sub")
    assert ini.paths("agentloop_feedback") == [pytester.path / "a/f.jsonl", pytester.path / "b/g.jsonl"]
    assert ini.text("agentloop_judge_model") == "m-2"
