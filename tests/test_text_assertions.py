"""Every literal text assertion type: pass, fail and negated, through the registry."""

from __future__ import annotations

import pytest

from pytest_agentloop.assertions import names
from pytest_agentloop.evaluate import run_assertion
from pytest_agentloop.spec import AssertionSpec

TEXT = 'Runway is 11 months at $2.9M burn. {"risk": "high", "score": 3}'

# type, value, a text it passes on, a text it fails on
CASES = [
    ("contains", "11 months", TEXT, "ten months"),
    ("icontains", "RUNWAY", TEXT, "cash"),
    ("contains-any", ["zebra", "$2.9M"], TEXT, "nothing"),
    ("contains-all", ["Runway", "$2.9M"], TEXT, "Runway only"),
    ("icontains-any", "ZEBRA, RUNWAY", TEXT, "nothing"),
    ("icontains-all", ["runway", "BURN"], TEXT, "burn only"),
    ("equals", "exact", "exact", "exact "),
    ("equals", {"a": 1}, '{"a": 1}', '{"a": 2}'),
    ("starts-with", "Runway", TEXT, "The runway"),
    ("regex", r"\b1[01] months", TEXT, "12 months"),
    ("is-json", None, '{"a": 1}', "{a: 1}"),
    ("is-json", {"type": "object", "required": ["a"]}, '{"a": 1}', '{"b": 1}'),
    ("contains-json", None, TEXT, "no json here"),
    ("contains-json", {"type": "object", "required": ["risk"]}, TEXT, 'text {"other": 1}'),
    ("word-count", {"min": 2, "max": 4}, "one two three", "one"),
    ("word-count", 3, "one two three", "one two"),
    ("levenshtein", "kitten", "sitting", "a completely different sentence"),
]


def _run(kind: str, value: object, text: str, threshold: float | None = None) -> tuple[bool, str, str]:
    result = run_assertion(AssertionSpec(type=kind, value=value, line=1, threshold=threshold), text, None, None)
    return result.passed, result.expected, result.seen


@pytest.mark.parametrize(("kind", "value", "good", "bad"), CASES)
def test_passes_fails_and_negates(kind: str, value: object, good: str, bad: str) -> None:
    assert _run(kind, value, good)[0] is True
    assert _run(kind, value, bad)[0] is False
    assert _run(f"not-{kind}", value, good)[0] is False
    assert _run(f"not-{kind}", value, bad)[0] is True


def test_every_text_type_is_covered() -> None:
    covered = {case[0] for case in CASES}
    text_types = {n for n in names() if not n.startswith("not-")} - {
        "artifacts-exist",
        "json-shape",
        "csv-columns",
        "sources-resolve",
    }
    assert text_types == covered


def test_contains_reports_closest_miss_with_offset() -> None:
    passed, expected, seen = _run("contains", "11 monthly", TEXT)
    assert not passed
    assert expected == "output contains '11 monthly'"
    assert "closest: first 8 of 10 chars at offset 10" in seen
    assert "11 months" in seen


def test_found_reports_position() -> None:
    _, _, seen = _run("contains", "$2.9M", TEXT)
    assert seen.startswith("found at offset 23:")


def test_levenshtein_threshold_is_configurable() -> None:
    assert _run("levenshtein", "kitten", "sitting", threshold=3)[0] is True
    assert _run("levenshtein", "kitten", "sitting", threshold=2)[0] is False


def test_levenshtein_on_megabytes_stops_early() -> None:
    passed, _, seen = _run("levenshtein", "short", "x" * 3_000_000)
    assert not passed
    assert seen == "edit distance more than 5"


def test_long_output_excerpt_is_cut() -> None:
    text = "filler " * 500_000
    passed, _, seen = _run("contains", "needle", text)
    assert not passed
    assert len(seen) < 400
    assert "3,500,000 chars in all" in seen


def test_is_json_reports_schema_path() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    passed, _, seen = _run("is-json", schema, '{"a": 1}')
    assert not passed
    assert seen.startswith("schema violation at a:")


def test_regex_is_not_fooled_by_case_in_plain_contains() -> None:
    assert _run("contains", "runway", TEXT)[0] is False
    assert _run("icontains", "runway", TEXT)[0] is True
