"""Opt-in checks against a real model endpoint; skipped unless AGENTLOOP_LIVE=1 and a key are set."""

from __future__ import annotations

import os

import pytest

_enabled = os.environ.get("AGENTLOOP_LIVE") == "1" and bool(os.environ.get("OPENAI_API_KEY"))
_skip = pytest.mark.skipif(
    not _enabled,
    reason="live model tests are opt-in: set AGENTLOOP_LIVE=1 and OPENAI_API_KEY (AGENTLOOP_JUDGE_MODEL optional)",
)


def live(test):  # type: ignore[no-untyped-def]
    """Opt-in, and exempt from the suite's clearing of model variables."""
    return pytest.mark.live_model(_skip(test))


@live
def test_real_judge_grades_the_example(pytester, example_copy) -> None:
    (example_copy / "diligence" / "verdicts.jsonl").unlink()
    result = pytester.runpytest("evals", "-k", "soc2-type-precision", "--agentloop-judge=record")
    result.assert_outcomes(passed=1, deselected=result.parseoutcomes()["deselected"])
    stored = (example_copy / "diligence" / "verdicts.jsonl").read_text()
    assert '"source": "model:' in stored
    assert os.environ["OPENAI_API_KEY"] not in stored


@live
def test_real_halo_writes_a_checked_handoff(pytester, example_copy) -> None:
    result = pytester.runpytest_subprocess("evals", "--agentloop-handoff=out/handoff.md", timeout=1200)
    result.stdout.fnmatch_lines(["handoff (*): *out/handoff.md"])
    assert (pytester.path / "out" / "handoff.md").read_text().startswith(("<!--", "# Handoff"))


@live
def test_real_analyst_runs_live_on_one_question(pytester, example_copy) -> None:
    result = pytester.runpytest(
        "evals", "-k", "runway-named", "--agentloop-live", "-o", "agentloop_agent=harness",
        "-o", "agentloop_harness=evals/diligence/harness.yaml", "--agentloop-live-timeout=900",
    )  # fmt: skip
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 1, result.stdout.str()[-2000:]
    [record] = (pytester.path / ".agentloop" / "runs").glob("*/traces/runs/trace-01/record.json")
    assert '"status": "ok"' in record.read_text()
    assert os.environ["OPENAI_API_KEY"] not in "".join(p.read_text() for p in record.parent.rglob("*") if p.is_file())
