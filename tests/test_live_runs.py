"""``--agentloop-live`` over the bundled example, the real Agents SDK against the fake OpenAI server."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

# Imported before pytester snapshots sys.modules: modules a run imports are dropped after it, and the live
# runs import on their own thread while the next run starts.
import agents  # noqa: F401
import engine.telemetry.local_processor
import engine.traces.models.canonical_span  # noqa: F401
import pydantic.root_model  # noqa: F401
import pytest
import yaml
from agent_scripts import escape_steps

import pytest_agentloop.agent.builtin
import pytest_agentloop.agent.capture  # noqa: F401
from pytest_agentloop.report.html import payload_of
from pytest_agentloop.testing.fake_openai import (
    AgentScript,
    FakeOpenAI,
    Reply,
    Request,
    ToolCall,
    first_user_text,
    tool_outputs,
)

from conftest import INI, verdict_reply

LIVE_INI = INI + "agentloop_agent = harness\nagentloop_harness = evals/diligence/harness.yaml\n"
QUESTIONS = {
    "trace-01": "runway and burn",
    "trace-02": "revenue quality",
    "trace-03": "customer concentration",
    "trace-04": "security review",
    "trace-05": "unsupported metrics",
}
PYTHON_EVALS = "not test_memo"  # the Python evals' own test runs them live too


def recorded_steps(run_dir: Path, *, one_turn: bool = False) -> list[Reply]:
    """The agent replays a recorded run: list, read, write its artifacts, answer its answer.

    Four model calls; with ``one_turn``, two: the tool calls come in one reply (as parallel tool calls).
    """
    writes = tuple(
        ToolCall("write_artifact", {"name": p.name, "content": p.read_text()})
        for p in sorted((run_dir / "artifacts").iterdir())
    )
    calls = (
        ToolCall("list_files", {"folder": "financials"}),
        ToolCall("read_file", {"path": "financials/p_and_l.csv"}),
    )
    answer = Reply(text=(run_dir / "answer.md").read_text())
    if one_turn:
        return [Reply(tool_calls=(*calls, *writes)), answer]
    return [Reply(tool_calls=calls[:1]), Reply(tool_calls=calls[1:]), Reply(tool_calls=writes), answer]


class Server:
    """Agent requests follow per-question scripts; judge requests (model judge-1) pass."""

    def __init__(self, scripts: dict[str, list[Reply]]) -> None:
        self.agent = AgentScript(scripts)
        self.judge_calls = 0

    def __call__(self, request: Request) -> Reply:
        if request.body.get("model") == "judge-1":
            self.judge_calls += 1
            return verdict_reply()
        return self.agent(request)


@pytest.fixture
def live_env(
    pytester: pytest.Pytester,
    example_copy: Path,
    judge_env: list[str],
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> list[str]:
    pytester.makeini(LIVE_INI)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    return ["evals", "-k", PYTHON_EVALS, "--agentloop-live", *judge_env, "-p", "no:cacheprovider"]


def scripts(example: Path, *, one_turn: bool = False, **override: list[Reply]) -> dict[str, list[Reply]]:
    runs = example / "diligence" / "traces" / "runs"
    return {
        text: override.get(label.replace("-", "_"), recorded_steps(runs / label, one_turn=one_turn))
        for label, text in QUESTIONS.items()
    }


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def fresh_store(root: Path) -> Path:
    [folder] = (root / ".agentloop" / "runs").iterdir()
    return folder


def test_live_runs_the_example_and_checks_the_fresh_runs(
    pytester: pytest.Pytester, example_copy: Path, fake_openai: FakeOpenAI, live_env: list[str]
) -> None:
    server = Server(scripts(example_copy))
    fake_openai.set_responder(server)
    before = snapshot(example_copy)
    result = pytester.runpytest(*live_env, "--agentloop-html=report.html")
    result.assert_outcomes(passed=20, deselected=3)
    result.stdout.fnmatch_lines(
        [
            "agentloop: live: 5 runs of harness v001 (harness, concurrency 8) into .agentloop/runs/*/traces",
            "agentloop live: 5 runs of harness v001, 0 failed*",
        ]
    )
    assert snapshot(example_copy) == before  # the recorded store and tracked verdicts are untouched
    folder = fresh_store(pytester.path)
    records = [json.loads(p.read_text()) for p in sorted((folder / "traces" / "runs").glob("*/record.json"))]
    assert [r["label"] for r in records] == list(QUESTIONS) and {r["provenance"]["source"] for r in records} == {"live"}
    assert sum(server.agent.calls.values()) == 20  # four model calls per question, each question once
    verdicts = [json.loads(line) for line in (folder / "verdicts.jsonl").read_text().splitlines()]
    assert len(verdicts) == server.judge_calls == 7  # the judged evals, each graded on its fresh output
    with sqlite3.connect(pytester.path / ".agentloop" / "history.sqlite") as db:
        costs = dict(db.execute("select nodeid, cost from results"))
    run_costs = {r["label"]: r["cost_usd"] for r in records}
    assert costs["evals/diligence/financing_risk.eval.yaml::runway-named"] == run_costs["trace-01"]
    assert all(cost is not None and cost > 0 for cost in run_costs.values())
    with sqlite3.connect(pytester.path / ".agentloop" / "history.sqlite") as db:
        stores = {store for (store,) in db.execute("select distinct trace_store from results")}
    assert stores == {str((folder / "traces").relative_to(pytester.path))}  # the fresh runs' store, not the recorded
    traces = payload_of((pytester.path / "report.html").read_text())["traces"]
    fresh = {r["label"]: r["trace_id"] for r in records}
    assert {t["label"]: t["trace_id"] for t in traces.values()} == fresh  # the report shows the fresh runs
    assert all(t["problem"] is None and t["answer"] and t["spans"] for t in traces.values())


BROKEN = [Reply(tool_calls=(ToolCall("no_such_tool", {}),))]  # the SDK raises: the run fails


def broken_server(example: Path) -> Server:
    """trace-02's run calls a tool that does not exist, trace-04's reads outside the dataroom: both fail."""
    return Server(scripts(example, trace_02=BROKEN, trace_04=escape_steps()))


def evals_on(example: Path, *labels: str) -> set[str]:
    """Node ids of the example's evals that check the runs ``labels``."""
    return {
        f"evals/diligence/{path.name}::{spec['id']}"
        for path in sorted((example / "diligence").glob("*.eval.yaml"))
        for spec in yaml.safe_load(path.read_text())["evals"]
        if spec.get("trace") in labels
    }


def check_broken_outcomes(result: pytest.RunResult, server: Server, example: Path) -> None:
    """The failed runs' evals are errors, every other eval passes, and each question ran once (serial or -n 2)."""
    outcomes = _outcomes(result)
    assert len(outcomes) == 20 and {n for n, s in outcomes.items() if s != "PASSED"} == evals_on(
        example, "trace-02", "trace-04"
    )
    assert set(outcomes.values()) == {"PASSED", "ERROR"}
    assert server.agent.calls == {  # four model calls a question; the broken ones stop at their failing call
        "runway and burn": 4,
        "revenue quality": 1,
        "customer concentration": 4,
        "security review": 1,
        "unsupported metrics": 4,
    }


def test_failed_live_runs_make_errors_not_passes(
    pytester: pytest.Pytester, example_copy: Path, fake_openai: FakeOpenAI, live_env: list[str]
) -> None:
    server = broken_server(example_copy)
    fake_openai.set_responder(server)
    result = pytester.runpytest(*live_env, "-v")
    result.assert_outcomes(errors=9, passed=11, deselected=3)  # trace-02's five evals, trace-04's four
    result.stdout.fnmatch_lines(["*live run trace-04 (trace *, harness v001) failed: *refused path '../harness.yaml'*"])
    check_broken_outcomes(result, server, example_copy)


def test_a_timed_out_live_run_is_an_error(
    pytester: pytest.Pytester, example_copy: Path, fake_openai: FakeOpenAI, live_env: list[str]
) -> None:
    slow = [Reply(text="late", delay=2.0)]
    fake_openai.set_responder(Server(scripts(example_copy, trace_01=slow)))
    result = pytester.runpytest(*live_env, "-k", "runway or financing or trace-01", "--agentloop-live-timeout=0.5")
    result.stdout.fnmatch_lines(["*live run trace-01 (trace *) failed: timed out after 0.5s*"])
    assert result.parseoutcomes()["errors"] >= 1 and "passed" not in result.parseoutcomes()


@pytest.mark.parametrize(
    ("ini", "args", "message"),
    [
        (INI, [], "*--agentloop-live needs an agent: set the ini option agentloop_agent*"),
        (LIVE_INI, ["--agentloop-judge=replay"], "*use --agentloop-judge=record*not replay*"),
    ],
)
def test_live_usage_errors_come_before_anything_runs(
    pytester: pytest.Pytester,
    example_copy: Path,
    judge_env: list[str],
    fake_openai: FakeOpenAI,
    ini: str,
    args: list[str],
    message: str,
) -> None:
    pytester.makeini(ini)
    result = pytester.runpytest("evals", "--agentloop-live", *judge_env, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert fake_openai.requests == []


def test_live_without_a_key_is_a_usage_error(pytester: pytest.Pytester, example_copy: Path) -> None:
    pytester.makeini(LIVE_INI)
    result = pytester.runpytest("evals", "--agentloop-live")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no key for the agent's endpoint in $OPENAI_API_KEY*"])


def _unused(*_: Any) -> None:
    return None


def _outcomes(result: pytest.RunResult) -> dict[str, str]:
    found = {}
    for line in result.stdout.lines:
        match = re.search(r"(PASSED|FAILED|ERROR) (evals/\S+)", line) or re.match(
            r"^(evals/\S+::\S+) (PASSED|FAILED|ERROR)", line
        )
        if match:
            status, nodeid = (
                (match.group(1), match.group(2)) if match.group(1).isupper() else (match.group(2), match.group(1))
            )
            found[nodeid] = status
    return found


def test_xdist_gives_the_same_outcomes_and_runs_each_question_once(
    pytester: pytest.Pytester, example_copy: Path, fake_openai: FakeOpenAI, live_env: list[str]
) -> None:
    """The serial outcomes are pinned by check_broken_outcomes (test_failed_live_runs_make_errors_not_passes)."""
    server = broken_server(example_copy)
    fake_openai.set_responder(server)
    result = pytester.runpytest(*live_env, "-v", "-n", "2")
    check_broken_outcomes(result, server, example_copy)  # each question ran once, not once per worker
    assert len(list((pytester.path / ".agentloop" / "runs").iterdir())) == 1  # one folder, the workers share it


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_the_budget_stops_starting_runs(
    pytester: pytest.Pytester, example_copy: Path, fake_openai: FakeOpenAI, live_env: list[str], workers: list[str]
) -> None:
    pytester.makeini(LIVE_INI + "agentloop_prices = judge-1 0 0\n")
    fake_openai.set_responder(Server(scripts(example_copy)))
    # one run: 4 calls of 11 in / 7 out tokens at gpt-5.1 prices = $0.000335; a second would pass $0.0005.
    # (The ledger is shared by xdist workers: tests/test_budget.py runs judge calls against it under -n 2.)
    result = pytester.runpytest(*live_env, "--agentloop-budget=0.0005", *workers)
    runs = [json.loads(p.read_text()) for p in (fresh_store(pytester.path) / "traces" / "runs").glob("*/record.json")]
    assert len(runs) == 1 and sum(r["cost_usd"] for r in runs) <= 0.0005
    result.stdout.fnmatch_lines(
        [
            "*live run trace-0* not started: the budget of $0.0005 could be passed ($0.0003 spent*",
            "agentloop budget: $0.0003 of $0.0005 spent; 4 live runs or judge calls not started",
        ]
    )  # serial or -n 2: each refused question counted once, though both workers asked for it
    assert "unknown cost" not in result.stdout.str()
    outcomes = result.parseoutcomes()
    assert outcomes["errors"] >= 15 and outcomes["errors"] + outcomes.get("passed", 0) == 20


def test_python_evals_read_the_fresh_runs_through_their_fixtures(
    pytester: pytest.Pytester, example_copy: Path, fake_openai: FakeOpenAI, live_env: list[str]
) -> None:
    runs = example_copy / "diligence" / "traces" / "runs"
    steps = recorded_steps(runs / "trace-05")
    steps[-1] = Reply(text="A different answer from the live run.")  # summary_answer.md no longer matches it
    server = Server(scripts(example_copy, trace_05=steps))
    fake_openai.set_responder(server)
    result = pytester.runpytest("evals/diligence/test_memo_consistency.py", *live_env[3:], "-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_summary_matches_the_answer FAILED*"])
    assert set(server.agent.calls) == {"revenue quality", "customer concentration", "unsupported metrics"}


class Variants:
    """Runs of one question take their script in turn (runs one at a time: --agentloop-live-concurrency=1)."""

    def __init__(self, base: Server, question: str, variants: list[list[Reply]]) -> None:
        self.base, self.question, self.variants, self.started = base, question, variants, -1

    def __call__(self, request: Request) -> Reply:
        if request.body.get("model") != "judge-1" and self.question in first_user_text(request):
            self.started += tool_outputs(request) == 0
            steps = self.variants[self.started]
            return AgentScript({self.question: steps})(request)
        return self.base(request)


def test_repeats_report_the_majority_and_flag_flaky_evals(
    pytester: pytest.Pytester, example_copy: Path, fake_openai: FakeOpenAI, live_env: list[str]
) -> None:
    good = recorded_steps(example_copy / "diligence" / "traces" / "runs" / "trace-01")
    bad = [*good[:-1], Reply(text="Financing risk is low: about 18 months of runway.")]
    fake_openai.set_responder(Variants(Server(scripts(example_copy)), "runway and burn", [bad, good, good]))
    args = [
        *live_env,
        "-k",
        "runway-named",
        "--agentloop-live-repeat=3",
        "--agentloop-live-concurrency=1",
        "--junitxml=out.xml",
    ]
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1, deselected=22)  # the first run failed; two of three passed
    result.stdout.fnmatch_lines(
        ["*flaky: evals/diligence/financing_risk.eval.yaml::runway-named (live runs disagree: 2/3 passed)*"]
    )
    junit = (pytester.path / "out.xml").read_text()
    assert 'name="live_pass_at_3" value="true"' in junit and 'name="live_passes" value="2/3"' in junit
    labels = sorted(p.parent.name for p in (fresh_store(pytester.path) / "traces" / "runs").glob("*/record.json"))
    assert labels == ["trace-01", "trace-01.r2", "trace-01.r3"]


@pytest.mark.parametrize(
    ("variants", "outcome", "message"),
    [
        (
            ["broken", "good", "broken"],
            {"failed": 1},
            "*the live run checked first passed, but the majority of 3 runs failed: 1/3 passed (2 of the runs failed)*",
        ),
        (["broken", "broken", "broken"], {"errors": 1}, "*all 3 live runs failed: live run trace-01 *no_such_tool*"),
    ],
    ids=["failed-runs-are-failing-samples", "all-failed-is-an-error"],
)
def test_with_repeats_a_failed_run_is_a_failing_sample(
    pytester: pytest.Pytester,
    example_copy: Path,
    fake_openai: FakeOpenAI,
    live_env: list[str],
    variants: list[str],
    outcome: dict[str, int],
    message: str,
) -> None:
    good = recorded_steps(example_copy / "diligence" / "traces" / "runs" / "trace-01")
    steps = [{"good": good, "broken": BROKEN}[name] for name in variants]
    fake_openai.set_responder(Variants(Server(scripts(example_copy)), "runway and burn", steps))
    args = ["-k", "runway-named", "--agentloop-live-repeat=3", "--agentloop-live-concurrency=1", "--junitxml=out.xml"]
    result = pytester.runpytest(*live_env, *args)
    result.assert_outcomes(**outcome, deselected=22)
    result.stdout.fnmatch_lines([message])
    if "failed" in outcome:
        junit = (pytester.path / "out.xml").read_text()
        assert 'name="live_run_errors" value="2"' in junit and 'name="live_pass_at_3" value="true"' in junit
