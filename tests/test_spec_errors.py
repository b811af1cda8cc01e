"""Bad eval files: one collection error each, naming file, line and field; others still run."""

from __future__ import annotations

import textwrap

import pytest

GOOD = """
    evals:
      - id: fine
        title: Fine
        trace: trace-01
        assert: [{type: contains, value: runway}]
"""


def _collect_error(pytester: pytest.Pytester, *patterns: str) -> pytest.RunResult:
    result = pytester.runpytest("--continue-on-collection-errors")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(list(patterns))
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*pytest_agentloop/*.py:*")
    return result


@pytest.fixture
def good(eval_file) -> None:
    eval_file(GOOD, name="good")


def test_malformed_yaml(pytester: pytest.Pytester, eval_file, good) -> None:
    eval_file("evals:\n  - id: x\n    title: [unclosed\n", name="bad")
    _collect_error(pytester, "*bad.eval.yaml:*: malformed YAML*")


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (
            "  - title: T\n    trace: trace-01\n    assert: [{type: contains, value: a}]\n",
            2,
            "missing required field 'id'",
        ),
        (
            "  - id: x\n    title: T\n    trace: trace-01\n    threshold: high\n    assert: [{type: contains, value: a}]\n",
            5,
            "field 'threshold': expected an integer or a number, got a string",
        ),
        (
            "  - id: x\n    title: T\n    trace: trace-01\n    assert:\n      - type: containz\n        value: a\n",
            6,
            "field 'type': unknown assertion type 'containz'; known types: *contains*",
        ),
        (
            "  - id: x\n    title: T\n    trace: trace-01\n    scoring: vibes\n    assert: [{type: contains, value: a}]\n",
            5,
            "field 'scoring': unknown value 'vibes'; expected one of deterministic, llm_judge, hybrid",
        ),
        (
            "  - id: x\n    title: T\n    trace: trace-99\n    assert: [{type: contains, value: a}]\n",
            4,
            "field 'trace': no recorded run 'trace-99' in * (known: trace-01)",
        ),
        (
            "  - id: x\n    title: T\n    trace: trace-01\n    assert: [{type: contains, value: a}]\n"
            "  - id: x\n    title: U\n    trace: trace-01\n    assert: [{type: contains, value: a}]\n",
            6,
            "duplicate eval id 'x' (first defined on line 2)",
        ),
        (
            "  - id: x\n    title: T\n    trace: trace-01\n    colour: red\n    assert: [{type: contains, value: a}]\n",
            5,
            "field 'colour': unknown field*",
        ),
        (
            "  - id: x\n    title: T\n    trace: trace-01\n    assert: [{type: regex, value: '(unclosed'}]\n",
            5,
            "*field 'value': invalid regular expression (Python re): missing ), unterminated subpattern*",
        ),
        (
            "  - id: x\n    title: T\n    trace: trace-01\n    scoring: hybrid\n    assert: [{type: contains, value: a}]\n",
            2,
            "*scoring 'hybrid' needs a 'rubric'*",
        ),
        (
            "  - id: x\n    title: T\n    trace: trace-01\n    threshold: 1.5\n    assert: [{type: contains, value: a}]\n",
            5,
            "*'threshold': must be between 0 and 1*",
        ),
        (
            "  - id: x\n    title: T\n    trace: trace-01\n    tags: [bad tag]\n    assert: [{type: contains, value: a}]\n",
            5,
            "*not a valid marker name*",
        ),
        (
            "  - id: x\n    title: T\n    trace: trace-01\n    assert: [{type: json-shape, value: [a]}]\n",
            5,
            "*json-shape needs an 'artifact'*",
        ),
    ],
    ids=[
        "missing",
        "mistyped",
        "unknown-type",
        "unknown-scoring",
        "unknown-trace",
        "duplicate",
        "unknown-field",
        "bad-regex",
        "rubric-missing",
        "threshold-range",
        "bad-tag",
        "artifact-missing",
    ],
)
def test_schema_errors_name_file_line_field(
    pytester: pytest.Pytester, eval_file, good, body: str, line: int, message: str
) -> None:
    eval_file("evals:\n" + body, name="bad")
    _collect_error(pytester, f"*bad.eval.yaml:{line}: *{message}")


def test_empty_file(pytester: pytest.Pytester, eval_file, good) -> None:
    eval_file("", name="bad")
    _collect_error(pytester, "*bad.eval.yaml:1: empty eval file; it needs an 'evals:' list*")


def test_empty_evals_list(pytester: pytest.Pytester, eval_file, good) -> None:
    eval_file("evals: []\n", name="bad")
    _collect_error(pytester, "*bad.eval.yaml:1: eval file, field 'evals': the list is empty*")


def test_not_utf8(pytester: pytest.Pytester, good) -> None:
    (pytester.path / "bad.eval.yaml").write_bytes(b"evals:\n  - id: caf\xe9\n")
    _collect_error(pytester, "*bad.eval.yaml:2: not UTF-8 text (byte 18); save the file as UTF-8*")


def test_huge_file_refused_before_parsing(pytester: pytest.Pytester, good) -> None:
    with (pytester.path / "bad.eval.yaml").open("w") as handle:
        handle.write("evals:\n")
        chunk = "  - {id: e, title: t, trace: trace-01, assert: [{type: contains, value: x}]}\n"
        handle.write(chunk * (50_000_000 // len(chunk) + 1))
    _collect_error(pytester, "*bad.eval.yaml: file is 50.0 MB, over the 10.0 MB limit*agentloop_max_eval_file_mb*")


def test_unsupported_format_version(pytester: pytest.Pytester, eval_file, good) -> None:
    eval_file("agentloop: 2\n" + textwrap.dedent(GOOD), name="bad")
    _collect_error(pytester, "*bad.eval.yaml:1: *format version 2 is not supported*")


def test_unsafe_yaml_tags_rejected(pytester: pytest.Pytester, eval_file, good) -> None:
    eval_file("evals: !!python/object/apply:os.system ['echo pwned']\n", name="bad")
    result = _collect_error(pytester, "*bad.eval.yaml:1: malformed YAML*")
    result.stdout.no_fnmatch_line("pwned")


def test_missing_store(pytester: pytest.Pytester) -> None:
    pytester.makefile(".eval.yaml", bad=GOOD)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*bad.eval.yaml: no trace store found*agentloop_traces*"])


def test_broken_record_names_the_file(pytester: pytest.Pytester, eval_file, store) -> None:
    eval_file(GOOD, name="good")
    (store / "runs" / "trace-01" / "record.json").write_text("{not json")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*trace-01/record.json:1: record is not valid JSON: Expecting property name*"])
