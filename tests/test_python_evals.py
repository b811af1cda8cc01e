"""Python evals (tests that use ``agentloop_trace``) are agentloop results: counted, gated, recorded, reported."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_agentloop.gate.history import History
from pytest_agentloop.results import EvalResult

from conftest import EXAMPLE, TRACE_IDS

HISTORY = ".agentloop/history.sqlite"
GATED = ("--agentloop-baseline=latest", "--agentloop-gate=regressions")

PYEVALS = '''
import pytest

@pytest.mark.agentloop_trace("trace-01")
@pytest.mark.finance
def test_names_the_runway(agentloop_output):
    """The answer names the runway.

    Said in months."""
    assert "11 months" in agentloop_output

@pytest.mark.agentloop_trace("trace-01")
def test_names_a_zebra(agentloop_output):
    assert "zebra" in agentloop_output

def test_plain():
    pass
'''


def _results(path: Path) -> dict[str, EvalResult]:
    """The latest run's results in the history, by eval id, without what differs between runs."""
    history = History(path / HISTORY)
    run = history.runs(limit=1)[0]
    return {r.eval_id: replace(r, duration=0.0, run_started=None) for r in history.results(run.run_id)}


def _properties(junit: Path) -> dict[str, dict[str, str]]:
    return {
        str(case.get("name")): {str(p.get("name")): str(p.get("value")) for p in case.iter("property")}
        for case in ET.parse(junit).iter("testcase")
    }


@pytest.mark.parametrize("options", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_python_evals_are_counted_recorded_and_named(pytester: pytest.Pytester, store: Path, options) -> None:
    pytester.makepyfile(test_memo=PYEVALS)
    result = pytester.runpytest("-p", "no:randomly", "--junitxml=out.xml", *options)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["2 evals: 1 passed, 1 failed"])
    rows = _results(pytester.path)
    assert set(rows) == {"test_names_the_runway", "test_names_a_zebra"}  # the plain test is no eval
    runway, zebra = rows["test_names_the_runway"], rows["test_names_a_zebra"]
    assert (runway.nodeid, runway.title, runway.tags) == (
        "test_memo.py::test_names_the_runway",
        "The answer names the runway.",
        ("finance",),
    )
    assert (zebra.title, zebra.outcome.value, zebra.tags) == ("test_names_a_zebra", "failed", ())
    assert "zebra" in zebra.explanation
    for row in (runway, zebra):
        assert (row.trace_id, row.trace_label, row.harness_version) == (TRACE_IDS["trace-01"], "trace-01", "v001")
        assert (row.scoring, row.split, row.must_pass) == ("python", "optimization", False)
        assert (row.eval_file, row.trace_store, row.question) == ("test_memo.py", "traces", "question of trace-01?")
    properties = _properties(pytester.path / "out.xml")
    assert (
        properties["test_names_a_zebra"] | {"trace_id": TRACE_IDS["trace-01"], "scoring": "python"}
        == (properties["test_names_a_zebra"])
    )
    assert properties["test_plain"] == {}


def test_xdist_records_what_a_serial_run_records(pytester: pytest.Pytester, store: Path) -> None:
    pytester.makepyfile(test_memo=PYEVALS)
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2, failed=1)
    serial = _results(pytester.path)
    pytester.runpytest("-p", "no:randomly", "-n", "2").assert_outcomes(passed=2, failed=1)
    assert _results(pytester.path) == serial and len(serial) == 2


def test_a_failing_python_eval_is_a_regression_then_excused_while_a_plain_test_always_counts(
    pytester: pytest.Pytester, store: Path
) -> None:
    answer = store / "runs" / "trace-01" / "answer.md"
    told = answer.read_text()
    answer.write_text(told + " A zebra ate it.")
    pytester.makepyfile(test_memo=PYEVALS.replace("def test_plain():\n    pass", "def test_plain():\n    assert 0"))
    pytester.runpytest("--deselect=test_memo.py::test_plain").assert_outcomes(passed=2)  # the baseline
    answer.write_text(told)
    result = pytester.runpytest(*GATED)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "optimization: 1 newly failing (regressions), 0 newly passing, 0 still failing*",
            "gate (regressions): FAILED",
            "  regression: test_memo.py::test_names_a_zebra",
            "  not an eval (always counts): test_memo.py::test_plain",
        ]
    )
    assert "not an eval (always counts): test_memo.py::test_names_a_zebra" not in result.stdout.str()
    again = pytester.runpytest(*GATED, "--deselect=test_memo.py::test_plain")  # the failure is now pre-existing
    assert again.ret == 0
    again.stdout.fnmatch_lines(["gate (regressions): passed", "  excused: test_memo.py::test_names_a_zebra"])


def test_a_must_pass_python_eval_is_never_excused(pytester: pytest.Pytester, store: Path) -> None:
    pytester.makepyfile(
        test_memo=PYEVALS.replace("def test_names_a_zebra", "@pytest.mark.agentloop_must_pass\ndef test_names_a_zebra")
    )
    pytester.runpytest().assert_outcomes(passed=2, failed=1)  # the baseline fails it too
    result = pytester.runpytest(*GATED)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["gate (regressions): FAILED", "  must-pass failed: test_memo.py::test_names_a_zebra"])
    assert _results(pytester.path)["test_names_a_zebra"].must_pass


def test_a_python_eval_whose_run_is_missing_is_an_error_naming_its_label(pytester: pytest.Pytester, store) -> None:
    pytester.makepyfile(
        "import pytest\n@pytest.mark.agentloop_trace('trace-42')\ndef test_x(agentloop_output):\n    pass\n"
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no recorded run 'trace-42' (known: trace-01)*", "1 evals: 1 error"])
    row = _results(pytester.path)["test_x"]
    assert (row.outcome.value, row.trace_id, row.trace_label, row.scoring) == ("error", "", "trace-42", "python")
    assert "no recorded run 'trace-42'" in row.explanation


def test_a_python_eval_is_in_the_optimization_split(pytester: pytest.Pytester, store: Path) -> None:
    pytester.makepyfile(test_memo=PYEVALS)
    held = pytester.runpytest("--agentloop-split=holdout")
    held.assert_outcomes(passed=1, deselected=2)  # the plain test still runs
    tuned = pytester.runpytest("--agentloop-split=optimization")
    tuned.assert_outcomes(passed=2, failed=1)
    tuned.stdout.fnmatch_lines(["2 evals: 1 passed, 1 failed"])


def test_the_handoff_diagnoses_a_failing_python_eval_with_its_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the evidence-only handoff
    shutil.copytree(EXAMPLE / "diligence" / "traces", pytester.path / "traces")  # captured runs, with their agent spans
    pytester.makepyfile(
        test_memo="""
        import pytest

        @pytest.mark.agentloop_trace("trace-01")
        def test_names_a_zebra(agentloop_output):
            assert "zebra" in agentloop_output
        """
    )
    pytester.runpytest("--agentloop-handoff=out/handoff.md").assert_outcomes(failed=1)
    handoff = (pytester.path / "out" / "handoff.md").read_text()
    assert "| optimization | 1 | 0 | 1 | 0 | 0 |" in handoff
    context = (pytester.path / "out" / "handoff.context.jsonl").read_text()
    assert context.count('"name": "EVAL_RESULT"') == 1 and '"name": "read_file"' in context  # the run's own spans
