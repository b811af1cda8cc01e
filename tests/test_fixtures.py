"""Python evals read recorded runs through the agentloop_* fixtures."""

from __future__ import annotations

import pytest


def test_fixtures_give_record_output_and_artifacts(pytester: pytest.Pytester, store) -> None:
    pytester.makepyfile(
        """
        import json
        import pytest

        @pytest.mark.agentloop_trace("trace-01")
        def test_reads(agentloop_store, agentloop_trace, agentloop_output, agentloop_artifacts):
            assert len(agentloop_store) == 1
            assert agentloop_trace.label == "trace-01"
            assert "11 months" in agentloop_output
            assert json.loads((agentloop_artifacts / "citations.json").read_text())[0]["claim_id"] == "C1"

        @pytest.mark.agentloop_trace("trace-01")
        def test_assert_helper(agentloop_assert):
            agentloop_assert("icontains", "RUNWAY")
            agentloop_assert("json-shape", {"keys": ["evidence"]}, artifact="risk_register.json")
            agentloop_assert("contains", "zebra")
        """
    )
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["E * contains: expected output contains 'zebra'", "E * seen: no part of 'zebra'*"])


def test_marker_on_class_applies_to_methods(pytester: pytest.Pytester, store) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.agentloop_trace("trace-01")
        class TestRun:
            def test_answer(self, agentloop_output):
                assert "$2.9M" in agentloop_output
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_missing_marker_says_what_to_do(pytester: pytest.Pytester, store) -> None:
    pytester.makepyfile("def test_x(agentloop_output):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*mark the test with @pytest.mark.agentloop_trace*"])


def test_conftest_can_override_the_trace_fixture(pytester: pytest.Pytester, store) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def agentloop_trace(agentloop_store):
            return agentloop_store.get("trace-01")
        """
    )
    pytester.makepyfile("def test_x(agentloop_output):\n    assert 'runway' in agentloop_output\n")
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_python_evals_junit_properties_name_its_run(pytester: pytest.Pytester, store) -> None:
    import xml.etree.ElementTree as ET

    from conftest import TRACE_IDS

    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.agentloop_trace("trace-01")
        def test_reads(agentloop_output):
            assert "11 months" in agentloop_output

        @pytest.mark.agentloop_trace("trace-01")
        def test_fails(agentloop_assert):
            agentloop_assert("contains", "zebra")

        def test_plain():
            pass
        """
    )
    pytester.runpytest("--junitxml=out.xml").assert_outcomes(passed=2, failed=1)
    properties = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ET.parse(pytester.path / "out.xml").iter("testcase")
    }
    named = {"trace_id": TRACE_IDS["trace-01"], "trace_label": "trace-01", "harness_version": "v001"}
    described = {"tags": "", "split": "optimization", "scoring": "python", "must_pass": "false"}
    assert properties == {
        "test_reads": {"eval_id": "test_reads", **described, **named},
        "test_fails": {"eval_id": "test_fails", **described, **named},
        "test_plain": {},
    }
