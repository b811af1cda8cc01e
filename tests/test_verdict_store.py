"""The verdict store: concurrent writers, killed runs, stable order, unused verdicts, pruning, agreement."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_agentloop.cli import main
from pytest_agentloop.judge.verdicts import Verdict, VerdictCodec, VerdictStore

from conftest import verdict_reply


def judged_suite(count: int) -> str:
    """``count`` rubric evals on trace-01, e00, e01, ..."""
    return "evals:\n" + "".join(
        f"  - {{id: e{i:02d}, title: E{i}, trace: trace-01, scoring: llm_judge, rubric: 'PASS if rule {i} holds.'}}\n"
        for i in range(count)
    )


MANY = judged_suite(24)


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


def test_xdist_workers_grade_ahead_write_without_loss_and_replay_without_calls(
    pytester, judge_env, fake_openai, store
) -> None:
    """One -n 2 run checks the workers' grading and writing; a second, in replay mode, checks it makes no call.

    xdist first hands each worker an eighth of the 80 items, 10: more than the concurrency (8), so the calls in
    flight show that a worker grades the items queued for it ahead, up to the concurrency, not just the next one.
    """
    pytester.makefile(".eval.yaml", suite=judged_suite(80))
    fake_openai.set_responder(lambda request: verdict_reply(True, 1.0, "ok", delay=0.2))
    result = pytester.runpytest(*judge_env, "-n", "2", "--agentloop-concurrency=8")
    result.assert_outcomes(passed=80)
    assert len(fake_openai.requests) == 80  # one call per rubric: nothing graded twice across workers
    assert fake_openai.max_in_flight > 4  # more than (the running item + the next) x 2 workers
    assert fake_openai.max_in_flight <= 16  # and no more than the concurrency per worker
    lines = (pytester.path / "verdicts.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["eval_id"] for line in lines) == [f"e{i:02d}" for i in range(80)]
    assert lines == sorted(lines, key=lambda line: json.loads(line)["eval_id"])  # rewritten in stable order
    pytester.runpytest(*judge_env, "-n", "2", "--agentloop-judge=replay").assert_outcomes(passed=80)
    assert len(fake_openai.requests) == 80


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
        "for n in range(base, base + 60): s.append([_verdict(n)])\n"
    )
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(b)], env=env) for b in (0, 1000, 2000)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    store = VerdictStore(path)
    assert len(store.read()) == 180 and store.torn is None


def test_killed_writer_leaves_a_readable_store(tmp_path: Path) -> None:
    path = tmp_path / "verdicts.jsonl"
    VerdictStore(path).append([_verdict(0)])
    code = (
        "import sys\nfrom pytest_agentloop.judge.verdicts import Verdict, VerdictStore\n"
        "def _verdict(n): return Verdict(key=f'k{n}', subject='s', eval_file='a', eval_id=f'e{n}', passed=True, "
        "score=1.0, reason='r' * 200, source='model:m', judge_model='m', prompt_version='1', created='t')\n"
        "s = VerdictStore(__import__('pathlib').Path(sys.argv[1]))\n"
        "n = 1\n"
        "while True:\n"
        "    s.append([_verdict(n)]); n += 1\n"
        "    if n == 20: print('ready', flush=True)\n"
    )
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"  # 19 appends acknowledged, more under way
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = VerdictStore(path)
    verdicts = store.read()
    assert len(verdicts) >= 20 and [v.eval_id for v in verdicts[:20]] == [f"e{n}" for n in range(20)]


def test_torn_line_is_reported_and_left_alone_by_replay(pytester, eval_file, judge_env, fake_openai) -> None:
    eval_file("evals:\n  - {id: j, title: J, trace: trace-01, scoring: llm_judge, rubric: R}\n")
    fake_openai.push(verdict_reply())
    pytester.runpytest(*judge_env).assert_outcomes(passed=1)
    path = pytester.path / "verdicts.jsonl"
    with path.open("a") as handle:
        handle.write('{"key": "torn", "pass": tr')
    before = path.read_bytes()
    result = pytester.runpytest(*judge_env, "--agentloop-judge=replay")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*verdicts.jsonl:2: an unfinished final line (a killed run?) was ignored"])
    assert path.read_bytes() == before  # replay never writes
    fake_openai.push(verdict_reply())
    pytester.runpytest(*judge_env, "--agentloop-judge=refresh").assert_outcomes(passed=1)
    assert all(json.loads(line) for line in path.read_text().splitlines())  # a writing run cut it


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


JUDGED = "evals:\n  - {id: j, title: J, trace: trace-01, scoring: llm_judge, rubric: R}\n"


def _label(pytester: pytest.Pytester, nodeid: str = "suite.eval.yaml::j", *flags: str) -> int:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(pytester.path)
        return main(["label", nodeid, *(flags or ("--pass",)), "--reason", "reads fine", "--by", "ana"])


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("score", "7.5", "field 'score' must be a number from 0 to 1, got 7.5"),
        ("score", "NaN", "field 'score' must be a finite number from 0 to 1, got nan"),
        ("pass", '"false"', "field 'pass' must be true or false, got 'false'"),
        ("source", '"bogus"', "field 'source' must be 'human:<name>', 'model:<name>' or 'promptfoo:<grader>'*"),
        ("key_version", "9", "field 'key_version' must be 1 or 2, got 9"),
        ("pass", 'true, "pass": false', "key 'pass' appears twice*"),
        ("extra", "1", "unknown field 'extra'*"),
    ],
)
def test_a_bad_stored_verdict_is_an_error_naming_file_and_line(
    pytester, eval_file, field: str, value: str, problem: str
) -> None:
    eval_file(JUDGED)
    assert _label(pytester) == 0
    path = pytester.path / "verdicts.jsonl"
    good = path.read_text()
    data = json.loads(good)
    bad = json.dumps({k: v for k, v in data.items() if k != field})[:-1] + f', "{field}": {value}}}'
    path.write_text(bad + "\n" + good)  # the bad line comes first: a last-wins reader would still pass
    before = path.read_bytes()
    result = pytester.runpytest("--agentloop-judge=replay")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [f"eval j: stored verdicts unreadable, so none is served: *verdicts.jsonl:1: {problem}*"]
    )
    result.stdout.fnmatch_lines(["unreadable verdict store: *verdicts.jsonl:1: *"])
    assert path.read_bytes() == before


def test_writing_modes_refuse_a_store_with_a_bad_line(pytester, eval_file, judge_env, fake_openai, capsys) -> None:
    eval_file(JUDGED)
    path = pytester.path / "verdicts.jsonl"
    path.write_text('{"key": "hand-written", "pass": maybe}\n')
    before = path.read_bytes()
    result = pytester.runpytest(*judge_env, "--agentloop-judge=record")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*verdicts.jsonl:1: not valid JSON*fix or delete this line*"])
    assert fake_openai.requests == []
    assert _label(pytester) == 2  # an input error: the CLI's exit 2
    assert "verdicts.jsonl:1: not valid JSON" in capsys.readouterr().err
    assert path.read_bytes() == before


def _locks(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*.lock"))


def test_replay_never_writes_a_hand_edited_store(pytester, eval_file) -> None:
    eval_file(JUDGED)
    assert _label(pytester) == 0
    path = pytester.path / "verdicts.jsonl"
    data = json.loads(path.read_text())
    path.write_text("\n" + json.dumps(dict(reversed(list(data.items()))), indent=None, separators=(",", ":")) + "\n\n")
    path.chmod(0o640)
    before, locks = path.read_bytes(), _locks(pytester.path)
    assert all(p.parts[:2] == (".agentloop", "locks") for p in locks)  # the label's lock, outside the tree
    result = pytester.runpytest("--agentloop-judge=replay")
    result.assert_outcomes(passed=1)
    assert path.read_bytes() == before
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert _locks(pytester.path) == locks  # replay took no lock


def test_prune_tells_evals_apart_by_full_path(pytester, judge_env, fake_openai, store) -> None:
    for folder, rubric in (("a", "PASS if the runway is named."), ("b", "PASS if the burn is named.")):
        (pytester.path / folder).mkdir()
        (pytester.path / folder / "suite.eval.yaml").write_text(JUDGED.replace("rubric: R", f"rubric: {rubric}"))
    fake_openai.set_responder(lambda request: verdict_reply())
    pytester.runpytest(*judge_env).assert_outcomes(passed=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(pytester.path)
        assert main(["verdicts", "prune", "."]) == 0
    for folder in ("a", "b"):
        assert len((pytester.path / folder / "verdicts.jsonl").read_text().splitlines()) == 1
    pytester.runpytest(*judge_env, "--agentloop-judge=replay").assert_outcomes(passed=2)


def test_prune_of_one_file_keeps_what_the_folders_other_evals_use(pytester, judge_env, fake_openai, store) -> None:
    pytester.makefile(".eval.yaml", x=JUDGED.replace("id: j", "id: x"), y=JUDGED.replace("id: j", "id: y"))
    fake_openai.set_responder(lambda request: verdict_reply())
    pytester.runpytest(*judge_env).assert_outcomes(passed=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(pytester.path)
        assert main(["verdicts", "prune", "x.eval.yaml"]) == 0
    assert len((pytester.path / "verdicts.jsonl").read_text().splitlines()) == 2


def test_verdict_codec_round_trips_and_checks_types() -> None:
    codec = VerdictCodec()
    verdict = _verdict(3)
    assert codec.from_json(codec.to_json(verdict)) == verdict
    with pytest.raises(ValueError, match="field 'score' must be a finite number"):
        codec.from_json({**codec.to_json(verdict), "score": float("inf")})
    with pytest.raises(ValueError, match="missing field 'reason'"):
        codec.from_json({k: v for k, v in codec.to_json(verdict).items() if k != "reason"})


def test_a_valid_last_line_without_its_newline_is_kept_by_a_writer(pytester, eval_file) -> None:
    eval_file(JUDGED + "  - {id: k, title: K, trace: trace-01, scoring: llm_judge, rubric: S}\n")
    assert _label(pytester) == 0
    path = pytester.path / "verdicts.jsonl"
    path.write_text(path.read_text().rstrip("\n"))  # hand-edited: the last line lost its newline
    assert _label(pytester, "suite.eval.yaml::k") == 0
    assert sorted(json.loads(line)["eval_id"] for line in path.read_text().splitlines()) == ["j", "k"]
