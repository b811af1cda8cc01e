"""Artifact checks: presence, JSON shape, CSV columns, cited sources, escaping paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CONTRACT = """
    dataroom: dataroom
    evals:
      - id: contract
        title: Contract
        trace: trace-01
        assert:
          - type: artifacts-exist
            value: [summary_answer.md, investment_memo.md, risk_register.json, open_questions.md, citations.json, evidence_table.csv]
          - {type: json-shape, artifact: risk_register.json, value: {keys: [evidence]}}
          - {type: json-shape, artifact: citations.json, value: [claim_id, claim, sources]}
          - {type: csv-columns, artifact: evidence_table.csv, value: [claim_id, claim, sources]}
          - {type: sources-resolve}
"""


def _artifacts(store: Path) -> Path:
    return store / "runs" / "trace-01" / "artifacts"


def _contract_fails(pytester: pytest.Pytester, eval_file, *seen: str) -> None:
    """Run the contract eval; it fails and its report shows every ``seen`` pattern."""
    eval_file(CONTRACT)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(list(seen))


def test_complete_run_passes(pytester: pytest.Pytester, eval_file, store: Path) -> None:
    eval_file(CONTRACT)
    pytester.runpytest().assert_outcomes(passed=1)


def test_missing_and_empty_artifacts(pytester: pytest.Pytester, eval_file, store: Path) -> None:
    (_artifacts(store) / "open_questions.md").unlink()
    (_artifacts(store) / "investment_memo.md").write_text("")
    _contract_fails(pytester, eval_file, "*seen:     investment_memo.md: empty; open_questions.md: missing")


def test_invalid_json_artifact_fails_with_line(pytester: pytest.Pytester, eval_file, store: Path) -> None:
    (_artifacts(store) / "risk_register.json").write_text('[{"evidence": []},\n oops]')
    _contract_fails(pytester, eval_file, "*risk_register.json is not valid JSON: Expecting value at line 2*")


def test_wrong_json_shape(pytester: pytest.Pytester, eval_file, store: Path) -> None:
    (_artifacts(store) / "citations.json").write_text(json.dumps([{"claim_id": "C1", "sources": []}]))
    _contract_fails(pytester, eval_file, "*item 0 lacks [[]'claim'[]]*")


def test_csv_missing_column_and_invalid_csv(pytester: pytest.Pytester, eval_file, store: Path) -> None:
    (_artifacts(store) / "evidence_table.csv").write_text("claim_id,claim\nC1,x\n")
    _contract_fails(pytester, eval_file, "*missing [[]'sources'[]]*")
    (_artifacts(store) / "evidence_table.csv").write_text('claim_id,claim,sources\nC1,"unterminated\n')
    _contract_fails(pytester, eval_file, "*evidence_table.csv is not valid CSV*")


@pytest.mark.parametrize(
    "source",
    ["../secrets.txt", "/etc/passwd", "financials/../../secrets.txt", "C:/Windows/win.ini", "link/secrets.txt"],
)
def test_escaping_sources_fail_and_are_never_opened(
    pytester: pytest.Pytester, eval_file, store: Path, source: str
) -> None:
    (pytester.path / "secrets.txt").write_text("secret")
    outside = pytester.path.parent / f"{pytester.path.name}-outside"
    outside.mkdir()
    (outside / "secrets.txt").write_text("secret")
    (pytester.path / "dataroom" / "link").symlink_to(outside, target_is_directory=True)
    (_artifacts(store) / "citations.json").write_text(
        json.dumps([{"claim_id": "C1", "claim": "x", "sources": [source]}])
    )
    _contract_fails(pytester, eval_file, f"*citations.json: {source!r} escapes the sources root (not opened)*")


def test_source_missing_from_dataroom(pytester: pytest.Pytester, eval_file, store: Path) -> None:
    (_artifacts(store) / "evidence_table.csv").write_text(
        "claim_id,claim,sources\nC1,x,financials/p_and_l.csv;legal/nda.md\n"
    )
    _contract_fails(pytester, eval_file, "*evidence_table.csv: 'legal/nda.md' does not exist under the sources root*")


def test_missing_artifacts_folder_is_an_error(pytester: pytest.Pytester, eval_file, store: Path) -> None:
    for path in _artifacts(store).iterdir():
        path.unlink()
    _artifacts(store).rmdir()
    eval_file(CONTRACT)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*eval contract: traces/runs/trace-01/artifacts: run 'trace-01' * has no artifacts folder*"]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_text_assertion_on_an_artifact(pytester: pytest.Pytester, eval_file, store: Path) -> None:
    eval_file(
        """
        evals:
          - id: memo
            title: Memo
            trace: trace-01
            assert:
              - {type: icontains, artifact: summary_answer.md, value: 11 MONTHS}
              - {type: contains, artifact: nowhere.md, value: x}
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*FAILED suite.eval.yaml:7: contains on nowhere.md", "*seen:     nowhere.md is missing"]
    )


def test_artifact_name_escaping_is_a_spec_error(pytester: pytest.Pytester, eval_file) -> None:
    eval_file(
        """
        evals:
          - id: memo
            title: Memo
            trace: trace-01
            assert: [{type: contains, artifact: ../../etc/passwd, value: root}]
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*suite.eval.yaml:5: *field 'artifact': *must be a relative path inside*"])


def test_missing_answer_is_an_error(pytester: pytest.Pytester, eval_file, store: Path) -> None:
    (store / "runs" / "trace-01" / "answer.md").unlink()
    eval_file("evals:\n  - {id: a, title: A, trace: trace-01, assert: [{type: contains, value: x}]}\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*eval a: traces/runs/trace-01/answer.md: run 'trace-01' has no answer.md*"])


def test_multi_megabyte_output_is_handled(pytester: pytest.Pytester, eval_file, store: Path) -> None:
    (store / "runs" / "trace-01" / "answer.md").write_text("word " * 1_000_000 + "11 months")
    eval_file(
        "evals:\n  - {id: a, title: A, trace: trace-01, assert: [{type: contains, value: zebra}, {type: contains, value: 11 months}]}\n"
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    assert len(result.stdout.str()) < 5000
    result.stdout.fnmatch_lines(["*5,000,009 chars in all*"])


# -- the artifact contract: generic names, declared per suite ---------------------------


def _only_citations(store: Path, citations: object) -> None:
    for path in _artifacts(store).iterdir():
        path.unlink()
    (_artifacts(store) / "citations.json").write_text(json.dumps(citations))


SUPPORT = """
    sources_root: dataroom
    citations: {citations.json: sources}
    evals:
      - {id: cites, title: Cites, trace: trace-01, assert: [{type: sources-resolve}]}
"""


def test_only_a_citations_object_with_a_declared_contract(pytester: pytest.Pytester, eval_file, store: Path) -> None:
    _only_citations(store, {"sources": ["financials/p_and_l.csv"]})
    eval_file(SUPPORT)
    pytester.runpytest().assert_outcomes(passed=1)
    (_artifacts(store) / "citations.json").write_text(json.dumps({"sources": ["kb/missing.md"]}))
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*citations.json: 'kb/missing.md' does not exist under the sources root*"])


def test_without_a_contract_the_default_artifacts_present_are_checked(
    pytester: pytest.Pytester, eval_file, store: Path
) -> None:
    _only_citations(store, [{"claim": "x", "sources": ["financials/p_and_l.csv"]}])
    eval_file("dataroom: dataroom\nevals:\n  - {id: a, title: A, trace: trace-01, assert: [{type: sources-resolve}]}\n")
    result = pytester.runpytest("-vv")
    result.assert_outcomes(passed=1)


def test_declared_artifact_missing_fails(pytester: pytest.Pytester, eval_file, store: Path) -> None:
    _only_citations(store, {"sources": []})
    eval_file(SUPPORT.replace("{citations.json: sources}", "{citations.json: sources, kb_links.csv: links}"))
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*kb_links.csv is missing*"])


def test_json_shape_on_a_single_object(pytester: pytest.Pytester, eval_file, store: Path) -> None:
    (_artifacts(store) / "ticket.json").write_text(json.dumps({"id": "T-1", "status": "open", "reply": "hi"}))
    eval_file(
        """
        evals:
          - id: ticket
            title: Ticket
            trace: trace-01
            assert:
              - {type: json-shape, artifact: ticket.json, value: {keys: [id, status]}}
              - {type: json-shape, artifact: ticket.json, value: {keys: [id], type: object}}
              - {type: not-json-shape, artifact: ticket.json, value: {keys: [id], type: list}}
              - {type: not-json-shape, artifact: risk_register.json, value: {keys: [id], type: object}}
              - {type: not-json-shape, artifact: ticket.json, value: {keys: [priority]}}
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("suite", "line", "message"),
    [
        ("sources_root: a\ndataroom: b\n", 2, "field 'dataroom': 'dataroom' is the old name of 'sources_root'*"),
        ("citations: [citations.json]\n", 1, "field 'citations': expected a mapping*"),
        ("citations: {../x.json: sources}\n", 1, "field 'citations': '../x.json' must be a relative path*"),
        (
            "citations: {notes.md: sources}\n",
            1,
            "field 'citations': 'notes.md': cited sources are read from .json or .csv*",
        ),
        ("citations: {c.json: 5}\n", 1, "field 'citations': the field for 'c.json' must be a field name*"),
    ],
    ids=["both-names", "list", "escaping", "not-json-or-csv", "field-number"],
)
def test_bad_contract_is_a_collection_error(
    pytester: pytest.Pytester, eval_file, suite: str, line: int, message: str
) -> None:
    eval_file(suite + "evals:\n  - {id: a, title: A, trace: trace-01, assert: [{type: sources-resolve}]}\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*suite.eval.yaml:{line}: eval file, {message}"])


def test_judge_context_is_kept_on_the_spec(tmp_path: Path) -> None:
    from pytest_agentloop.spec import load_suite

    path = tmp_path / "s.eval.yaml"
    path.write_text(
        "defaults: {judge_context: [ticket.json]}\nevals:\n"
        "  - {id: a, title: A, trace: t, scoring: llm_judge, rubric: R}\n"
        "  - {id: b, title: B, trace: t, scoring: llm_judge, rubric: R, judge_context: [notes/reply.md, ticket.json]}\n"
    )
    suite = load_suite(path, 10_000_000)
    assert [e.judge_context for e in suite.evals] == [("ticket.json",), ("notes/reply.md", "ticket.json")]
