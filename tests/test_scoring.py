"""Scoring the way Promptfoo does: weighted mean, all-must-pass or a threshold, named metrics."""

from __future__ import annotations

import pytest

SUITE = """
    evals:
      - id: weighted
        title: Weighted
        trace: trace-01
        {threshold_line}
        assert:
          - {{type: contains, value: runway, weight: 3, metric: facts}}
          - {{type: contains, value: zebra, weight: 1, metric: facts}}
          - {{type: contains, value: unicorn, weight: 0}}
"""


@pytest.mark.parametrize(
    ("threshold_line", "outcome", "summary"),
    [
        ("", "failed", "*1/2 assertions passed, score 0.75 (all assertions must pass)"),
        ("assertion_threshold: 0.75", "passed", None),
        ("assertion_threshold: 0.76", "failed", "*score 0.75 (weighted score must reach 0.76)"),
    ],
)
def test_weighted_score_and_threshold(
    pytester: pytest.Pytester, eval_file, threshold_line: str, outcome: str, summary: str | None
) -> None:
    eval_file(SUITE.format(threshold_line=threshold_line))
    result = pytester.runpytest()
    result.assert_outcomes(**{outcome: 1})
    if summary:
        result.stdout.fnmatch_lines([summary, "*FAILED suite.eval.yaml:8: contains", "*metrics: facts=0.75*"])


def test_weight_zero_failure_is_shown_in_verbose_but_not_counted(pytester: pytest.Pytester, eval_file) -> None:
    eval_file(SUITE.format(threshold_line=""))
    result = pytester.runpytest("-vv")
    result.stdout.fnmatch_lines(["*FAILED (weight 0, not counted) suite.eval.yaml:9: contains"])
