"""The regression gate: history, baselines, regressions policy, must-pass, splits and CI reports."""

from __future__ import annotations

import itertools
import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_agentloop.cli import main
from pytest_agentloop.gate.history import History

from conftest import run_cli

OFF = "--agentloop-judge=off"
HISTORY = ".agentloop/history.sqlite"


def _answer(example: Path, label: str) -> Path:
    return example / "diligence" / "traces" / "runs" / label / "answer.md"


def _edit(example: Path, label: str, old: str, new: str) -> None:
    path = _answer(example, label)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_baseline_regression_and_improvement(pytester, example_copy, capsys) -> None:
    # baseline: health-by-legal-entity fails (trace-03 loses the phrase)
    _edit(example_copy, "trace-03", "by legal entity, not parent account", "per entity")
    base = pytester.runpytest("evals", OFF)
    assert base.ret == 1
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(pytester.path)
        assert main(["export", "--history", HISTORY, "latest", "-o", "baseline.json"]) == 0
    # candidate: trace-03 improves (phrase back), trace-04 regresses (no "Aurora")
    _edit(example_copy, "trace-03", "per entity", "by legal entity, not parent account")
    _edit(example_copy, "trace-04", '"Aurora"', "another vendor")
    result = pytester.runpytest("evals", OFF, "--agentloop-baseline=baseline.json", "--agentloop-gate=regressions")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "baseline: baseline.json (run *)",
            "optimization: 1 newly failing (regressions), 1 newly passing, 0 still failing, 0 new evals, "
            "0 removed evals, 0 flaky, 0 not run in baseline",
            "  regression: evals/diligence/data_quirks.eval.yaml::aurora-faq-unreliable",
            "  newly passing: evals/diligence/data_quirks.eval.yaml::health-by-legal-entity",
            "gate (regressions): FAILED",
            "  regression: evals/diligence/data_quirks.eval.yaml::aurora-faq-unreliable",
        ]
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(pytester.path)
        assert main(["export", "--history", HISTORY, "latest", "-o", "candidate.json"]) == 0
    exported = {r["eval_id"]: r for r in json.loads((pytester.path / "candidate.json").read_text())["results"]}
    assert exported["aurora-faq-unreliable"]["baseline_status"] == "regressions"
    assert exported["health-by-legal-entity"]["baseline_status"] == "newly_passing"
    assert exported["arr-bridge-does-not-foot"]["baseline_status"] == "unchanged"
    # regression reverted, a pre-existing failure left in place: the gate passes
    _edit(example_copy, "trace-04", "another vendor", '"Aurora"')
    _edit(example_copy, "trace-03", "by legal entity, not parent account", "per entity")
    result = pytester.runpytest("evals", OFF, "--agentloop-baseline=baseline.json", "--agentloop-gate=regressions")
    assert result.ret == 0
    result.assert_outcomes(failed=1, passed=15, skipped=7)
    result.stdout.fnmatch_lines(
        [
            "optimization: 0 newly failing (regressions), 0 newly passing, 1 still failing*",
            "gate (regressions): passed",
            "1 failure excused: already failing in baseline baseline.json (run *)",
            "  excused: evals/diligence/data_quirks.eval.yaml::health-by-legal-entity",
        ]
    )
    # the default policy is plain pytest: any failure fails
    assert pytester.runpytest("evals", OFF, "--agentloop-baseline=baseline.json").ret == 1


def test_must_pass_failure_fails_regressions_gate(pytester, example_copy) -> None:
    _edit(example_copy, "trace-03", "Northstar Holdings", "the parent")  # parent-rollup literal checks fail
    pytester.runpytest("evals", OFF)
    result = pytester.runpytest("evals", OFF, "--agentloop-baseline=latest", "--agentloop-gate=regressions")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["gate (regressions): FAILED", "  must-pass failed: *concentration.eval.yaml::parent-rollup"]
    )


def test_error_fails_regressions_gate(pytester, example_copy, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _edit(example_copy, "trace-02", "$40.8M", "$40.8 million")  # stored verdicts no longer match: replay errors
    pytester.runpytest("evals")
    result = pytester.runpytest("evals", "--agentloop-baseline=latest", "--agentloop-gate=regressions")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["gate (regressions): FAILED", "  error: *arr_source.eval.yaml::*"])


def test_no_baseline_means_every_failure_counts(pytester, example_copy) -> None:
    _edit(example_copy, "trace-04", '"Aurora"', "another vendor")
    result = pytester.runpytest("evals", OFF, "--agentloop-gate=regressions")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["  failed (no baseline to call it pre-existing): *aurora-faq-unreliable"])


def test_history_and_stats_match_outcomes(pytester, example_copy, capsys) -> None:
    outcomes = []
    for broken in (False, True, False, True, True):
        text = _answer(example_copy, "trace-04").read_text()
        _answer(example_copy, "trace-04").write_text(
            text.replace('"Aurora"', "another vendor") if broken else text.replace("another vendor", '"Aurora"')
        )
        pytester.runpytest("evals/diligence/data_quirks.eval.yaml", OFF)  # the file every check below reads
        outcomes.append(not broken)
    history = History(pytester.path / ".agentloop" / "history.sqlite")
    runs = history.runs()
    assert len(runs) == 5 and all(r.git_commit is None or len(r.git_commit) == 40 for r in runs)
    nodeid = "evals/diligence/data_quirks.eval.yaml::aurora-faq-unreliable"
    series = [r.passed for r in history.series()[nodeid]]
    assert series == outcomes
    flips = sum(a != b for a, b in itertools.pairwise(outcomes))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(pytester.path)
        capsys.readouterr()
        assert main(["stats", "--history", HISTORY, "--tag", "data_quirks"]) == 0
    rows = {line.split("\t")[0]: line.split("\t") for line in capsys.readouterr().out.splitlines()[1:]}
    scores = [1.0 if ok else 0.5 for ok in outcomes]  # two assertions; the "Aurora" one fails when broken
    assert rows[nodeid] == [
        nodeid,
        "5",
        f"{sum(outcomes) / 5:.2f}",
        "0.50",
        "1.00",
        f"{sum(scores) / 5:.2f}",
        f"{flips / 4:.2f}",
        "0",
        "-",
        "0",
    ]
    steady = rows["evals/diligence/data_quirks.eval.yaml::arr-bridge-does-not-foot"]
    assert steady[1:8] == ["5", "1.00", "1.00", "1.00", "1.00", "0.00", "5"]
    assert steady[8] == min(r.started for r in runs)  # passing since the first run
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(pytester.path)
        assert main(["stats", "--history", HISTORY, "--split", "holdout"]) == 0
    holdout = capsys.readouterr().out
    assert "kpi-months-missing" in holdout and "arr-bridge-does-not-foot" not in holdout


# An xdist session records one run holding every item: tests/test_handoff.py checks it beside the
# context it writes, in the same -n 2 session.


KILLER = """
import sys
from pathlib import Path
from pytest_agentloop.gate.history import History, RunRow
from pytest_agentloop.results import EvalResult, Outcome

class Halting(list):
    # a result list that, on the second run, stops half-way through the insert and waits to be killed
    def __iter__(self):
        for index, item in enumerate(super().__iter__()):
            if self.halt and index == 1000:
                print("mid-transaction", flush=True)
                sys.stdin.read()
            yield item

history = History(Path(sys.argv[1]))
results = Halting(EvalResult(eval_id=f"e{i}", nodeid=f"f::e{i}", title="t", trace_id="x", trace_label="l",
                             outcome=Outcome.PASSED, score=1.0, explanation="x" * 500) for i in range(2000))
for n, halt in enumerate((False, True)):
    results.halt = halt
    history.record(RunRow(f"run-{n}", "2026", "2026", None, None, None, {}, 0, {}), results)
"""


def test_killed_run_leaves_the_database_consistent(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "mid-transaction\n"  # the second run's rows are half inserted
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        counts = conn.execute("SELECT run_id, COUNT(*) FROM results GROUP BY run_id").fetchall()
        runs = conn.execute("SELECT run_id FROM runs").fetchall()
    assert runs == [("run-0",)]
    assert counts == [("run-0", 2000)]


def test_split_selects_evals(pytester, example_copy) -> None:
    result = pytester.runpytest("evals", OFF, "--agentloop-split=holdout", "-q")
    # 8 holdout evals (6 pass, 2 judged ones skipped with the judge off); the 3 Python evals are optimization ones
    result.assert_outcomes(passed=6, skipped=2, deselected=15)


def test_single_split_tags_warn_once_and_only_when_splits_matter(pytester, eval_file) -> None:
    eval_file("""
        evals:
          - {id: a, title: A, trace: trace-01, tags: [x], split: holdout, assert: [{type: contains, value: runway}]}
          - {id: b, title: B, trace: trace-01, tags: [x, y, z], assert: [{type: contains, value: runway}]}
          - {id: c, title: C, trace: trace-01, tags: [y], assert: [{type: contains, value: runway}]}
    """)
    plain = pytester.runpytest()
    plain.assert_outcomes(passed=3)
    assert "AgentloopWarning" not in plain.stdout.str()  # no split in play: nothing to say
    result = pytester.runpytest("--agentloop-split=optimization")
    result.assert_outcomes(passed=2, deselected=1)
    # one warning for the whole suite; 'z' (a single eval) cannot be split and is not named
    assert result.stdout.str().count("AgentloopWarning") == 1
    result.stdout.fnmatch_lines(["*AgentloopWarning: 1 tag with evals in only one split: 'y' (optimization);*"])


def test_junit_properties_and_step_summary(pytester, example_copy, monkeypatch) -> None:
    summary = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester.runpytest("evals")
    _edit(example_copy, "trace-04", '"Aurora"', "another vendor")
    result = pytester.runpytest(
        "evals",
        "--junitxml=junit.xml",
        "--agentloop-baseline=latest",
        "--agentloop-gate=regressions",
        "--agentloop-report=out/gate.md",
    )
    assert result.ret == 1
    xml = (pytester.path / "junit.xml").read_text()
    for prop in (
        'name="eval_id" value="controlled-arr-preferred"',
        'name="split" value="optimization"',
        'name="verdict_source" value="human:pytest-agentloop example authors"',
        'name="judge_score" value="1.0000"',
        'name="tags" value="arr_source"',
        'name="judge_reason"',
    ):
        assert prop in xml, prop
    text = summary.read_text()
    assert text.count("## agentloop:") == 2
    assert "gate **failed**" in text
    assert ":x: regression (optimization): `evals/diligence/data_quirks.eval.yaml::aurora-faq-unreliable`" in text
    assert (pytester.path / "out" / "gate.md").read_text() in text


def test_split_command_is_deterministic_stratified_and_keeps_files_valid(pytester, eval_file, capsys) -> None:
    eval_file(
        """
        # a comment that must survive
        evals:
          - id: a1
            title: A1
            tags: [alpha]
            trace: trace-01
            assert: [{type: contains, value: runway}]
          - {id: a2, title: A2, tags: [alpha], trace: trace-01, assert: [{type: contains, value: runway}]}
          - {id: a3, title: A3, tags: [alpha], trace: trace-01, split: holdout, assert: [{type: contains, value: runway}]}
          - {id: b1, title: B1, tags: [beta], trace: trace-01, assert: [{type: contains, value: runway}]}
          - {id: b2, title: B2, tags: [beta], trace: trace-01, assert: [{type: contains, value: runway}]}
        """
    )
    assert run_cli("split", ".", "--holdout", "0.3", cwd=pytester.path).returncode == 0
    first = (pytester.path / "suite.eval.yaml").read_text()
    assert run_cli("split", ".", "--holdout", "0.3", cwd=pytester.path).returncode == 0
    assert (pytester.path / "suite.eval.yaml").read_text() == first  # deterministic, nothing moves twice
    assert "# a comment that must survive" in first
    from pytest_agentloop.spec import load_suite

    suite = load_suite(pytester.path / "suite.eval.yaml", 10_000_000)
    by_tag: dict[str, list[str]] = {}
    for spec in suite.evals:
        by_tag.setdefault(spec.tags[0], []).append(spec.split.value)
    assert sorted(by_tag["alpha"]) == ["holdout", "optimization", "optimization"]
    assert sorted(by_tag["beta"]) == ["holdout", "optimization"]
    pytester.runpytest().assert_outcomes(passed=5)


def test_python_test_failures_and_broken_files_are_never_excused(pytester, example_copy) -> None:
    _edit(example_copy, "trace-04", '"Aurora"', "another vendor")
    pytester.runpytest("evals", OFF)  # baseline: aurora-faq-unreliable already failing
    (example_copy / "diligence" / "test_extra.py").write_text("def test_python_fails():\n    assert False\n")
    result = pytester.runpytest("evals", OFF, "--agentloop-baseline=latest", "--agentloop-gate=regressions")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["  not an eval (always counts): *test_extra.py::test_python_fails"])
    (example_copy / "diligence" / "test_extra.py").unlink()
    (example_copy / "diligence" / "broken.eval.yaml").write_text("evals: [")
    result = pytester.runpytest(
        "evals", OFF, "--agentloop-baseline=latest", "--agentloop-gate=regressions", "--continue-on-collection-errors"
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(["  not an eval (always counts): collection"])
    (example_copy / "diligence" / "broken.eval.yaml").unlink()
    result = pytester.runpytest("evals", OFF, "--agentloop-baseline=latest", "--agentloop-gate=regressions")
    assert result.ret == 0


HYBRID = """
    evals:
      - id: judged
        title: Judged
        trace: trace-01
        scoring: hybrid
        rubric: PASS if the runway is named.
        assert: [{type: contains, value: runway}]
"""


def test_an_error_is_never_excused_even_when_the_baseline_failed_that_eval(pytester, eval_file, store) -> None:
    eval_file(HYBRID)
    answer = store / "runs" / "trace-01" / "answer.md"
    answer.write_text("Burn is $2.9M a month.")  # the literal fails: the baseline has the eval failed
    pytester.runpytest().assert_outcomes(failed=1)
    gated = ("--agentloop-baseline=latest", "--agentloop-gate=regressions")
    answer.write_text("The runway is 11 months.")  # literal passes; replay has no verdict for it: an error
    result = pytester.runpytest(*gated)
    result.assert_outcomes(errors=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["gate (regressions): FAILED", "  error: suite.eval.yaml::judged"])
    assert "failure excused" not in result.stdout.str()
    answer.unlink()  # an unreadable trace is an error too, and not excused either
    result = pytester.runpytest(*gated)
    result.assert_outcomes(errors=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*eval judged: *has no answer.md*", "gate (regressions): FAILED", "  error: *judged"])


def test_the_handoff_is_written_after_the_gate_decided(pytester, example_copy) -> None:
    pytester.runpytest("evals", OFF)
    _edit(example_copy, "trace-04", '"Aurora"', "another vendor")
    result = pytester.runpytest(
        "evals", OFF, "--agentloop-baseline=latest", "--agentloop-gate=regressions", "--agentloop-handoff=out/h.md"
    )
    assert result.ret == 1
    [run_dir] = (pytester.path / ".agentloop" / "runs").iterdir()
    rows = {r["eval_id"]: r for r in json.loads((run_dir / "results.json").read_text())}
    assert rows["aurora-faq-unreliable"]["baseline_status"] == "regressions"
    assert rows["arr-bridge-does-not-foot"]["baseline_status"] == "unchanged"
