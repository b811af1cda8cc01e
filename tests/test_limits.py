"""Never hang, never read what it should not: linear checks, time limits, self-contained schemas, store symlinks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pytest_agentloop.assertions.limits import CheckAborted
from pytest_agentloop.evaluate import run_assertion
from pytest_agentloop.spec import AssertionSpec

FAST = 1.0  # seconds: every check below finishes well within this on a shared 2-core machine


def _run(kind: str, value: object, text: str, **fields: object) -> tuple[bool, str]:
    spec = AssertionSpec(type=kind, value=value, line=1, **fields)  # type: ignore[arg-type]
    result = run_assertion(spec, text, None, None)
    return result.passed, result.seen


def _timed(kind: str, value: object, text: str, **fields: object) -> tuple[bool, str, float]:
    started = time.perf_counter()
    passed, seen = _run(kind, value, text, **fields)
    return passed, seen, time.perf_counter() - started


# -- regex ------------------------------------------------------------------------


def test_catastrophic_pattern_is_linear_with_re2() -> None:
    passed, _, took = _timed("regex", "(a+)+$", "a" * 50_000 + "!")
    assert passed is False
    assert took < FAST


def test_re2_matches_unicode_offsets() -> None:
    passed, seen = _run("regex", r"ü+x", "ééüüx")
    assert passed
    assert seen.startswith("matched at offset 2:")


def test_python_engine_is_stopped_at_its_time_limit() -> None:
    started = time.perf_counter()
    with pytest.raises(CheckAborted, match=r"ran past its time limit of 0.2 s"):
        _run("regex", "(a+)+$", "a" * 50_000 + "!", engine="python", timeout=0.2)
    assert time.perf_counter() - started < 2


def test_python_engine_reads_what_re2_cannot() -> None:
    assert _run("regex", r"(\w)\1", "a book", engine="python")[0] is True
    assert _run("not-regex", r"(\w)\1", "a bok", engine="python")[0] is True


def test_timeout_in_an_eval_is_an_error_naming_eval_file_and_line(pytester: pytest.Pytester, eval_file, store) -> None:
    (store / "runs" / "trace-01" / "answer.md").write_text("a" * 50_000 + "!")
    eval_file(
        """
        evals:
          - id: slow
            title: Slow
            trace: trace-01
            assert:
              - {type: regex, value: '(a+)+$', engine: python, timeout: 0.2}
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*eval slow: suite.eval.yaml:6: the regex assertion ran past its time limit of 0.2 s*"]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_pattern_re2_rejects_names_the_fallback(pytester: pytest.Pytester, eval_file) -> None:
    eval_file(
        "evals:\n  - {id: x, title: T, trace: trace-01, assert: [{type: regex, value: '(?<=a)b'}]}\n",
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*suite.eval.yaml:2: *field 'value': RE2 cannot compile this pattern*engine: python*"])
    result.stderr.no_fnmatch_line("*re2.cc*")  # the C++ library's own log line is not printed


# -- JSON -------------------------------------------------------------------------

ADVERSARIAL = {
    "open-brackets": "[" * 1_000_000,
    "long-unclosed-list": "[" + "1," * 500_000,
    "many-nested-unclosed": ("[" + "1," * 500) * 1_000,
    "braces-and-quotes": '{"a": "' * 150_000,
    "escaped-quotes": '\\" ' * 330_000 + "[1",
    "prose-with-brackets": "see [note] and {this} " * 45_000,
}


def test_contains_json_on_a_megabyte_answer_is_fast() -> None:
    answer = "## Findings [1]\n- Runway {approx} is 11 months (see [p_and_l.csv]).\n" * 15_000
    answer += '```json\n{"risk": "high", "items": [{"id": "R1"}]}\n```\n'
    schema = {"type": "object", "required": ["risk"]}
    _run("contains-json", schema, "{}")  # jsonschema builds its validator classes once per process
    passed, seen, took = _timed("contains-json", schema, answer)
    assert passed, seen
    assert len(answer) > 1_000_000
    assert took < FAST


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_contains_json_on_an_adversarial_megabyte_is_linear(text: str) -> None:
    """Every character is decoded a bounded number of times: seconds, where the old scan took minutes."""
    started = time.perf_counter()
    try:
        passed, _ = _run("contains-json", None, text)
    except CheckAborted as exc:  # nesting past the parser's reach is an error, never a crash or a hang
        assert "nested too deeply" in str(exc)
    else:
        assert passed is False
    assert time.perf_counter() - started < 5 * FAST  # linear: 1-3 s on shared cores; the old scan took minutes


def test_contains_json_finds_a_value_after_a_broken_one() -> None:
    text = 'Start [1, 2, {"risk": "high"}, oops and later {"score": 3}'
    assert _run("contains-json", {"type": "object", "required": ["risk"]}, text)[0] is True
    assert _run("contains-json", {"type": "object", "required": ["score"]}, text)[0] is True
    assert _run("contains-json", {"type": "object", "required": ["absent"]}, text)[0] is False


def test_contains_json_checks_values_nested_in_a_value() -> None:
    text = 'result: {"items": [{"id": 1}, {"id": 2, "ok": true}]}'
    assert _run("contains-json", {"type": "object", "required": ["ok"]}, text)[0] is True


def test_deeply_nested_json_is_an_error_not_a_recursion_error() -> None:
    with pytest.raises(CheckAborted, match="nested too deeply"):
        _run("is-json", None, "[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckAborted, match="deeper than 100 levels"):
        _run("is-json", {"type": "array"}, "[" * 150 + "]" * 150)


def test_levenshtein_on_two_6kb_strings_is_fast() -> None:
    a, b = "ab" * 3_000, "ba" * 3_000
    passed, seen, took = _timed("levenshtein", b, a, threshold=10)
    assert (passed, seen) == (True, "edit distance 2")
    assert took < FAST
    passed, seen, took = _timed("levenshtein", "x" * 6_000, "y" * 6_000, threshold=100_000)
    assert (passed, seen) == (True, "edit distance 6000")
    assert took < FAST


# -- JSON Schema references ---------------------------------------------------------


@pytest.mark.parametrize(
    "ref", ["file:///etc/passwd", "http://127.0.0.1:9/schema.json", "other.json#/x", "https://example.invalid/s"]
)
def test_schema_refs_outside_the_document_are_collection_errors(pytester: pytest.Pytester, eval_file, ref: str) -> None:
    eval_file(
        f"""
        evals:
          - id: x
            title: T
            trace: trace-01
            assert:
              - type: is-json
                value: {{$ref: "{ref}"}}
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*suite.eval.yaml:7: *field 'value': $ref '{ref}' points outside this schema*"])
    result.stdout.no_fnmatch_line("*root:x:0:0*")


def test_schema_refs_inside_the_document_work() -> None:
    schema = {"$defs": {"risk": {"type": "object", "required": ["level"]}}, "$ref": "#/$defs/risk"}
    assert _run("is-json", schema, '{"level": "high"}')[0] is True
    assert _run("is-json", schema, '{"other": 1}')[0] is False


# -- trace store: nothing outside it is read ----------------------------------------


def _outside(pytester: pytest.Pytester) -> Path:
    outside = pytester.path.parent / f"{pytester.path.name}-outside"
    outside.mkdir()
    (outside / "answer.md").write_text("SECRET-OUTSIDE 11 months")
    (outside / "artifacts").mkdir()
    (outside / "artifacts" / "summary_answer.md").write_text("SECRET-OUTSIDE")
    return outside


ONE_EVAL = "evals:\n  - {id: a, title: A, trace: trace-01, assert: [{type: contains, value: SECRET}, {type: artifacts-exist, value: [summary_answer.md]}]}\n"


@pytest.mark.parametrize("target", ["answer.md", "artifacts"])
def test_store_file_symlinked_outside_is_refused(
    pytester: pytest.Pytester, eval_file, store: Path, target: str
) -> None:
    outside = _outside(pytester)
    run = store / "runs" / "trace-01"
    victim = run / target
    if victim.is_dir():
        for child in victim.iterdir():
            child.unlink()
        victim.rmdir()
    else:
        victim.unlink()
    victim.symlink_to(outside / target)
    eval_file(ONE_EVAL)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*traces/runs/trace-01/{target}: resolves outside the trace store*not read*"])
    result.stdout.no_fnmatch_line("*SECRET-OUTSIDE*")


@pytest.mark.parametrize("target", ["run folder", "record.json"])
def test_run_folder_or_record_symlinked_outside_is_refused(
    pytester: pytest.Pytester, eval_file, store: Path, target: str
) -> None:
    outside = _outside(pytester)
    run = store / "runs" / "trace-01"
    (outside / "record.json").write_text((run / "record.json").read_text())
    if target == "record.json":
        (run / "record.json").unlink()
        (run / "record.json").symlink_to(outside / "record.json")
    else:
        (store / "runs" / "trace-02").symlink_to(outside, target_is_directory=True)
    eval_file(ONE_EVAL)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*resolves outside the trace store*not read*"])


def test_spans_symlinked_outside_are_refused(tmp_path: Path) -> None:
    from pytest_agentloop.errors import TraceStoreError
    from pytest_agentloop.traces.store import TraceStore

    (tmp_path / "store" / "runs").mkdir(parents=True)
    (tmp_path / "elsewhere.jsonl").write_text('{"secret": 1}\n')
    (tmp_path / "store" / "spans.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    with pytest.raises(TraceStoreError, match="resolves outside the trace store"):
        TraceStore(tmp_path / "store").spans()


def test_nul_byte_in_a_cited_path_is_a_failure_not_a_crash(pytester: pytest.Pytester, eval_file, store: Path) -> None:
    artifacts = store / "runs" / "trace-01" / "artifacts"
    (artifacts / "citations.json").write_text(json.dumps({"sources": ["financials/p_and_l.csv\u0000.md"]}))
    eval_file(
        """
        sources_root: dataroom
        citations: {citations.json: sources}
        evals:
          - {id: a, title: A, trace: trace-01, assert: [{type: sources-resolve}]}
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*citations.json: 'financials/p_and_l.csv\\x00.md' escapes the sources root*"])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_an_outer_interval_timer_is_restored() -> None:
    import signal

    from pytest_agentloop.assertions.limits import time_limit

    def outer(signum: int, frame: object) -> None:
        raise AssertionError("the outer timer must not fire here")

    previous = signal.signal(signal.SIGALRM, outer)
    signal.setitimer(signal.ITIMER_REAL, 50)
    try:
        with time_limit(5, "a check"):
            pass
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 45 < remaining <= 50
        assert signal.getsignal(signal.SIGALRM) is outer
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_python_engine_outside_the_main_thread_is_refused_not_run_unbounded() -> None:
    import threading

    caught: list[BaseException] = []

    def run() -> None:
        try:
            _run("regex", "(a+)+$", "a" * 50_000 + "!", engine="python")
        except CheckAborted as exc:
            caught.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert len(caught) == 1
    assert "only be enforced in the main thread" in str(caught[0])


def test_equals_json_on_deep_nesting_is_an_answer_not_a_crash() -> None:
    assert _run("equals", [[1]], "[" * 800 + "]" * 800)[0] is False
    with pytest.raises(CheckAborted, match="nested too deeply"):
        _run("equals", [[1]], "[" * 100_000 + "]" * 100_000)


def test_judge_context_through_an_artifacts_symlink_is_refused(
    pytester: pytest.Pytester, eval_file, store: Path
) -> None:
    outside = _outside(pytester)
    (outside / "artifacts" / "ticket.json").write_text('{"secret": "SECRET-OUTSIDE"}')
    artifacts = store / "runs" / "trace-01" / "artifacts"
    for child in artifacts.iterdir():
        child.unlink()
    artifacts.rmdir()
    artifacts.symlink_to(outside / "artifacts", target_is_directory=True)
    eval_file(
        "evals:\n  - {id: a, title: A, trace: trace-01, scoring: llm_judge, rubric: R, judge_context: [ticket.json]}\n"
    )
    result = pytester.runpytest("--agentloop-judge=replay")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*traces/runs/trace-01/artifacts: resolves outside the trace store*not read*"])
    result.stdout.no_fnmatch_line("*SECRET-OUTSIDE*")
