"""--agentloop-handoff: the context HALO reads, a real HALO run against the fake server, the fallbacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_agentloop.gate.history import History
from pytest_agentloop.handoff.report import check_report
from pytest_agentloop.testing.fake_openai import FakeOpenAI, Fault, Reply, Request, ToolCall

from conftest import SECRET_KEY

HOLDOUT_IDS = (
    "financing-risk-register",
    "bookings-view-is-planning-only",
    "top-five-total",
    "security-blocks-northstar",
    "partial-retention-caveated",
    "kpi-months-missing",
    "dataharbor-pipeline-exposure",
)

REPORT = """## Executive summary
The gate fails on SOC 2 precision in trace 5d7e9f1a3b2c4e6f8a0b2c4d6e8f0a12.

## Top 3 changes to implement first
1. Require the audit type for every SOC 2 claim.
2. Rank structured exports above sales copy.
3. Add a check for vendor names in cited files.

## Ranked recommendation table
| rank | recommendation | impact | confidence | effort | evidence | validation |
| --- | --- | --- | --- | --- | --- | --- |
| 1 | Require audit type | high | medium | low | trace 5d7e9f1a3b2c4e6f8a0b2c4d6e8f0a12 | rerun aurora-faq-unreliable |

## Supporting diagnosis and evidence
- requirement missing from the harness: no rule on audit types (HUMAN_FEEDBACK on 5d7e9f1a3b2c4e6f8a0b2c4d6e8f0a12).

## Detailed recommendations
### Behavior contract
#### Prompt
Add the audit-type rule.
#### Skills
None.
### Runtime implementation
#### Tools
No change.
#### Control flow
No change.
#### Routing
No change.
### Output contract
#### Artifact schema
No change.
### Observability and evals
#### Observability
Log cited files.
#### Evals
Keep aurora-faq-unreliable must-pass.

## Insights by feedback source
- human_feedback: reviewers want Type I / Type II precision.

## Machine-readable summary
```json
{"top_priorities": [{"rank": 1, "change": "Require audit type", "traces": ["5d7e9f1a3b2c4e6f8a0b2c4d6e8f0a12"]}]}
```
"""


def halo_script(report: str, *, tool_first: bool = True):
    """A scripted HALO root agent: one trace tool call, then final_answer with ``report``."""
    calls = {"responses": 0}

    def respond(request: Request) -> Reply:
        if request.path.endswith("/chat/completions"):
            return Reply(text="summary of the conversation so far")
        calls["responses"] += 1
        if tool_first and calls["responses"] == 1:
            return Reply(tool_calls=(ToolCall("get_dataset_overview", {}),))
        return Reply(tool_calls=(ToolCall("final_answer", {"answer": report}),))

    return respond


@pytest.fixture
def broken_example(example_copy: Path) -> Path:
    """The example with trace-04's answer no longer naming "Aurora" (one deterministic eval fails)."""
    answer = example_copy / "diligence" / "traces" / "runs" / "trace-04" / "answer.md"
    answer.write_text(answer.read_text().replace('"Aurora"', "another vendor"))
    (example_copy / "diligence" / "verdicts.jsonl").unlink()  # rubric parts: judge off below
    return example_copy


def _ini(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "agentloop_harness = evals/diligence/harness.yaml\n"
        "agentloop_feedback = evals/diligence/feedback/human_feedback.jsonl\n"
    )


@pytest.fixture(scope="session")
def halo_imported() -> None:
    """HALO, the Agents SDK and the modules they load on first use, imported once per test process.

    pytester forgets the modules an in-process run imports; loaded here, before its snapshot, HALO stays
    one copy across runs, and each run skips the seconds its import costs.
    """
    import agents  # noqa: F401
    import anyio._backends._asyncio  # noqa: F401 - loaded by HALO's first request
    import deno._find_deno  # noqa: F401 - loaded by HALO's sandbox probe
    import engine.main  # noqa: F401


def run_with_halo(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run pytest in-process with HALO (see ``halo_imported``, which the calling test requests)."""
    return pytester.runpytest(*args)


def _context(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_offline_evidence_handoff_and_valid_context(pytester, example_copy, monkeypatch) -> None:
    from engine.traces.models.canonical_span import SpanRecord

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _ini(pytester)
    result = pytester.runpytest("evals", "--agentloop-handoff=out/handoff.md")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["handoff (evidence only): *out/handoff.md", "optimization context: *handoff.context.jsonl"]
    )
    handoff = (pytester.path / "out" / "handoff.md").read_text()
    assert "No HALO diagnosis was produced:** no model endpoint is configured ($OPENAI_API_KEY is not set)" in handoff
    assert "**Harness version:** `v001`" in handoff and "**Reproduce:** `pytest evals --agentloop-handoff" in handoff
    lines = _context(pytester.path / "out" / "handoff.context.jsonl")
    for line in lines:
        span = SpanRecord.model_validate(line)
        assert span.kind in {"SPAN_KIND_CLIENT", "SPAN_KIND_INTERNAL"}
        assert span.status.code in {"STATUS_CODE_OK", "STATUS_CODE_ERROR"}
        assert span.start_time.endswith("Z") and len(span.start_time) == 30
        assert span.attributes["inference.export.schema_version"] == 1 and span.attributes["inference.project_id"]
    names = {line["name"] for line in lines}
    assert {"HARNESS_CONFIG", "HUMAN_FEEDBACK", "EVAL", "EVAL_RESULT", "GATE_SUMMARY"} <= names
    assert all("optimizer.signal_source" in line["attributes"] for line in lines if line["name"].isupper())
    text = json.dumps(lines) + handoff
    assert not any(eval_id in text for eval_id in HOLDOUT_IDS)
    [summary] = [line for line in lines if line["name"] == "GATE_SUMMARY"]
    assert json.loads(summary["attributes"]["input.value"])["holdout"]["total"] == 8


def test_failed_eval_result_carries_error_status(pytester, broken_example, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _ini(pytester)
    result = pytester.runpytest("evals", "--agentloop-handoff=out/handoff.md", "--agentloop-judge=off")
    assert result.ret == 1
    lines = _context(pytester.path / "out" / "handoff.context.jsonl")
    [failed] = [
        line for line in lines if line["name"] == "EVAL_RESULT" and line["status"]["code"] == "STATUS_CODE_ERROR"
    ]
    assert failed["attributes"]["eval.id"] == "aurora-faq-unreliable"
    assert failed["trace_id"] == "5d7e9f1a3b2c4e6f8a0b2c4d6e8f0a12"
    assert failed["status"]["message"].startswith("failed: eval aurora-faq-unreliable")
    handoff = (pytester.path / "out" / "handoff.md").read_text()
    assert "`aurora-faq-unreliable` (failed)" in handoff and "trace-04" in handoff


def test_real_halo_end_to_end(pytester, halo_imported, broken_example, judge_env, fake_openai: FakeOpenAI) -> None:
    _ini(pytester)
    fake_openai.set_responder(halo_script(REPORT))
    result = run_with_halo(pytester, "evals", "--agentloop-handoff=out/handoff.md", "--agentloop-judge=off", *judge_env)
    assert result.ret == 1  # the failing eval decides the exit code, not the handoff
    result.stdout.fnmatch_lines(
        [
            "agentloop: running HALO (judge-1)*",
            "agentloop: HALO step 1*",
            "handoff (HALO): *out/handoff.md",
            "note: HALO's optional code sandbox (Deno/Pyodide) is unavailable here*",
        ]
    )
    handoff = (pytester.path / "out" / "handoff.md").read_text()
    assert check_report(handoff) == []
    assert "**Diagnosis:** HALO (judge-1)" in handoff and "aurora-faq-unreliable" in handoff
    assert not any(eval_id in handoff for eval_id in HOLDOUT_IDS)
    paths = [r.path for r in fake_openai.requests]
    assert paths.count("/v1/responses") == 2
    first = fake_openai.requests[0].text()
    assert "Ranked recommendation table" in first and "holdout evals are deliberately left out" in first
    assert all("temperature" not in r.body for r in fake_openai.requests)
    written = [p for p in pytester.path.rglob("*") if p.is_file() and (".agentloop" in p.parts or "out" in p.parts)]
    assert written and all(SECRET_KEY not in p.read_text(errors="replace") for p in written)


def test_report_missing_a_section_is_kept_as_draft(
    pytester, halo_imported, example_copy, judge_env, fake_openai
) -> None:
    _ini(pytester)
    fake_openai.set_responder(halo_script(REPORT.replace("## Insights by feedback source", "## Other notes")))
    result = run_with_halo(pytester, "evals", "--agentloop-handoff=out/handoff.md", *judge_env)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "handoff (evidence only): *",
            "HALO's report was kept as a draft*missing section 'Insights by feedback source'*",
        ]
    )
    assert (pytester.path / "out" / "handoff.draft.md").is_file()
    assert "failed the section checks" in (pytester.path / "out" / "handoff.md").read_text()


@pytest.mark.parametrize(
    ("replies", "options", "reason"),
    [
        (
            [Reply(fault=Fault.BAD_REQUEST, text="model not found")],
            [],
            "HALO stopped at the first refusal: the endpoint answered 400 to the request (model not found)*",
        ),
        (
            [Reply(fault=Fault.BAD_REQUEST, text="the request exceeds the available context size, try increasing it")],
            [],
            "HALO stopped at the first refusal: the endpoint answered 400 to a request larger than the model's context window*",
        ),
        ([Reply(tool_calls=(ToolCall("final_answer", {"answer": ""}),))], [], "HALO ended without a final report"),
        ([Reply(text="{}", delay=5)], ["--agentloop-handoff-timeout=1"], "HALO did not finish within 1s*"),
    ],
    ids=["refused", "context-size", "nothing", "timeout"],
)
def test_halo_failures_fall_back_without_changing_the_exit_code(
    pytester, halo_imported, example_copy, judge_env, fake_openai, replies, options, reason
) -> None:
    _ini(pytester)
    fake_openai.set_responder(lambda request: replies[0])
    result = run_with_halo(pytester, "evals", "--agentloop-handoff=out/handoff.md", *judge_env, *options)
    assert result.ret == 0
    handoff = (pytester.path / "out" / "handoff.md").read_text()
    first = handoff.splitlines()[2]
    assert first.startswith("> **No HALO diagnosis was produced:**")
    from fnmatch import fnmatch

    assert fnmatch(first.split(":** ", 1)[1], reason), first
    if replies[0].fault is Fault.BAD_REQUEST:  # failed fast: one request, no retries
        assert [r.path for r in fake_openai.requests] == ["/v1/responses"]


def test_xdist_context_matches_serial_and_records_one_run_with_all_items(pytester, broken_example, monkeypatch) -> None:
    """The -n 2 session writes the serial session's context, and one history run holding every item."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _ini(pytester)
    pytester.runpytest("evals", "--agentloop-handoff=serial/handoff.md", "--agentloop-judge=off")
    pytester.runpytest("evals", "--agentloop-handoff=parallel/handoff.md", "--agentloop-judge=off", "-n", "2")
    serial = (pytester.path / "serial" / "handoff.context.jsonl").read_text()
    parallel = (pytester.path / "parallel" / "handoff.context.jsonl").read_text()
    assert serial == parallel and serial.count('"name": "EVAL_RESULT"') == 15
    history = History(pytester.path / ".agentloop" / "history.sqlite")
    serial_run, parallel_run = sorted(history.runs(), key=lambda run: run.started)  # one run per session
    assert sum(parallel_run.counts.values()) == sum(serial_run.counts.values()) == 23
    assert all(r.duration > 0 for r in history.results(parallel_run.run_id))


def test_rerun_from_saved_run(pytester, example_copy, judge_env, fake_openai, monkeypatch) -> None:
    _ini(pytester)
    monkeypatch.delenv("OPENAI_API_KEY")
    pytester.runpytest("evals", "--agentloop-handoff")
    [run_dir] = (pytester.path / ".agentloop" / "runs").iterdir()
    assert {p.name for p in run_dir.iterdir()} >= {"context.jsonl", "results.json", "run.json", "handoff.md"}
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    fake_openai.set_responder(halo_script(REPORT))
    from pytest_agentloop.cli import main

    code = main(["handoff", str(run_dir), "--base-url", fake_openai.base_url, "--model", "halo-x"])
    assert code == 0
    assert check_report((run_dir / "handoff.md").read_text()) == []


@pytest.mark.parametrize(
    ("status", "stops"),
    [(400, True), (401, True), (404, True), (408, False), (409, False), (429, False), (500, False), (503, False)],
)
def test_fail_fast_stops_on_terminal_4xx_only(status: int, stops: bool) -> None:
    """HALO's runner logs each failed call (status, code), then the body; only a terminal 4xx cancels the run."""
    import logging

    from pytest_agentloop.handoff.halo import FailFast

    guard, cancels = FailFast(), []
    guard.arm(lambda: cancels.append(1))
    log = logging.getLogger("engine.agents.openai_agent_runner")
    for message, args in [
        (
            "llm call failed for agent_id=%s with %s (status=%s code=%s) (failure %s of %s)",
            ("root", "E", status, None, 1, 10),
        ),
        (
            "llm status-error body for agent_id=%s: %s",
            ("root", {"error": {"message": "context size exceeded", "code": status}}),
        ),
    ]:
        guard.handle(log.makeRecord(log.name, logging.WARNING, __file__, 1, message, args, None))
    assert cancels == ([1] if stops else [])
    if stops:
        assert guard.reason() == (
            f"HALO stopped at the first refusal: the endpoint answered {status} to a request larger than the model's "
            "context window (context size exceeded); a 4xx other than 408/409/429 is not retried"
        )
