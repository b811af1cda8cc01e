"""Eval files become pytest items: node ids, markers, -k/-m, ini patterns."""

from __future__ import annotations

import pytest

from conftest import INI

SUITE = """
    agentloop: 1
    defaults: {tags: [finance]}
    evals:
      - id: runway
        title: Names the runway
        trace: trace-01
        tags: [runway]
        assert: [{type: icontains, value: 11 MONTHS}]
      - id: burn
        title: Names the burn
        trace: trace-01
        assert: [{type: contains, value: $2.9M}]
"""


def test_each_eval_is_an_item_with_file_and_id(pytester: pytest.Pytester, eval_file) -> None:
    eval_file(SUITE)
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["suite.eval.yaml::runway", "suite.eval.yaml::burn", "2 tests collected*"])


def test_evals_run_and_pass(pytester: pytest.Pytester, eval_file) -> None:
    eval_file(SUITE)
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*agentloop*", "2 evals: 2 passed"])


def test_tags_are_markers_selectable_with_m(pytester: pytest.Pytester, eval_file) -> None:
    eval_file(SUITE)
    result = pytester.runpytest("-m", "runway", "--strict-markers", "-v")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*::runway PASSED*"])
    assert pytester.runpytest("-m", "finance", "--strict-markers").ret == 0
    pytester.runpytest("-m", "finance").assert_outcomes(passed=2)


def test_k_selects_by_id(pytester: pytest.Pytester, eval_file) -> None:
    eval_file(SUITE)
    pytester.runpytest("-k", "burn").assert_outcomes(passed=1, deselected=1)


def test_markers_listed_for_strict_markers(pytester: pytest.Pytester, eval_file) -> None:
    eval_file(SUITE)
    result = pytester.runpytest("--strict-markers", "-W", "error::pytest.PytestUnknownMarkWarning")
    result.assert_outcomes(passed=2)


def test_other_yaml_is_left_alone(pytester: pytest.Pytester, eval_file) -> None:
    eval_file(SUITE)
    pytester.makefile(".yaml", config="not: [an eval")
    pytester.makefile(".yml", other="evals: 3")
    pytester.runpytest().assert_outcomes(passed=2)


def test_ini_patterns_choose_files(pytester: pytest.Pytester, store) -> None:
    pytester.makefile(".yaml", checks=SUITE)
    pytester.makeini(INI + "agentloop_eval_files = checks.yaml\n")
    pytester.runpytest().assert_outcomes(passed=2)


def test_yml_extension_collected_by_default(pytester: pytest.Pytester, store) -> None:
    pytester.makefile(".eval.yml", suite=SUITE)
    pytester.runpytest().assert_outcomes(passed=2)


def test_reportinfo_points_at_yaml_line(pytester: pytest.Pytester, eval_file) -> None:
    eval_file(SUITE.replace("11 MONTHS", "14 months"))
    result = pytester.runpytest("-rf")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*_ eval: runway _*"])


def test_trace_can_be_given_by_trace_id(pytester: pytest.Pytester, eval_file) -> None:
    from conftest import TRACE_IDS

    eval_file(SUITE.replace("trace: trace-01", f"trace: trace_{TRACE_IDS['trace-01']}", 1))
    pytester.runpytest().assert_outcomes(passed=2)


JUDGED = """
        evals:
          - id: hybrid
            title: Hybrid
            trace: trace-01
            scoring: hybrid
            rubric: PASS if the runway is named.
            assert: [{type: contains, value: runway}]
          - id: hybrid-failing
            title: Hybrid with a failing literal
            trace: trace-01
            scoring: hybrid
            rubric: PASS if the runway is named.
            assert: [{type: contains, value: zebra}]
          - id: judged
            title: Judge only
            trace: trace-01
            scoring: llm_judge
            rubric: PASS if the runway is named.
"""


def test_judge_off_runs_literals_and_skips_rubric(pytester: pytest.Pytester, eval_file) -> None:
    eval_file(JUDGED)
    result = pytester.runpytest("-rs", "--agentloop-judge=off")
    result.assert_outcomes(failed=1, skipped=2)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] suite.eval.yaml:2: rubric not evaluated: the judge is off*"])


def test_replay_without_verdicts_is_an_error_not_a_pass(pytester: pytest.Pytester, eval_file) -> None:
    eval_file(JUDGED)
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1, errors=2)
    result.stdout.fnmatch_lines(
        ["*eval judged: no stored verdict for its rubric on the current output*agentloop label*"]
    )


@pytest.mark.parametrize("flag", ["--collect-only", "--setup-only", "--setup-plan"])
def test_collecting_or_setting_up_calls_no_model_and_records_nothing(
    pytester: pytest.Pytester, eval_file, judge_env, fake_openai, flag: str
) -> None:
    eval_file(JUDGED)
    result = pytester.runpytest(flag, *judge_env, "--agentloop-judge=record")
    assert result.ret == 0
    assert fake_openai.requests == []
    assert not (pytester.path / ".agentloop").exists()
    assert not (pytester.path / "verdicts.jsonl").exists()


FLAG_PROBE = """
def pytest_sessionfinish(session):
    (session.config.rootpath / "flag.txt").write_text(str(session.config.option.continue_on_collection_errors))
"""


def test_a_broken_eval_file_is_a_collection_error_as_pytest_makes_it(pytester: pytest.Pytester, eval_file) -> None:
    eval_file(SUITE)
    eval_file("evals: [{id: broken", name="broken")
    pytester.makeconftest(FLAG_PROBE)
    stopped = pytester.runpytest()
    assert stopped.ret == pytest.ExitCode.INTERRUPTED  # pytest's own rule: collection errors stop the session
    stopped.stdout.fnmatch_lines(["*broken.eval.yaml:2: malformed YAML*", "*Interrupted: 1 error during collection*"])
    assert (pytester.path / "flag.txt").read_text() == "False"  # the plugin leaves pytest's settings alone
    going_on = pytester.runpytest("--continue-on-collection-errors")
    going_on.assert_outcomes(passed=2, errors=1)
    assert going_on.ret == 1


def test_judge_progress_printed_on_change_only_never_into_captured_output(
    pytester: pytest.Pytester, eval_file, judge_env, fake_openai, monkeypatch
) -> None:
    from pytest_agentloop.judge import planner

    from conftest import verdict_reply

    monkeypatch.setattr(planner, "PROGRESS_EVERY", 0.02)  # our own pacing constant: many progress calls while waiting
    eval_file(JUDGED.split("      - id: hybrid-failing")[0])
    fake_openai.push(verdict_reply(delay=0.5))
    result = pytester.runpytest(*judge_env, "--agentloop-judge=record", "-rA")
    result.assert_outcomes(passed=1)
    lines = [line for line in result.stdout.lines if "waiting for the judge" in line]
    assert lines == ["agentloop: waiting for the judge: 0/1 rubric verdicts resolved"]
    assert "Captured stdout" not in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (["--agentloop-concurrency=many"], "", "ERROR: --agentloop-concurrency: expected a whole number, got 'many'"),
        (
            ["--agentloop-judge-timeout=nan"],
            "",
            "ERROR: --agentloop-judge-timeout: expected a finite number, got 'nan'",
        ),
        (
            [],
            "agentloop_judge_timeout = inf\n",
            "ERROR: ini agentloop_judge_timeout: expected a finite number, got 'inf'",
        ),
        (
            [],
            "agentloop_split = holdotu\n",
            "ERROR: ini agentloop_split: 'holdotu' is not one of optimization, holdout",
        ),
        (["--agentloop-gate=sometimes"], "", "ERROR: --agentloop-gate: 'sometimes' is not one of all, regressions"),
    ],
)
def test_a_bad_setting_names_the_option_or_ini_value(
    pytester: pytest.Pytester, eval_file, args: list[str], ini: str, message: str
) -> None:
    eval_file(SUITE)
    pytester.makeini(INI + ini)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
