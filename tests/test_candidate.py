"""The bundled example's candidate store: one option grades a regressed harness version against the baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli

CANDIDATE = ["--agentloop-traces=traces-candidate", "--agentloop-baseline=latest", "--agentloop-gate=regressions"]


def test_candidate_store_is_hand_written_v002(example_copy: Path) -> None:
    records = [
        json.loads(p.read_text()) for p in sorted(example_copy.glob("diligence/traces-candidate/runs/*/record.json"))
    ]
    assert len(records) == 5
    assert {r["harness_version"] for r in records} == {"v002"}
    assert {r["provenance"]["source"] for r in records} == {"hand-written"}
    baseline_ids = {
        json.loads(p.read_text())["trace_id"] for p in example_copy.glob("diligence/traces/runs/*/record.json")
    }
    assert baseline_ids.isdisjoint(r["trace_id"] for r in records)


def test_candidate_regresses_one_literal_and_one_rubric_eval(
    pytester: pytest.Pytester, example_copy, monkeypatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester.runpytest("evals").assert_outcomes(passed=23)
    result = pytester.runpytest("evals", *CANDIDATE)
    assert result.ret == 1
    result.assert_outcomes(passed=21, failed=2)
    result.stdout.fnmatch_lines(
        [
            "  rubric FAILED by human:pytest-agentloop example authors: score 0.20 (threshold 0.8)",
            "  FAILED evals/diligence/data_quirks.eval.yaml:*: contains",
            "      expected: output contains 'Aurora'",
            "optimization: 2 newly failing (regressions), 0 newly passing, *",
            "  regression: evals/diligence/concentration.eval.yaml::parent-rollup",
            "  regression: evals/diligence/data_quirks.eval.yaml::aurora-faq-unreliable",
            "gate (regressions): FAILED",
        ]
    )


def test_labels_on_the_candidate_store_count_as_in_use(pytester: pytest.Pytester, example_copy: Path) -> None:
    """Verdicts on another trace store's runs are neither reported unused nor pruned."""
    store = example_copy / "diligence" / "verdicts.jsonl"
    before = store.read_bytes()
    result = pytester.runpytest("evals")
    assert result.ret == 0
    assert "not used by any collected eval" not in result.stdout.str()
    pruned = run_cli("verdicts", "prune", "evals", cwd=pytester.path)
    assert pruned.returncode == 0
    pytest.LineMatcher(pruned.stdout.splitlines()).fnmatch_lines(["*removed 0*"])
    assert store.read_bytes() == before
