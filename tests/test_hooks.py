"""Extension points: plugin assertion types, the results hook, the handoff hook."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

CONFTEST = """
import json
from pytest_agentloop.assertions.registry import AssertionType, Outcome

def _mentions(value, given):
    found = value.lower() in given.text.lower()
    return Outcome(found, f"output mentions {value}", "yes" if found else "no")

def _validate(value):
    if not isinstance(value, str):
        raise ValueError("expected a company name")

MENTIONS = AssertionType("mentions-company", _mentions, _validate)

def pytest_agentloop_assertion_types(config):
    return [MENTIONS]

def pytest_agentloop_results(config, results):
    (config.rootpath / "results.json").write_text(json.dumps([r.to_json() for r in results]))

def pytest_agentloop_handoff(config, outcome):
    (config.rootpath / "handoff-path.txt").write_text(str(outcome.handoff))
"""


def test_plugin_assertion_type_and_hooks(pytester: pytest.Pytester, eval_file, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester.makeconftest(CONFTEST)
    eval_file(
        """
        evals:
          - {id: ok, title: OK, trace: trace-01, assert: [{type: mentions-company, value: RUNWAY}]}
          - {id: negated, title: N, trace: trace-01, assert: [{type: not-mentions-company, value: runway}]}
        """
    )
    result = pytester.runpytest("--agentloop-handoff=out/h.md")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*expected: NOT (output mentions runway)*"])
    rows = json.loads((pytester.path / "results.json").read_text())
    assert {r["eval_id"]: r["outcome"] for r in rows} == {"ok": "passed", "negated": "failed"}
    assert (pytester.path / "handoff-path.txt").read_text().endswith("out/h.md")


def test_plugin_assertion_value_is_validated(pytester: pytest.Pytester, eval_file) -> None:
    pytester.makeconftest(CONFTEST)
    eval_file("evals:\n  - {id: x, title: X, trace: trace-01, assert: [{type: mentions-company, value: [1]}]}\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*field 'value': expected a company name*"])


def test_clashing_assertion_name_is_a_usage_error(pytester: pytest.Pytester, eval_file) -> None:
    pytester.makeconftest(
        "from pytest_agentloop.assertions.registry import AssertionType, Outcome\n"
        "def pytest_agentloop_assertion_types(config):\n"
        "    return [AssertionType('contains', lambda v, g: Outcome(True, '', ''), lambda v: None)]\n"
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*assertion type 'contains' is already registered*"])


SUPPORT_CONFTEST = """
from pytest_agentloop.assertions.registry import AssertionType, Outcome

def _mentions(value, given):
    found = value.lower() in given.text.lower()
    return Outcome(found, f"output mentions {value}", "yes" if found else "no")

def pytest_agentloop_assertion_types(config):
    return [AssertionType("mentions-company", _mentions, lambda value: None)]
"""
USES_TYPE = "evals:\n  - {id: m, title: M, trace: trace-01, assert: [{type: mentions-company, value: runway}]}\n"


@pytest.fixture
def deep(pytester: pytest.Pytester, store) -> pytest.Pytester:
    """evals/support/conftest.py offers a type; evals/support/uses.eval.yaml uses it."""
    support = pytester.mkdir("evals").joinpath("support")
    support.mkdir()
    (support / "conftest.py").write_text(SUPPORT_CONFTEST)
    (support / "uses.eval.yaml").write_text(USES_TYPE)
    return pytester


def test_a_type_from_a_conftest_at_any_depth_resolves_from_the_root(deep: pytest.Pytester) -> None:
    deep.runpytest("evals").assert_outcomes(passed=1)
    deep.runpytest("evals/support").assert_outcomes(passed=1)
    deep.runpytest().assert_outcomes(passed=1)
    # a conftest applies to its folder and below, as pytest's conftests do
    (deep.path / "evals" / "above.eval.yaml").write_text(USES_TYPE)
    result = deep.runpytest("evals", "--continue-on-collection-errors")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*above.eval.yaml:2: *unknown assertion type 'mentions-company'*"])


def test_plugin_types_never_reach_process_wide_state(pytester: pytest.Pytester, eval_file) -> None:
    pytester.makeconftest(CONFTEST)
    eval_file("evals:\n  - {id: ok, title: OK, trace: trace-01, assert: [{type: mentions-company, value: RUNWAY}]}\n")
    pytester.makepyfile(
        test_state="""
        from pytest_agentloop.assertions import lookup, names

        def test_the_builtin_table_is_untouched():
            assert lookup("mentions-company") is None
            assert "mentions-company" not in names()
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)
    from pytest_agentloop.assertions import lookup

    assert lookup("mentions-company") is None


def _cli(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """The agentloop command in the pytester folder, in this process (the folder's conftest is forgotten after)."""
    done = run_cli(*args, cwd=pytester.path)
    return pytest.RunResult(done.returncode, done.stdout.splitlines(), done.stderr.splitlines(), 0.0)


def test_the_cli_resolves_conftest_types_as_pytest_does(deep: pytest.Pytester) -> None:
    validate = _cli(deep, "validate", "evals")
    assert validate.ret == 0, validate.stderr.str()
    validate.stdout.fnmatch_lines(["evals/support/uses.eval.yaml: 1 evals ok"])
    split = _cli(deep, "split", "evals", "--dry-run")
    assert split.ret == 0, split.stderr.str()
    split.stdout.fnmatch_lines(["* optimization *uses.eval.yaml::m (tag -)", "dry run: nothing written"])
    judged = "evals:\n  - {id: j, title: J, trace: trace-01, scoring: hybrid, rubric: R, assert: [{type: mentions-company, value: runway}]}\n"
    (deep.path / "evals" / "support" / "judged.eval.yaml").write_text(judged)
    label = _cli(deep, "label", "evals/support/judged.eval.yaml::j", "--pass", "--reason", "names it", "--by", "ana")
    assert label.ret == 0, label.stderr.str()
    prune = _cli(deep, "verdicts", "prune", "evals")
    assert prune.ret == 0, prune.stderr.str()
    prune.stdout.fnmatch_lines(["*verdicts.jsonl: removed 0 unused verdicts"])
    deep.runpytest("evals").assert_outcomes(passed=2)  # the person's verdict serves the judged eval


def test_agentloop_assert_hides_its_own_frame(pytester: pytest.Pytester, store) -> None:
    pytester.makepyfile(
        test_py_eval="""
        import pytest

        @pytest.mark.agentloop_trace("trace-01")
        def test_names_the_cash(agentloop_assert):
            agentloop_assert("icontains", "cash balance")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ['>       agentloop_assert("icontains", "cash balance")', "E   *AssertionError: icontains*"]
    )
    assert "plugin.py" not in result.stdout.str()
    assert "def check(" not in result.stdout.str()
