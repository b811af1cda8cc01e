"""The HTML report: one self-contained file whose counts match the terminal and JUnit, and whose data cannot run."""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.cli import main
from pytest_agentloop.gate.history import History, RunRow
from pytest_agentloop.report.build import rows_of as rows_of_results
from pytest_agentloop.report.html import payload_of, render
from pytest_agentloop.report.model import (
    ArtifactView,
    AssertionRow,
    EvalRow,
    ReportInput,
    RunInfo,
    RunPoint,
    TraceView,
)
from pytest_agentloop.report.traces import read_text, span_tree, span_view
from pytest_agentloop.report.trends import pass_rate_svg
from pytest_agentloop.results import EvalResult, Outcome

HOSTILE = (
    '\n\n</script><script>window.__agentloopPwned = "script"</script>\n'
    "<img src=x onerror=\"window.__agentloopPwned = 'onerror'\">\n"
    "[click](javascript:window.__agentloopPwned=1)\n"
)


def _edit(example: Path, label: str, old: str, new: str) -> None:
    path = example / "diligence" / "traces" / "runs" / label / "answer.md"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


QUICK = ("evals/diligence/data_quirks.eval.yaml", "evals/diligence/soc2_precision.eval.yaml")


def run_with_baseline_and_failures(
    pytester: pytest.Pytester, example: Path, *extra: str, paths: tuple[str, ...] = ("evals",)
) -> pytest.RunResult:
    """Baseline: one eval failing. Candidate: that one fixed, one regression, a hostile answer (errors in replay)."""
    _edit(example, "trace-03", "by legal entity, not parent account", "per entity")
    assert pytester.runpytest(*paths, "-p", "no:cacheprovider").ret == 1
    _edit(example, "trace-03", "per entity", "by legal entity, not parent account")
    _edit(example, "trace-04", '"Aurora"', "another vendor")
    answer = example / "diligence" / "traces" / "runs" / "trace-04" / "answer.md"
    answer.write_text(answer.read_text() + HOSTILE)
    (answer.parent / "artifacts" / "chart.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0binary")
    return pytester.runpytest(
        *paths,
        "-p",
        "no:cacheprovider",
        "--agentloop-baseline=latest",
        "--agentloop-gate=regressions",
        "--junitxml=junit.xml",
        "--agentloop-html=out/report.html",
        *extra,
    )


def rows_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The payload's rows as dicts, the eval id filled in as the page does."""
    rows = [dict(zip(data["columns"], row, strict=True)) for row in data["rows"]]
    for row in rows:
        row["eval_id"] = row["eval_id"] or row["nodeid"].split("::")[-1]
    return rows


def junit_outcomes(path: Path) -> Counter[str]:
    """Eval outcomes as JUnit records them (only test cases of eval files)."""
    counts: Counter[str] = Counter()
    for case in ET.parse(path).iter("testcase"):
        props = {p.get("name") for p in case.iter("property")}
        if "eval_id" not in props:
            continue
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        counts[
            {"failure": "failed", "error": "error", "skipped": "skipped"}.get(kinds[0], "?") if kinds else "passed"
        ] += 1
    return counts


def test_bundled_example_report_counts_match_terminal_and_junit(pytester: pytest.Pytester, example_copy: Path) -> None:
    harness = "-oagentloop_harness=evals/diligence/harness.yaml"
    result = pytester.runpytest(
        "evals", "-p", "no:cacheprovider", harness, "--junitxml=junit.xml", "--agentloop-html=report.html"
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(["23 evals: 23 passed", "HTML report written to *report.html (0.* MB, *s)"])
    data = payload_of((pytester.path / "report.html").read_text())
    rows = rows_of(data)
    assert Counter(r["outcome"] for r in rows) == Counter(passed=23) == junit_outcomes(pytester.path / "junit.xml")
    assert data["run"]["exit_status"] == 0 and data["run"]["harness_version"] == "v001"
    assert {r["split"] for r in rows} == {"optimization", "holdout"}
    traces = data["traces"]
    assert len(traces) == 5  # each recorded run embedded once, whatever number of evals read it
    trace = traces[rows[0]["trace"]]
    assert trace["question"] and trace["answer"] and len(trace["artifacts"]) == 6 and trace["spans"]


def test_report_with_baseline_and_failures(pytester: pytest.Pytester, example_copy: Path) -> None:
    result = run_with_baseline_and_failures(pytester, example_copy, paths=QUICK)
    assert result.ret == 1
    summary = next(line for line in result.stdout.lines if re.match(r"^\d+ evals: ", line))
    data = payload_of((pytester.path / "out" / "report.html").read_text())
    rows = rows_of(data)
    counts = Counter(r["outcome"] for r in rows)
    assert summary == f"{len(rows)} evals: " + ", ".join(
        f"{counts[k]} {k}" for k in ("passed", "failed", "error", "skipped") if counts[k]
    )
    assert counts == junit_outcomes(pytester.path / "junit.xml")
    assert counts["failed"] == 1 and counts["error"] >= 1
    splits = data["diff"]["splits"]
    said = {line.split("regression: ")[1] for line in result.stdout.lines if line.startswith("  regression: ")}
    assert {n for d in splits.values() for n in d["regressions"]} == said
    assert "evals/diligence/data_quirks.eval.yaml::aurora-faq-unreliable" in said
    assert splits["optimization"]["newly_passing"] == ["evals/diligence/data_quirks.eval.yaml::health-by-legal-entity"]
    run = data["run"]
    assert run["gate_passed"] is False and run["gate_policy"] == "regressions"
    assert any(reason.startswith("regression: ") for reason in run["gate_reasons"])
    regression = next(r for r in rows if r["eval_id"] == "aurora-faq-unreliable")
    assert regression["baseline_status"] == "regressions"
    assert "Aurora" in regression["explanation"]
    failed = [
        a for a in regression["assertions"] if not a[2]
    ]  # [type, line, passed, score, weight, expected, seen, ...]
    assert [(a[0], a[5]) for a in failed] == [("contains", "output contains 'Aurora'")] and "Aurora" in failed[0][6]
    assert len(data["history_runs"]) == 2 and regression["hist"][0] == "PF"
    trace = data["traces"][regression["trace"]]
    assert trace["answer"].endswith(HOSTILE)
    binary = next(a for a in trace["artifacts"] if a["name"] == "chart.png")
    assert binary["text"] is None and binary["size"] == 17


def test_untrusted_text_cannot_leave_its_data_element(tmp_path: Path) -> None:
    row = EvalRow(
        nodeid="e.eval.yaml::x",
        eval_id="x",
        title=HOSTILE,
        outcome="failed",
        explanation=HOSTILE,
        trace_id="ab" * 16,
        assertions=(AssertionRow("contains", 3, False, 0.0, 1.0, HOSTILE, HOSTILE + "\u2028"),),
    )
    trace = TraceView("ab" * 16, "t", question=HOSTILE, answer=HOSTILE, answer_path="runs/t/answer.md")
    document = render(ReportInput(RunInfo("r1", notes=(HOSTILE,)), (row,), load_trace=lambda _: trace, title=HOSTILE))
    assert document.count("<script") == 3  # the two data elements and the page's own script, nothing else
    assert "<img" not in document and 'onerror="' not in document
    for name in ("data", "traces"):
        data_text = document.split(f'id="agentloop-{name}">')[1].split("</script>")[0]
        assert re.fullmatch(r"[A-Za-z0-9+/=]+", data_text)  # base64: no markup can be written in it
    data = payload_of(document)
    assert rows_of(data)[0]["title"] == HOSTILE
    assert rows_of(data)[0]["assertions"][0][6] == HOSTILE + "\u2028"
    assert data["traces"]["0"]["answer"] == HOSTILE


def test_document_is_self_contained_and_locked_by_its_csp() -> None:
    document = render(ReportInput(RunInfo("r1"), ()))
    assert not re.search(r"""(src|href)\s*=|url\(|@import|https?://(?!www\.w3\.org/2000/svg)""", document)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', document)
    assert csp is not None
    policy = html.unescape(csp.group(1))
    assert "default-src 'none'" in policy and "unsafe-inline" not in policy
    import base64
    import hashlib

    script = document.rsplit("<script>", 1)[1].split("</script>")[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}';" in policy


def test_answers_and_text_artifacts_are_cut_at_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.md"
    big.write_text("é" * 100)
    assert read_text(big, limit=10) == ("é" * 10, True)
    assert read_text(big, limit=1000) == ("é" * 100, False)
    binary = tmp_path / "x.bin"
    binary.write_bytes(b"\xff\xfe\x00data")
    assert read_text(binary) == (None, False)


def test_trace_budget_goes_to_failing_evals_first() -> None:
    def trace_of(row: EvalRow) -> TraceView:
        return TraceView(row.trace_id, row.trace_label, answer="a" * 600, answer_path=row.trace_label)

    rows = tuple(
        EvalRow(
            nodeid=f"e.eval.yaml::e{i}", eval_id=f"e{i}", title="", outcome=o, trace_id=f"{i:032x}", trace_label=f"t{i}"
        )
        for i, o in enumerate(["passed", "passed", "failed"])
    )
    data = payload_of(render(ReportInput(RunInfo("r"), rows, load_trace=trace_of), budget=1300))
    by_label = {t["label"]: t for t in data["traces"].values()}
    assert by_label["t2"]["answer"] == "a" * 600 and "omitted" not in by_label["t2"]
    assert by_label["t0"].get("omitted") is None and by_label["t1"]["omitted"] is True


def test_spans_form_a_tree_with_durations_and_tokens() -> None:
    def span(span_id: str, parent: str, start: str, end: str, **attrs: Any) -> dict[str, Any]:
        return {
            "trace_id": "t",
            "span_id": span_id,
            "parent_span_id": parent,
            "name": span_id,
            "start_time": f"2026-01-01T00:00:{start}Z",
            "end_time": f"2026-01-01T00:00:{end}Z",
            "status": {"code": "STATUS_CODE_OK"},
            "attributes": attrs,
        }

    lines = [
        span("tool", "root", "02.000000000", "02.250000000", **{"inference.observation_kind": "TOOL"}),
        span(
            "llm",
            "root",
            "01.000000000",
            "01.500000000",
            **{"inference.llm.input_tokens": 120, "inference.llm.output_tokens": 7},
        ),
        span("root", "", "00.000000000", "03.000000000"),
    ]
    tree = span_tree([span_view(s) for s in lines])
    assert [s.span_id for s in tree] == ["root", "llm", "tool"]
    assert tree[0].duration_ms == 3000 and tree[2].duration_ms == 250 and tree[2].kind == "TOOL"
    assert (tree[1].input_tokens, tree[1].output_tokens) == (120, 7)


def _record(history: History, run_id: str, outcomes: dict[str, str], statuses: dict[str, str] | None = None) -> None:
    started = f"2026-12-01T00:00:0{run_id[-1]}.000000Z"
    results = [
        EvalResult(
            eval_id=name,
            nodeid=f"evals/x.eval.yaml::{name}",
            title=name,
            trace_id="",
            trace_label="",
            outcome=Outcome(outcome),
            score=1.0 if outcome == "passed" else 0.0,
            explanation="",
            baseline_status=(statuses or {}).get(name),
        )
        for name, outcome in outcomes.items()
    ]
    options = {"baseline": "run1" if statuses else "None"}
    history.record(RunRow(run_id, started, started, "abc", "main", "v001", options, 0, {}), results)


def test_html_command_writes_any_recorded_run(tmp_path: Path, capsys) -> None:
    history = History(tmp_path / "h.sqlite")
    _record(history, "run1", {"a": "passed", "b": "failed"})
    _record(history, "run2", {"a": "failed", "b": "passed"}, {"a": "regressions", "b": "newly_passing"})
    common = ["--history", str(history.path), "--root", str(tmp_path)]
    assert main(["html", *common, "-o", str(tmp_path / "latest.html")]) == 0
    assert main(["html", "run1", *common, "-o", str(tmp_path / "first.html")]) == 0
    assert main(["html", "run2", "--baseline", "run1", *common, "-o", str(tmp_path / "fresh.html")]) == 0
    assert main(["html", "nope", *common, "-o", str(tmp_path / "x.html")]) == 2  # an input error, one line
    out, err = capsys.readouterr()
    assert "HTML report of run run2 (2 evals) written to" in out
    assert "no run 'nope'" in err and "agentloop runs" in err and "Traceback" not in err
    latest = payload_of((tmp_path / "latest.html").read_text())
    assert latest["run"]["run_id"] == "run2" and latest["run"]["git_commit"] == "abc"
    assert latest["diff"]["splits"]["optimization"]["regressions"] == ["evals/x.eval.yaml::a"]
    assert latest["diff"]["splits"]["optimization"]["newly_passing"] == ["evals/x.eval.yaml::b"]
    assert {r["eval_id"]: r["hist"][0] for r in rows_of(latest)} == {"a": "PF", "b": "FP"}
    fresh = payload_of((tmp_path / "fresh.html").read_text())
    assert fresh["diff"]["ref"] == "run1" and fresh["diff"]["splits"] == latest["diff"]["splits"]
    first = payload_of((tmp_path / "first.html").read_text())
    assert first["diff"] is None and len(first["history_runs"]) == 1
    assert [r["outcome"] for r in rows_of(first)] == ["passed", "failed"]


def test_html_command_without_history_is_an_input_error(tmp_path: Path, capsys) -> None:
    assert main(["html", "--history", str(tmp_path / "none.sqlite"), "-o", str(tmp_path / "r.html")]) == 2
    assert "no run history" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_unwritable_report_path_is_reported_not_raised(pytester: pytest.Pytester, example_copy: Path) -> None:
    (pytester.path / "blocked").write_text("a file, not a folder")
    result = pytester.runpytest("evals", "-p", "no:cacheprovider", "--agentloop-html=blocked/report.html")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["agentloop: HTML report not written: *Error*"])
    assert "Traceback" not in result.stdout.str()


def test_payload_round_trips_plain_json(tmp_path: Path) -> None:
    artifact = ArtifactView("notes.md", 5, "hello")
    trace = TraceView("ab" * 16, "t1", answer="x", artifacts=(artifact,), answer_path="a.md")
    row = EvalRow(nodeid="f.eval.yaml::a", eval_id="a", title="A", outcome="passed", trace_id="ab" * 16)
    data = payload_of(render(ReportInput(RunInfo("r"), (row,), load_trace=lambda _: trace)))
    assert json.loads(json.dumps(data)) == data
    assert data["traces"]["0"]["artifacts"][0]["text"] == "hello"


def test_definitions_are_read_from_eval_files_when_not_collected_here(example_copy: Path, tmp_path: Path) -> None:
    # Under xdist the controller collects nothing: rubric, threshold and line come from the eval files.
    nodeid = "evals/diligence/financing_risk.eval.yaml::runway-named"
    result = EvalResult("runway-named", nodeid, "t", "", "trace-01", Outcome.PASSED, 1.0, "fine", scoring="hybrid")
    missing = EvalResult("gone", "evals/diligence/nope.eval.yaml::gone", "t", "", "", Outcome.PASSED, 1.0, "")
    row, other = rows_of_results([result, missing], example_copy.parent)
    assert row.rubric and row.threshold == 0.8 and row.line and row.expected
    assert other.rubric is None and other.line is None


def test_trend_is_inline_svg_with_a_line_per_split() -> None:
    runs = (
        RunPoint("r1", "2026-12-01T00:00:00Z", {"optimization": (3, 4), "holdout": (1, 1)}),
        RunPoint("r2<x>", "2026-12-02T00:00:00Z", {"optimization": (4, 4), "holdout": (0, 1)}),
    )
    svg = pass_rate_svg(runs)
    assert svg.startswith("<svg") and svg.count("<polyline") == 2 and svg.count("<circle") == 4 + 2
    assert "r2&lt;x&gt;" in svg and "<x>" not in svg
    assert "optimization: 3/4 passed (75%)" in svg and "holdout: 0/1 passed (0%)" in svg
    assert pass_rate_svg(()) == ""
