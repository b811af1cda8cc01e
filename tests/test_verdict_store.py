"""The verdict store: concurrent writers, killed runs, stable order, unused verdicts, pruning, agreement."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_agentloop.cli import main
from pytest_agentloop.judge.verdicts import Verdict, VerdictStore

from conftest import verdict_reply

MANY = "evals:\n" + "".join(
    f"  - {{id: e{i:02d}, title: E{i}, trace: trace-01, scoring: llm_judge, rubric: 'PASS if rule {i} holds.'}}\n"
    for i in range(24)
)


def _verdict(n: int) -> Verdict:
    return Verdict(
        key=f"k{n}",
        subject=f"s{n}",
        eval_file="a.eval.yaml",
        eval_id=f"e{n}",
        passed=True,
        score=1.0,
        reason="r" * 200,
        source="model:m",
        judge_model="m",
        prompt_version="1",
        created="2026-01-01T00:00:00Z",
    )


def test_xdist_workers_write_without_loss(pytester, judge_env, fake_openai, store) -> None:
    pytester.makefile(".eval.yaml", suite=MANY)
    fake_openai.set_responder(lambda request: verdict_reply(True, 1.0, "ok", delay=0.02))
    result = pytester.runpytest(*judge_env, "-n", "2")
    result.assert_outcomes(passed=24)
    lines = (pytester.path / "verdicts.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["eval_id"] for line in lines) == [f"e{i:02d}" for i in range(24)]
    assert lines == sorted(lines, key=lambda line: json.loads(line)["eval_id"])  # rewritten in stable order
    served = len(fake_openai.requests)
    pytester.runpytest(*judge_env, "-n", "2", "--agentloop-judge=replay").assert_outcomes(passed=24)
    assert len(fake_openai.requests) == served


def test_selected_items_are_judged_concurrently(pytester, judge_env, fake_openai, store) -> None:
    pytester.makefile(".eval.yaml", suite=MANY)
    fake_openai.set_responder(lambda request: verdict_reply(delay=0.2))
    pytester.runpytest(*judge_env, "--agentloop-concurrency=6").assert_outcomes(passed=24)
    assert fake_openai.max_in_flight == 6


def test_writers_in_parallel_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "verdicts.jsonl"
    code = (
        "import sys\nfrom pytest_agentloop.judge.verdicts import Verdict, VerdictStore\n"
        "def _verdict(n): return Verdict(key=f'k{n}', subject='s', eval_file='a', eval_id=f'e{n}', passed=True, "
        "score=1.0, reason='r' * 200, source='model:m', judge_model='m', prompt_version='1', created='t')\n"
        "s = VerdictStore(__import__('pathlib').Path(sys.argv[1]))\n"
        "base = int(sys.argv[2])\n"
        "for n in range(base, base + 200): s.append([_verdict(n)])\n"
    )
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(b)], env=env) for b in (0, 1000, 2000)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    store = VerdictStore(path)
    assert len(store.read()) == 600 and store.skipped_lines == []


def test_killed_writer_leaves_a_readable_store(tmp_path: Path) -> None:
    path = tmp_path / "verdicts.jsonl"
    VerdictStore(path).append([_verdict(0)])
    code = (
        "import sys\nfrom pytest_agentloop.judge.verdicts import Verdict, VerdictStore\n"
        "def _verdict(n): return Verdict(key=f'k{n}', subject='s', eval_file='a', eval_id=f'e{n}', passed=True, "
        "score=1.0, reason='r' * 200, source='model:m', judge_model='m', prompt_version='1', created='t')\n"
        "s = VerdictStore(__import__('pathlib').Path(sys.argv[1]))\n"
        "n = 1\n"
        "while True:\n    s.append([_verdict(n)]); n += 1\n"
    )
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], env=env)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = VerdictStore(path)
    verdicts = store.read()
    assert len(verdicts) > 1 and verdicts[0].eval_id == "e0"
    assert len(store.skipped_lines) <= 1


def test_torn_line_is_skipped_reported_and_healed(pytester, eval_file, judge_env, fake_openai) -> None:
    eval_file("evals:\n  - {id: j, title: J, trace: trace-01, scoring: llm_judge, rubric: R}\n")
    fake_openai.push(verdict_reply())
    pytester.runpytest(*judge_env).assert_outcomes(passed=1)
    path = pytester.path / "verdicts.jsonl"
    with path.open("a") as handle:
        handle.write('{"key": "torn", "pass": tr')
    result = pytester.runpytest(*judge_env, "--agentloop-judge=replay")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["skipped 1 unreadable verdict lines*"])
    assert all(json.loads(line) for line in path.read_text().splitlines())  # the rewrite dropped it


def test_unused_verdicts_reported_and_pruned(pytester, eval_file, judge_env, fake_openai, store) -> None:
    eval_file("evals:\n  - {id: j, title: J, trace: trace-01, scoring: llm_judge, rubric: R}\n")
    fake_openai.set_responder(lambda request: verdict_reply())
    pytester.runpytest(*judge_env).assert_outcomes(passed=1)
    (store / "runs" / "trace-01" / "answer.md").write_text("A new answer: runway is 11 months.")
    result = pytester.runpytest(*judge_env)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["1 stored verdicts are not used by any collected eval; remove them with `agentloop verdicts prune`"]
    )
    result = pytester.runpytest(*judge_env, "-k", "nothing-matches")
    result.stdout.no_fnmatch_line("*not used*")  # deselection does not make verdicts look unused
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(pytester.path)
        assert main(["verdicts", "prune", "."]) == 0
    assert len((pytester.path / "verdicts.jsonl").read_text().splitlines()) == 1
    pytester.runpytest(*judge_env).stdout.no_fnmatch_line("*not used*")


def test_agreement_between_people_and_model(pytester, eval_file, judge_env, fake_openai, capsys) -> None:
    eval_file(
        "evals:\n  - {id: a, title: A, trace: trace-01, scoring: llm_judge, rubric: R1}\n"
        "  - {id: b, title: B, trace: trace-01, scoring: llm_judge, rubric: R2}\n"
    )
    fake_openai.set_responder(lambda request: verdict_reply(True, 0.9))
    pytester.runpytest(*judge_env).assert_outcomes(passed=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(pytester.path)
        assert main(["label", "suite.eval.yaml::a", "--pass", "--reason", "ok", "--by", "ana"]) == 0
        assert main(["label", "suite.eval.yaml::b", "--fail", "--score", "0.2", "--reason", "no", "--by", "ana"]) == 0
        capsys.readouterr()
        assert main(["verdicts", "agreement", "."]) == 0
    out = capsys.readouterr().out
    assert "suite.eval.yaml::a\t1/1 agree" in out
    assert "suite.eval.yaml::b\t0/1 agree" in out
    assert "overall: model agrees with people on 1/2 outputs (50%)" in out
    result = pytester.runpytest(*judge_env)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*rubric FAILED by human:ana: score 0.20*"])


def test_label_rejects_bad_input(pytester, eval_file, capsys) -> None:
    eval_file("evals:\n  - {id: a, title: A, trace: trace-01, assert: [{type: contains, value: x}]}\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(pytester.path)
        assert main(["label", "suite.eval.yaml::a", "--pass", "--reason", "r", "--by", "x"]) == 2
        assert main(["label", "suite.eval.yaml::zz", "--pass", "--reason", "r", "--by", "x"]) == 2
        assert main(["label", "suite.eval.yaml", "--pass", "--reason", "r", "--by", "x"]) == 2
    err = capsys.readouterr().err
    assert "has no rubric to label" in err and "no eval 'zz'; it has a" in err and "is not a node id" in err


def test_xdist_workers_grade_ahead_without_duplicate_calls(pytester, judge_env, fake_openai, store) -> None:
    pytester.makefile(".eval.yaml", suite=MANY)
    fake_openai.set_responder(lambda request: verdict_reply(delay=0.2))
    pytester.runpytest(*judge_env, "-n", "2").assert_outcomes(passed=24)
    assert len(fake_openai.requests) == 24  # one call per rubric: nothing graded twice across workers
    assert fake_openai.max_in_flight >= 3  # each worker keeps its next item's call in flight
