"""A corpus of malformed eval files: each one clear line naming file, line and field, in one quick run.

Wider than the cases the issue lists: every field of the eval format gets a
wrong type, an out-of-range number (NaN and infinity included), a bare string
where a list belongs, a path that escapes, a schema that points outside
itself, a pattern RE2 cannot read, and YAML that would expand without end.
"""

from __future__ import annotations

import fnmatch
import time

import pytest

from pytest_agentloop.spec import load_suite

HEAD = "evals:\n  - id: x\n    title: T\n    trace: trace-01\n"


def _assertion(flow: str) -> str:
    """An eval whose only assertion (line 6) is ``flow``."""
    return HEAD + f"    assert:\n      - {flow}\n"


def _field(line: str) -> str:
    """An eval with one extra field on line 5."""
    return HEAD + f"    {line}\n    assert: [{{type: contains, value: a}}]\n"


def _defaults(flow: str) -> str:
    """A file whose defaults (line 1) are ``flow``."""
    return f"defaults: {flow}\n" + HEAD + "    assert: [{type: contains, value: a}]\n"


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(7)
)

CORPUS: dict[str, tuple[str, int, str]] = {
    # json-shape
    "min-items-string": (
        _assertion("{type: json-shape, artifact: r.json, value: {keys: [a], min_items: '3'}}"),
        6,
        "field 'value': min_items must be a whole number*",
    ),
    "min-items-negative": (
        _assertion("{type: json-shape, artifact: r.json, value: {keys: [a], min_items: -1}}"),
        6,
        "min_items must be a whole number*",
    ),
    "min-items-bool": (
        _assertion("{type: json-shape, artifact: r.json, value: {keys: [a], min_items: true}}"),
        6,
        "min_items must be a whole number*",
    ),
    "shape-type": (
        _assertion("{type: json-shape, artifact: r.json, value: {keys: [a], type: tuple}}"),
        6,
        "type must be one of list, object*",
    ),
    "shape-object-min-items": (
        _assertion("{type: json-shape, artifact: r.json, value: {keys: [a], type: object, min_items: 2}}"),
        6,
        "min_items applies to a list*",
    ),
    "shape-keys-string": (
        _assertion("{type: json-shape, artifact: r.json, value: {keys: a}}"),
        6,
        "keys must be a list*",
    ),
    # thresholds, weights, timeouts
    "levenshtein-inf": (
        _assertion("{type: levenshtein, value: a, threshold: .inf}"),
        6,
        "field 'threshold': expected a finite number*",
    ),
    "levenshtein-fraction": (
        _assertion("{type: levenshtein, value: a, threshold: 2.5}"),
        6,
        "field 'threshold': expected a whole number of edits*",
    ),
    "levenshtein-negative": (
        _assertion("{type: levenshtein, value: a, threshold: -1}"),
        6,
        "whole number of edits from 0*",
    ),
    "levenshtein-huge": (
        _assertion("{type: levenshtein, value: a, threshold: 1.0e+12}"),
        6,
        "whole number of edits from 0 to 100,000*",
    ),
    "threshold-unused": (
        _assertion("{type: contains, value: a, threshold: 3}"),
        6,
        "field 'threshold': contains does not use a 'threshold'*",
    ),
    "weight-nan": (
        _assertion("{type: contains, value: a, weight: .nan}"),
        6,
        "field 'weight': expected a finite number, got nan",
    ),
    "weight-negative": (
        _assertion("{type: contains, value: a, weight: -1}"),
        6,
        "field 'weight': must not be negative*",
    ),
    "weight-string": (
        _assertion("{type: contains, value: a, weight: heavy}"),
        6,
        "field 'weight': expected an integer or a number, got a string",
    ),
    "timeout-zero": (_assertion("{type: contains, value: a, timeout: 0}"), 6, "field 'timeout': must be more than 0*"),
    "timeout-inf": (
        _assertion("{type: contains, value: a, timeout: .inf}"),
        6,
        "field 'timeout': expected a finite number*",
    ),
    "timeout-huge": (_assertion("{type: contains, value: a, timeout: 1.0e+6}"), 6, "at most 600 seconds*"),
    # regex
    "engine-elsewhere": (
        _assertion("{type: contains, value: a, engine: python}"),
        6,
        "field 'engine': only a regex assertion*",
    ),
    "engine-unknown": (
        _assertion("{type: regex, value: a, engine: pcre}"),
        6,
        "field 'engine': unknown value 'pcre'; expected one of re2, python",
    ),
    "re2-lookbehind": (
        _assertion("{type: regex, value: '(?<=a)b'}"),
        6,
        "field 'value': RE2 cannot compile*engine: python*",
    ),
    "re2-backreference": (_assertion("{type: regex, value: '(a)\\1'}"), 6, "RE2 cannot compile*"),
    "python-invalid": (
        _assertion("{type: regex, value: '(a', engine: python}"),
        6,
        "field 'value': invalid regular expression (Python re)*",
    ),
    # schemas and values
    "ref-file": (
        _assertion("{type: is-json, value: {$ref: 'file:///etc/passwd'}}"),
        6,
        "field 'value': $ref 'file:///etc/passwd' points outside this schema*",
    ),
    "ref-remote": (
        _assertion("{type: contains-json, value: {properties: {a: {$ref: 'http://10.0.0.1/s.json'}}}}"),
        6,
        "*points outside this schema*",
    ),
    "schema-invalid": (_assertion("{type: is-json, value: {type: 5}}"), 6, "field 'value': invalid JSON Schema*"),
    "schema-string": (_assertion("{type: is-json, value: object}"), 6, "expected a JSON Schema object*"),
    "word-count-negative": (_assertion("{type: word-count, value: {min: -1}}"), 6, "expected a word count*"),
    "word-count-string": (_assertion("{type: word-count, value: ten}"), 6, "expected a word count*"),
    "contains-null": (
        _assertion("{type: contains, value: null}"),
        6,
        "field 'value': expected a string value, got NoneType",
    ),
    "contains-any-empty": (_assertion("{type: contains-any, value: []}"), 6, "expected a non-empty list*"),
    "equals-bool": (_assertion("{type: equals, value: true}"), 6, "expected a string value, got bool"),
    "sources-list": (
        _assertion("{type: sources-resolve, value: [citations.json]}"),
        6,
        "expected a mapping of artifact file name*",
    ),
    "csv-columns-string": (
        _assertion("{type: csv-columns, artifact: t.csv, value: claim}"),
        6,
        "expected a non-empty list of artifact file names*",
    ),
    "artifacts-exist-empty": (_assertion("{type: artifacts-exist, value: []}"), 6, "expected a non-empty list*"),
    "artifact-absolute": (
        _assertion("{type: contains, value: a, artifact: /etc/passwd}"),
        6,
        "field 'artifact': */etc/passwd' must be a relative path*",
    ),
    "artifact-nul": (
        _assertion('{type: contains, value: a, artifact: "a\\0b"}'),
        6,
        "field 'artifact': *must be a relative path*",
    ),
    "assertion-string": (_assertion("contains"), 5, "each assertion must be a mapping*"),
    "assert-string": (HEAD + "    assert: contains\n", 5, "field 'assert': expected a list, got a string"),
    # eval fields
    "tags-string": (_field("tags: slow"), 5, "field 'tags': expected a list, got a string"),
    "tags-number": (_field("tags: [5]"), 5, "field 'tags': tag 5 is not a valid marker name*"),
    "threshold-nan": (_field("threshold: .nan"), 5, "field 'threshold': expected a finite number, got nan"),
    "assertion-threshold-range": (
        _field("assertion_threshold: 2"),
        5,
        "field 'assertion_threshold': must be between 0 and 1*",
    ),
    "repeat-zero": (_field("repeat: 0"), 5, "field 'repeat': must be a whole number from 1 to 100*"),
    "repeat-huge": (_field("repeat: 1000000"), 5, "field 'repeat': must be a whole number from 1 to 100*"),
    "repeat-fraction": (_field("repeat: 2.5"), 5, "field 'repeat': expected an integer, got a number"),
    "must-pass-string": (_field("must_pass: 'yes'"), 5, "field 'must_pass': expected true or false, got a string"),
    "split-unknown": (
        _field("split: train"),
        5,
        "field 'split': unknown value 'train'; expected one of optimization, holdout",
    ),
    "examples-number": (_field("examples: {pass: 5}"), 5, "field 'examples': expected {pass: <text>, fail: <text>}"),
    "metadata-list": (_field("metadata: [a]"), 5, "field 'metadata': expected a mapping, got a list"),
    "judge-context-escape": (
        _field("judge_context: [../secrets.json]"),
        5,
        "field 'judge_context': '../secrets.json' must be a relative path*",
    ),
    "judge-context-empty": (_field("judge_context: []"), 5, "field 'judge_context': expected a list of 1 to 10*"),
    "judge-context-string": (
        _field("judge_context: ticket.json"),
        5,
        "field 'judge_context': expected a list, got a string",
    ),
    "id-space": (
        HEAD.replace("id: x", "id: a b") + "    assert: [{type: contains, value: a}]\n",
        2,
        "field 'id': use letters, digits*",
    ),
    "title-missing": (
        "evals:\n  - id: x\n    trace: trace-01\n    assert: [{type: contains, value: a}]\n",
        2,
        "missing required field 'title'",
    ),
    "judge-with-assert": (
        _field("scoring: llm_judge\n    rubric: R"),
        7,
        "field 'assert': llm_judge evals are graded by the rubric alone*",
    ),
    # defaults
    "defaults-tags-number": (_defaults("{tags: 5}"), 1, "defaults, field 'tags': expected a list, got an integer"),
    "defaults-tags-string": (_defaults("{tags: slow}"), 1, "defaults, field 'tags': expected a list, got a string"),
    "defaults-unknown": (_defaults("{colour: red}"), 1, "defaults, field 'colour': unknown field*"),
    "defaults-threshold-inf": (
        _defaults("{threshold: .inf}"),
        1,
        "field 'threshold': expected a finite number, got inf",
    ),
    # the file as a whole
    "evals-mapping": ("evals: {id: x}\n", 1, "field 'evals': expected a list, got a mapping"),
    "top-level-list": ("- id: x\n", 1, "an eval file is a mapping with an 'evals:' list"),
    "version-string": (
        "agentloop: '1'\n" + _field("expected: e"),
        1,
        "field 'agentloop': expected an integer, got a string",
    ),
    "traces-number": ("traces: 5\n" + _field("expected: e"), 1, "field 'traces': expected a string, got an integer"),
    "sources-root-empty": (
        "sources_root: ' '\n" + _field("expected: e"),
        1,
        "field 'sources_root': expected a folder path",
    ),
    "citations-number": (
        "citations: 5\n" + _field("expected: e"),
        1,
        "field 'citations': expected a mapping, got an integer",
    ),
    "duplicate-key": (
        HEAD + "    title: U\n    assert: [{type: contains, value: a}]\n",
        5,
        "malformed YAML: duplicate key 'title' (first on line 3)",
    ),
    "alias-bomb": (BOMB + _field("metadata: {x: *h}"), None, "YAML aliases expand to more than 5,000,000 values*"),
    "alias-recursive": ("loop: &l [*l]\n" + _field("expected: e"), None, "*"),
}


@pytest.fixture
def corpus_run(pytester: pytest.Pytester, store) -> tuple[pytest.RunResult, float]:
    """Every corpus file beside one good file, collected in one pytest run."""
    pytester.makefile(".eval.yaml", good=HEAD + "    assert: [{type: contains, value: runway}]\n")
    for name, (text, _, _) in CORPUS.items():
        (pytester.path / f"bad_{name}.eval.yaml").write_text(text, encoding="utf-8")
    started = time.perf_counter()
    result = pytester.runpytest("--continue-on-collection-errors")  # pytest's own flag: run past broken files
    return result, time.perf_counter() - started


def test_each_malformed_file_gets_one_clear_line(corpus_run: tuple[pytest.RunResult, float]) -> None:
    result, took = corpus_run
    result.assert_outcomes(passed=1, errors=len(CORPUS))
    output = result.stdout.str()
    for name, (_, line, message) in CORPUS.items():
        where = f"bad_{name}.eval.yaml:{line}: " if line else f"bad_{name}.eval.yaml*: "
        result.stdout.fnmatch_lines([f"{where}*{message}"])
    assert "Traceback" not in output
    assert "pytest_agentloop/" not in output
    assert took < 30


@pytest.mark.parametrize("name", CORPUS)
def test_the_same_file_fails_alone_with_the_same_line(tmp_path, name: str) -> None:
    from pytest_agentloop.errors import SpecError

    text, line, message = CORPUS[name]
    path = tmp_path / "bad.eval.yaml"
    path.write_text(text, encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(SpecError) as caught:
        load_suite(path, 10_000_000)
    assert time.perf_counter() - started < 2
    assert caught.value.path == path
    assert "\n" not in caught.value.message
    assert fnmatch.fnmatch(caught.value.message, f"*{message}")
    if line is not None:
        assert caught.value.line == line
