"""Shards merged equal the unsharded run: the bundled example and a 200-eval suite as 1, 3 and 4 shards.

Equal means per-eval outcomes, the gate's exit code, the history's row counts and the
handoff's context file byte for byte. The 200-eval suite (literal assertions, rubric evals
with verdicts recorded once from the fake OpenAI server, five evals per question) is
generated once per module; each shard count runs once. Shards run in-process, except the
example's: two run as separate processes with their own hash seeds, at once with the third in
this process (the plan must not depend on the process).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import test_live_runs
from test_live_runs import QUESTIONS as LIVE_QUESTIONS
from test_live_runs import Server, scripts

from pytest_agentloop.cli import main
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.gate import carry
from pytest_agentloop.testing.fake_openai import FakeOpenAI, Reply, Request
from pytest_agentloop.traces.store import TraceStore

from conftest import INI, SECRET_KEY, verdict_reply, write_run

live_env = test_live_runs.live_env  # the live tests' fixture, used here too

QUESTIONS = 40
FILES = 10
PER_FILE = 20  # 200 evals; eval n reads question n % 40, so five evals share each question


def _answer(q: int) -> str:
    return f"Answer {q}: the runway is 11 months." if q % 7 else f"Answer {q}: the runway is not stated."


def _eval(n: int) -> str:
    q = n % QUESTIONS
    if n % 4 == 0:  # judged: fails where the answer names no runway
        body = "    scoring: llm_judge\n    rubric: PASS if the runway is named.\n    expected: Names the runway.\n"
    else:  # literal: fails where the answer names no runway (one in nine only asks for "Answer")
        wanted = "11 months" if n % 9 else "Answer"
        body = f"    assert:\n      - type: contains\n        value: '{wanted}'\n"
    return f"  - id: e{n:03d}\n    title: Eval {n}\n    trace: q-{q:02d}\n{body}"


def _write_suite(root: Path) -> None:
    for q in range(QUESTIONS):
        run = root / "suite" / "traces" / "runs" / f"q-{q:02d}"
        run.mkdir(parents=True)
        record = {
            "format": 1,
            "trace_id": f"{q + 1:032x}",
            "label": f"q-{q:02d}",
            "question": f"What is the runway of company {q}?",
            "harness_version": "v001",
            "model": None,
            "created": "2026-01-01T00:00:00Z",
            "provenance": {"source": "tests"},
        }
        (run / "record.json").write_text(json.dumps(record))
        (run / "answer.md").write_text(_answer(q))
    for f in range(FILES):
        evals = "".join(_eval(f * PER_FILE + i) for i in range(PER_FILE))
        (root / "suite" / f"part{f:02d}.eval.yaml").write_text(f"agentloop: 1\nevals:\n{evals}")
    settings = (
        "agentloop_harness = harness.yaml\nagentloop_feedback = feedback.jsonl\nagentloop_judge_model = judge-1\n"
    )
    (root / "pytest.ini").write_text(INI + settings)
    (root / "harness.yaml").write_text("version: v001\nsystem_prompt: Answer with the runway.\n")
    feedback = {
        "id": "hf-01",
        "trace_id": f"{1:032x}",
        "label": "q-00",
        "question": "What is the runway of company 0?",
        "theme": "runway",
        "summary": "Names the runway.",
        "required_observations": ["runway"],
        "prohibited_claims": [],
        "source": "human_feedback",
        "author": "tests",
        "rating": "good",
    }
    (root / "feedback.jsonl").write_text(json.dumps(feedback) + "\n")


def _judge(request: Request) -> Reply:
    return verdict_reply("11 months" in json.dumps(request.body))


@pytest.fixture(scope="module")
def suite_200(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated suite, its rubric verdicts recorded once (later runs replay them, without a key)."""
    root = tmp_path_factory.mktemp("suite200")
    _write_suite(root)
    with FakeOpenAI(_judge) as server, pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("OPENAI_API_KEY", SECRET_KEY)
        args = ["suite", "-q", "-p", "no:cacheprovider", "--agentloop-judge=record", "-p", "no:randomly"]
        pytest.main([*args, f"--agentloop-judge-base-url={server.base_url}"])
        assert len(server.requests) == 50
    shutil.rmtree(root / ".agentloop")
    return root


@pytest.fixture
def copy_200(pytester: pytest.Pytester, suite_200: Path) -> Path:
    """The suite in this test's pytester folder."""
    shutil.copytree(suite_200, pytester.path, dirs_exist_ok=True)
    return pytester.path


def _outcomes(result: pytest.RunResult) -> dict[str, str]:
    words = ("PASSED", "FAILED", "ERROR")
    return {p[0]: p[1] for line in result.stdout.lines if len(p := line.split()) > 1 and "::" in p[0] and p[1] in words}


def _history(path: Path) -> tuple[int, ...]:
    """Rows of the history's runs, results and run items (the selection)."""
    with sqlite3.connect(path) as db:
        return tuple(db.execute(f"select count(*) from {t}").fetchone()[0] for t in ("runs", "results", "run_items"))


def _merge(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    status = main(["merge", *args])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_200_evals_as_1_3_4_shards_merge_into_the_unsharded_run(
    pytester: pytest.Pytester, copy_200: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ("suite", "-v", "-p", "no:randomly")
    whole = pytester.runpytest(*common, "--agentloop-handoff=whole/handoff.md", "--agentloop-history=whole.sqlite")
    expected = _outcomes(whole)
    assert len(expected) == 200 and whole.ret == 1
    assert sorted(set(expected.values())) == ["FAILED", "PASSED"]
    context = (copy_200 / "whole" / "handoff.context.jsonl").read_bytes()
    for count in (1, 3, 4):
        names = [f"s{count}-{k}.json" for k in range(1, count + 1)]
        seen: dict[str, str] = {}
        for index, name in enumerate(names, 1):
            shard = pytester.runpytest(*common, f"--agentloop-shard={index}/{count}", f"--agentloop-shard-out={name}")
            seen |= _outcomes(shard)
        assert seen == expected
        status, out = _merge(capsys, *names, f"--handoff=m{count}/handoff.md", f"--history=m{count}.sqlite")
        assert status == whole.ret, out
        assert "handoff (evidence only)" in out
        assert (copy_200 / f"m{count}" / "handoff.context.jsonl").read_bytes() == context, count
        assert _history(copy_200 / f"m{count}.sqlite") == _history(copy_200 / "whole.sqlite") == (1, 200, 200)
    one, two, three = (f"s3-{k}.json" for k in (1, 2, 3))
    for shards, message in (
        ([one, two], "missing shard 3/3"),
        ([one, two, two, three], "shard 2/3 given more than once"),
    ):
        status, out = _merge(capsys, *shards)
        assert (status, message in out) == (2, True), out
    _refusals(copy_200, capsys, one, two, three)


def _refusals(root: Path, capsys: pytest.CaptureFixture[str], one: str, two: str, three: str) -> None:
    """Shards of two commits, an old format, and shards that read another feedback file: exit 2, clear messages."""
    document = json.loads((root / three).read_text())
    edits = {
        "commit": ({"commit": "0" * 40}, "shards come from two commits"),
        "format": ({"format": 1}, "shard file format 1 was written by an older pytest-agentloop"),
        "feedback": (
            {"carried": document["carried"] | {"feedback": []}},
            "shards read different harness or feedback files",
        ),
    }
    for name, (change, message) in edits.items():
        (root / f"{name}.json").write_text(json.dumps(document | change))
        status, out = _merge(capsys, one, two, f"{name}.json")
        assert (status, message in out) == (2, True), out


def test_the_example_as_3_shards_in_separate_processes(
    pytester: pytest.Pytester, example_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = example_copy / "diligence" / "traces" / "runs" / "trace-03" / "answer.md"
    answer.write_text(answer.read_text().replace("parent", "entity"))  # a literal failure and a stale verdict (error)
    whole = pytester.runpytest(
        "evals", "-v", "--agentloop-handoff=whole/handoff.md", "--agentloop-history=whole.sqlite", "-p", "no:randomly"
    )
    whole.stdout.fnmatch_lines(["23 evals: 21 passed, 1 failed, 1 error"])
    command = [sys.executable, "-m", "pytest", "evals", "-p", "no:cacheprovider", "-q"]
    seeds = [seed for seed in ("1", "2", "3") if seed != os.environ.get("PYTHONHASHSEED")][:2]
    shards = [  # at once, each with its own hash seed: the plan must not depend on the process
        subprocess.Popen(
            [*command, f"--agentloop-shard={k}/3", f"--agentloop-shard-out=s{k}.json"],
            cwd=pytester.path,
            env=os.environ | {"PYTHONHASHSEED": seed},
            stdout=subprocess.DEVNULL,
        )
        for k, seed in zip((1, 2), seeds, strict=True)
    ]
    third = pytester.runpytest(
        "evals", "-p", "no:cacheprovider", "-q", "--agentloop-shard=3/3", "--agentloop-shard-out=s3.json"
    )
    codes = [p.wait(timeout=300) for p in shards] + [third.ret]
    assert sorted(codes) == [0, 0, 1]  # trace-03's evals run together, on one shard
    reports = ["--junitxml=merged.xml", "--html=merged.html", "--handoff=merged/handoff.md", "--history=merged.sqlite"]
    status, out = _merge(capsys, "s1.json", "s2.json", "s3.json", *reports)
    assert (status, whole.ret) == (1, 1), out
    assert "merged 3 shards: 23 evals (1 error, 1 failed, 21 passed)" in out
    documents = [json.loads((pytester.path / f"s{k}.json").read_text()) for k in (1, 2, 3)]
    outcomes = {n: o.upper() for d in documents for n, o in d["outcomes"].items()}
    assert outcomes == _outcomes(whole) and len(outcomes) == 23
    merged, single = (pytester.path / d / "handoff.context.jsonl" for d in ("merged", "whole"))
    assert merged.read_bytes() == single.read_bytes()
    assert _history(pytester.path / "merged.sqlite") == _history(pytester.path / "whole.sqlite") == (1, 23, 23)
    assert (pytester.path / "merged.xml").read_text().count("<testcase") == 23
    from pytest_agentloop.report.html import payload_of

    assert len(payload_of((pytester.path / "merged.html").read_text())["rows"]) == 23


JUDGED = """
    evals:
      - id: first
        title: First
        trace: trace-01
        scoring: llm_judge
        rubric: PASS if the runway is named.
      - id: second
        title: Second
        trace: trace-02
        scoring: llm_judge
        rubric: PASS if the runway is named.
"""


def test_verdicts_a_shard_judged_reach_the_merged_run_or_the_stores(
    pytester: pytest.Pytester,
    eval_file: Callable[..., Path],
    store: Path,
    judge_env: list[str],
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_run(store, "trace-02", "Runway is 9 months.")
    eval_file(JUDGED)
    fake_openai.set_responder(lambda request: verdict_reply())
    for k in (1, 2):
        shard = pytester.runpytest(
            *judge_env, "--agentloop-judge=record", f"--agentloop-shard={k}/2", f"--agentloop-shard-out=s{k}.json"
        )
        shard.assert_outcomes(passed=1, deselected=1)
        carried = json.loads((pytester.path / f"s{k}.json").read_text())["carried"]
        assert [len(rows) for rows in carried["verdicts"].values()] == [1]
    tracked = pytester.path / "verdicts.jsonl"
    tracked.unlink()  # the merge job's checkout has no verdicts the shards made
    status, out = _merge(capsys, "s1.json", "s2.json")
    [line] = [line for line in out.splitlines() if line.startswith("verdicts the shards made:")]
    kept = Path(line.split(": ", 1)[1])
    assert kept.relative_to(pytester.path / ".agentloop" / "runs").parts[1:] == ("verdicts", "verdicts.jsonl")
    assert (status, len(kept.read_text().splitlines()), tracked.exists()) == (0, 2, False)
    assert _merge(capsys, "s1.json", "s2.json", "--verdicts-into-stores")[0] == 0
    monkeypatch.delenv("OPENAI_API_KEY")
    pytester.runpytest(*judge_env, "--agentloop-judge=replay").assert_outcomes(passed=2)
    assert len(fake_openai.requests) == 2


def test_live_traces_of_every_shard_become_one_store(
    pytester: pytest.Pytester,
    example_copy: Path,
    fake_openai: FakeOpenAI,
    live_env: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_openai.set_responder(Server(scripts(example_copy)))
    for k in (1, 2):
        shard = pytester.runpytest(*live_env, f"--agentloop-shard={k}/2", f"--agentloop-shard-out=s{k}.json")
        assert shard.ret == 0
    status, out = _merge(capsys, "s1.json", "s2.json")
    assert status == 0, out
    [line] = [line for line in out.splitlines() if line.startswith("live traces of every shard:")]
    merged = TraceStore(Path(line.split(": ", 1)[1]))
    assert sorted(r.label for r in merged) == sorted(LIVE_QUESTIONS)
    assert all(r.answer and (r.artifacts_dir / "summary_answer.md").is_file() for r in merged)
    assert {s["trace_id"] for s in merged.spans()} == {r.trace_id for r in merged}
    verdicts = merged.root.parent / "verdicts.jsonl"
    assert len(verdicts.read_text().splitlines()) == 7  # the judged evals, graded on the fresh runs of both shards


def test_live_traces_over_the_limit_are_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "runs" / "q").mkdir(parents=True)
    (tmp_path / "runs" / "q" / "answer.md").write_text("x" * 2000)
    monkeypatch.setattr(carry, "MAX_LIVE_BYTES", 1000)
    with pytest.raises(AgentloopError, match="2,000 bytes, over the 1,000 a shard file carries: run the suite on more"):
        carry.live_files(tmp_path)


def test_a_shard_file_that_cannot_carry_its_inputs_fails_the_shard(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_suite(pytester.path)  # e001 and e002 are literal evals: the suite needs no recorded verdicts (suite_200)
    monkeypatch.setattr(carry, "MAX_INPUT_BYTES", 10)
    result = pytester.runpytest("suite", "-k", "e001 or e002", "--agentloop-shard=1/2", "--agentloop-shard-out=s.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*shard file s.json not written: harness.yaml: over the 10-byte limit*"])
    assert not (pytester.path / "s.json").exists()


def test_two_shards_carrying_different_bytes_for_one_live_file_are_refused(tmp_path: Path) -> None:
    def shard(text: bytes) -> carry.Carried:
        return carry.Carried(live_dir=".agentloop/runs/x", live=(carry.CarriedFile("runs/q/answer.md", text),))

    with pytest.raises(AgentloopError, match=r"two shards carry different live files runs/q/answer.md \(a, b\)"):
        carry.materialise([("a", shard(b"one")), ("b", shard(b"two"))], tmp_path, tmp_path / "run", tmp_path, False)


@pytest.mark.parametrize("path", ["../outside.md", "/etc/passwd", "runs\\..\\x"])
def test_a_carried_path_leading_out_of_its_folder_is_malformed(path: str) -> None:
    with pytest.raises(ValueError, match="leads out of its folder"):
        carry.CarriedFile.from_json({"path": path, "base64": ""})
