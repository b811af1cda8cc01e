"""The run history: schema versions and migration, the typed record it keeps, and honesty when it cannot be used."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pytest_agentloop.gate.history import SCHEMA_VERSION, History

SUITE = """
    evals:
      - {id: runway, title: Runway, trace: trace-01, tags: [a], assert: [{type: contains, value: runway}]}
      - {id: burn, title: Burn, trace: trace-01, tags: [b], assert: [{type: icontains, value: $2.9m}]}
"""
GATED = ("--agentloop-baseline=latest", "--agentloop-gate=regressions")

# The schema pytest-agentloop wrote before schema versions existed (user_version 0).
V1_SCHEMA = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, started TEXT NOT NULL, finished TEXT NOT NULL, git_commit TEXT,
    git_branch TEXT, harness_version TEXT, options TEXT NOT NULL, exit_status INTEGER);
CREATE TABLE results (run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE, nodeid TEXT NOT NULL,
    eval_id TEXT NOT NULL, title TEXT, trace_id TEXT, trace_label TEXT, tags TEXT NOT NULL, split TEXT NOT NULL,
    must_pass INTEGER NOT NULL, scoring TEXT, outcome TEXT NOT NULL, score REAL, verdict_source TEXT, duration REAL,
    repeats INTEGER, flaky INTEGER NOT NULL DEFAULT 0, input_tokens INTEGER, output_tokens INTEGER, cost REAL,
    explanation TEXT, PRIMARY KEY (run_id, nodeid));
INSERT INTO runs VALUES ('20260101-000000-aaaaaa', '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z', NULL, NULL,
    'v001', '{}', 1);
INSERT INTO results VALUES ('20260101-000000-aaaaaa', 'suite.eval.yaml::runway', 'runway', 'Runway', 'x', 'trace-01',
    'a', 'optimization', 0, 'deterministic', 'failed', 0.0, NULL, 0.1, 1, 0, NULL, NULL, NULL, 'old failure');
"""


def _history(pytester: pytest.Pytester) -> History:
    return History(pytester.path / ".agentloop" / "history.sqlite")


def test_a_history_of_the_first_schema_is_migrated_and_read(pytester: pytest.Pytester, eval_file) -> None:
    eval_file(SUITE)
    path = pytester.path / ".agentloop" / "history.sqlite"
    path.parent.mkdir()
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_SCHEMA)
    result = pytester.runpytest("--agentloop-baseline=20260101", "--agentloop-gate=regressions")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*1 newly passing*", "  newly passing: suite.eval.yaml::runway"])
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    history = _history(pytester)
    old, new = sorted(history.runs(), key=lambda r: r.started)
    [old_row] = history.results(old.run_id)
    assert (old_row.outcome.value, old_row.explanation, old_row.assertions) == ("failed", "old failure", ())
    assert new.baseline_ref == "20260101-000000-aaaaaa"
    assert history.selection(old.run_id).selected == ()


def test_the_record_keeps_what_later_stages_need(pytester: pytest.Pytester, eval_file, capsys) -> None:
    from pytest_agentloop.cli import main

    eval_file(SUITE)
    pytester.runpytest("-m", "a").assert_outcomes(passed=1, deselected=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(pytester.path)
        assert main(["export", "latest", "--history", ".agentloop/history.sqlite", "-o", "run.json"]) == 0
    document = json.loads((pytester.path / "run.json").read_text())
    assert document["format"] == 2
    assert document["selection"] == {"selected": ["suite.eval.yaml::runway"], "deselected": ["suite.eval.yaml::burn"]}
    [row] = document["results"]
    assert row["format"] == 2
    assert (row["question"], row["harness_version"], row["trace_store"]) == ("question of trace-01?", "v001", "traces")
    assert (row["eval_file"], row["literal_score"], row["judge_score"], row["cost"]) == (
        "suite.eval.yaml",
        1.0,
        None,
        None,
    )
    [assertion] = row["assertions"]
    assert assertion["type"] == "contains" and assertion["line"] == 2 and assertion["passed"] is True
    assert assertion["expected"] == "output contains 'runway'"


@pytest.mark.parametrize("damage", ["corrupt", "directory", "under a file"])
def test_an_unusable_history_is_an_error_never_a_claim(pytester: pytest.Pytester, eval_file, damage: str) -> None:
    eval_file(SUITE)
    pytester.runpytest().assert_outcomes(passed=2)
    path = pytester.path / ".agentloop" / "history.sqlite"
    for leftover in path.parent.glob("history.sqlite*"):
        leftover.unlink()
    if damage == "corrupt":
        path.write_bytes(b"\x93not a database" * 300)
    elif damage == "directory":
        path.mkdir()
    else:
        path.parent.rmdir()
        path.parent.write_text("a file where the folder should be")
    gated = pytester.runpytest(*GATED)
    assert gated.ret == pytest.ExitCode.USAGE_ERROR
    gated.stderr.fnmatch_lines(["ERROR: agentloop: *history.sqlite*"])
    assert "passed" not in gated.stdout.str()  # stopped before any eval ran
    plain = pytester.runpytest()  # no gate asked for: the evals' outcome stands, the failure to record is said
    plain.assert_outcomes(passed=2)
    assert plain.ret == 0
    plain.stdout.fnmatch_lines(["agentloop: run history not written: *history.sqlite*"])
    assert "recorded" not in plain.stdout.str()
    gate_only = pytester.runpytest("--agentloop-gate=all")  # a gate asked for: a write that fails fails the session
    assert gate_only.ret == pytest.ExitCode.USAGE_ERROR


def test_a_baseline_that_cannot_be_read_stops_the_session(pytester: pytest.Pytester, eval_file) -> None:
    eval_file(SUITE)
    first = pytester.runpytest("--agentloop-baseline=latest")  # no history yet
    assert first.ret == pytest.ExitCode.USAGE_ERROR
    first.stderr.fnmatch_lines(["ERROR: agentloop: baseline 'latest' asked for, but there is no run history*"])
    pytester.runpytest().assert_outcomes(passed=2)
    missing = pytester.runpytest("--agentloop-baseline=20990101-nosuchrun")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["ERROR: agentloop: no run '20990101-nosuchrun' in the history at *"])
    (pytester.path / "bad.json").write_text("{not json")
    unreadable = pytester.runpytest("--agentloop-baseline=bad.json")
    assert unreadable.ret == pytest.ExitCode.USAGE_ERROR
    unreadable.stderr.fnmatch_lines(["ERROR: agentloop: bad.json: baseline is not a readable results export*"])
    assert len(_history(pytester).runs()) == 1


def test_latest_means_the_latest_run_covering_the_selection(pytester: pytest.Pytester, eval_file) -> None:
    eval_file(SUITE)
    pytester.runpytest("-m", "a").assert_outcomes(passed=1, deselected=1)  # only a partial run so far
    partial = pytester.runpytest(*GATED)
    partial.stdout.fnmatch_lines(
        [
            "baseline: * (latest run; no run covers this selection)",
            "  the baseline run has no result for 1 of the selected evals:",
            "    suite.eval.yaml::burn",
            "optimization: 0 newly failing (regressions), 0 newly passing, 0 still failing, 0 new evals, "
            "0 removed evals, 0 flaky, 1 not run in baseline",
        ]
    )
    full_run = _history(pytester).runs()[0].run_id
    pytester.runpytest("-m", "b").assert_outcomes(passed=1, deselected=1)  # newer, but partial again
    covered = pytester.runpytest(*GATED)
    covered.stdout.fnmatch_lines(
        [
            f"baseline: {full_run} (latest run covering this selection)",
            "optimization: 0 newly failing (regressions), 0 newly passing, 0 still failing, 0 new evals, "
            "0 removed evals, 0 flaky, 0 not run in baseline",
        ]
    )
    subset = pytester.runpytest("-m", "a", *GATED)  # deselected here: not "removed"
    subset.stdout.fnmatch_lines(["optimization: * 0 new evals, 0 removed evals, 0 flaky, 0 not run in baseline"])


def test_stats_count_outcome_flips_not_infrastructure_errors(pytester: pytest.Pytester, eval_file, store, capsys):
    from pytest_agentloop.cli import main

    eval_file("evals:\n  - {id: runway, title: R, trace: trace-01, assert: [{type: contains, value: runway}]}\n")
    answer = store / "runs" / "trace-01" / "answer.md"
    for text in ("runway", None, "runway", "no", None):  # pass, error, pass, fail, error
        if text is None:
            answer.unlink()
        else:
            answer.write_text(text)
        pytester.runpytest()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(pytester.path)
        capsys.readouterr()
        assert main(["stats", "--history", ".agentloop/history.sqlite"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split("\t")[-1] == "errors"
    # three outcomes (pass, pass, fail): one flip in two pairs; the two errors are counted apart
    assert row.split("\t") == ["suite.eval.yaml::runway", "3", "0.67", "0.00", "1.00", "0.67", "0.50", "0", "-", "2"]


def test_history_path_from_a_relative_ini_value_is_the_one_the_cli_reads(pytester: pytest.Pytester, eval_file) -> None:
    from conftest import INI

    eval_file(SUITE)
    pytester.makeini(INI + "agentloop_history = runs/h.sqlite\n")
    pytester.runpytest().assert_outcomes(passed=2)
    assert History(Path(pytester.path / "runs" / "h.sqlite")).runs()[0].counts == {"passed": 2}
