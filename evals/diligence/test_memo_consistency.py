"""Python evals read the same recorded runs through fixtures."""

import json

import pytest


@pytest.mark.agentloop_trace("trace-02")
def test_memo_uses_the_controlled_arr(agentloop_artifacts, agentloop_assert):
    memo = (agentloop_artifacts / "investment_memo.md").read_text()
    assert "$36.9M" in memo
    agentloop_assert("icontains", "controlled ARR")


@pytest.mark.agentloop_trace("trace-03")
def test_every_risk_has_evidence(agentloop_artifacts):
    risks = json.loads((agentloop_artifacts / "risk_register.json").read_text())
    assert all(risk["evidence"] for risk in risks)


@pytest.mark.agentloop_trace("trace-05")
def test_summary_matches_the_answer(agentloop_output, agentloop_artifacts):
    assert (agentloop_artifacts / "summary_answer.md").read_text() == agentloop_output
