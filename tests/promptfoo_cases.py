"""Eval suites shared by the Promptfoo tests: every literal type, passing and failing."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import CONTRACT_ARTIFACTS, write_dataroom, write_run

ANSWER = "Burn is $2.9M a month; runway is 11 months."
JSON_ANSWER = json.dumps({"runway_months": 11, "burn": "$2.9M"})

# eval id -> (assertion list as YAML flow text, expected outcome under pytest)
LITERALS: dict[str, tuple[str, str]] = {
    "contains-pass": ("[{type: contains, value: $2.9M, metric: burn}]", "passed"),
    "contains-fail": ("[{type: contains, value: $3.1M}]", "failed"),
    "not-contains-fail": ("[{type: not-contains, value: runway}]", "failed"),
    "icontains-pass": ("[{type: icontains, value: RUNWAY IS}]", "passed"),
    "contains-any-comma": ("[{type: contains-any, value: 'nothing, runway'}]", "passed"),
    "icontains-any-fail": ("[{type: icontains-any, value: [FOO, BAR]}]", "failed"),
    "contains-all-pass": ("[{type: contains-all, value: [$2.9M, 11 months]}]", "passed"),
    "icontains-all-fail": ("[{type: icontains-all, value: [BURN, nothing]}]", "failed"),
    "equals-pass": (f"[{{type: equals, value: '{ANSWER}'}}]", "passed"),
    "starts-with-pass": ("[{type: starts-with, value: Burn is}]", "passed"),
    "regex-js-pass": ("[{type: regex, value: '\\d+ months'}]", "passed"),
    "regex-python-pass": ("[{type: regex, value: '(?i)RUNWAY IS \\d+'}]", "passed"),
    "not-regex-python-pass": ("[{type: not-regex, value: '(?i)\\b18 months'}]", "passed"),
    "not-regex-python-fail": ("[{type: not-regex, value: '(?i)\\b11 MONTHS'}]", "failed"),
    "is-json-fail": ("[{type: is-json}]", "failed"),
    "not-is-json-pass": ("[{type: not-is-json}]", "passed"),
    "contains-json-fail": ("[{type: contains-json}]", "failed"),
    "word-count-pass": ("[{type: word-count, value: {min: 5, max: 20}}]", "passed"),
    "word-count-fail": ("[{type: word-count, value: 3}]", "failed"),
    "levenshtein-pass": (
        "[{type: levenshtein, value: 'Burn is $2.9M a month; runway is 12 months', threshold: 2}]",
        "passed",
    ),
    "not-levenshtein-fail": (
        "[{type: not-levenshtein, value: 'Burn is $2.9M a month; runway is 12 months'}]",
        "failed",
    ),
    "artifacts-exist-pass": ("[{type: artifacts-exist, value: [risk_register.json, citations.json]}]", "passed"),
    "artifacts-exist-fail": ("[{type: artifacts-exist, value: [missing.md]}]", "failed"),
    "json-shape-pass": (
        "[{type: json-shape, artifact: risk_register.json, value: {keys: [id, evidence], min_items: 1}}]",
        "passed",
    ),
    "csv-columns-pass": ("[{type: csv-columns, artifact: evidence_table.csv, value: [claim_id, sources]}]", "passed"),
    "sources-resolve-pass": ("[{type: sources-resolve}]", "passed"),
    "artifact-text-fail": ("[{type: icontains, artifact: open_questions.md, value: runway}]", "failed"),
    "weight-zero-failing-ignored": (
        "[{type: contains, value: runway, weight: 2}, {type: contains, value: nope, weight: 0}]",
        "passed",
    ),
    "weighted-threshold-pass": (
        "[{type: contains, value: runway, weight: 3}, {type: contains, value: nope}]",
        "passed",
    ),
    "template-marks-pass": ("[{type: not-contains, value: '{{ output }}'}]", "passed"),
}
THRESHOLDS = {"weighted-threshold-pass": 0.7}
JSON_LITERALS: dict[str, tuple[str, str]] = {
    "equals-json-pass": ("[{type: equals, value: {runway_months: 11, burn: $2.9M}}]", "passed"),
    "is-json-schema-pass": ("[{type: is-json, value: {type: object, required: [runway_months]}}]", "passed"),
    "contains-json-schema-fail": ("[{type: contains-json, value: {type: object, required: [cash]}}]", "failed"),
}


def every_literal_suite(root: Path) -> dict[str, str]:
    """Write a trace store, a dataroom and ``literals.eval.yaml`` under ``root``; eval id -> expected outcome."""
    write_run(root / "traces", "trace-01", ANSWER, dict(CONTRACT_ARTIFACTS))
    write_run(root / "traces", "trace-02", JSON_ANSWER)
    write_dataroom(root / "dataroom")
    lines = ["agentloop: 1", "dataroom: dataroom", "evals:"]
    expected = {}
    for trace, cases in (("trace-01", LITERALS), ("trace-02", JSON_LITERALS)):
        for eval_id, (asserts, outcome) in cases.items():
            threshold = f", assertion_threshold: {THRESHOLDS[eval_id]}" if eval_id in THRESHOLDS else ""
            lines.append(f"  - {{id: {eval_id}, title: {eval_id}, trace: {trace}{threshold}, tags: [literal],")
            lines.append(f"     assert: {asserts}}}")
            expected[eval_id] = outcome
    (root / "literals.eval.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return expected
