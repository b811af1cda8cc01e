"""The bundled diligence example: what a newcomer sees from `pytest evals/`."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_collects_twenty_yaml_evals(pytester: pytest.Pytester, example_copy: Path) -> None:
    result = pytester.runpytest("evals", "--collect-only", "-q")
    items = [line for line in result.stdout.lines if ".eval.yaml::" in line]
    assert len(items) == 20
    assert all(line.startswith("evals/diligence/") for line in items)


def test_passes_offline_from_human_labels(pytester: pytest.Pytester, example_copy: Path, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = pytester.runpytest("evals", "--strict-markers", "-rs")
    assert result.ret == 0
    outcomes = result.parseoutcomes()
    assert outcomes == {"passed": 23}  # 20 YAML evals and 3 Python evals
    result.stdout.fnmatch_lines(["rubric verdicts (replay mode): 7 human"])


def test_a_changed_output_errors_for_exactly_that_eval(
    pytester: pytest.Pytester, example_copy: Path, monkeypatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    answer = example_copy / "diligence" / "traces" / "runs" / "trace-05" / "answer.md"
    answer.write_text(answer.read_text() + "\nA closing remark added after review.\n")
    result = pytester.runpytest("evals", "-q")
    assert result.parseoutcomes()["errors"] == 1
    result.stdout.fnmatch_lines(
        [
            "ERROR evals/diligence/unsupported_metrics.eval.yaml::nrr-and-cac-unsupported*",
            "*1 error*",
        ]
    )
    result.stdout.fnmatch_lines(["*no stored verdict for its rubric*set OPENAI_API_KEY*agentloop label*"])


def test_marker_selects_a_subset(pytester: pytest.Pytester, example_copy: Path) -> None:
    result = pytester.runpytest("evals", "-m", "data_quirks", "--strict-markers")
    outcomes = result.parseoutcomes()
    assert outcomes == {"passed": 5, "deselected": 18}


def test_a_changed_recording_fails_exactly_its_eval(pytester: pytest.Pytester, example_copy: Path) -> None:
    answer = example_copy / "diligence" / "traces" / "runs" / "trace-04" / "answer.md"
    answer.write_text(answer.read_text().replace('"Aurora"', "another vendor"))
    result = pytester.runpytest("evals", "-q")
    assert result.parseoutcomes()["failed"] == 1
    result.stdout.fnmatch_lines(["FAILED evals/diligence/data_quirks.eval.yaml::aurora-faq-unreliable*"])


def test_recorded_runs_say_who_wrote_them(example_copy: Path) -> None:
    import json

    for record in (example_copy / "diligence" / "traces" / "runs").glob("*/record.json"):
        provenance = json.loads(record.read_text())["provenance"]
        assert provenance["source"] == "example_authors"
        assert "not model output" in provenance["note"]


def test_example_spans_validate_against_halo(example_copy: Path) -> None:
    import json

    from engine.traces.models.canonical_span import SpanRecord

    lines = (example_copy / "diligence" / "traces" / "spans.jsonl").read_text().splitlines()
    assert lines
    for line in lines:
        span = SpanRecord.model_validate(json.loads(line))
        assert span.kind in {"SPAN_KIND_CLIENT", "SPAN_KIND_INTERNAL"}
        assert span.start_time.endswith("Z") and len(span.start_time) == 30
