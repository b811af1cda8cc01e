"""``agentloop feedback add|list`` and the feedback file format, validated on read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from authoring_helpers import FEEDBACK, TRACE_02, agentloop, lines, use_example

from pytest_agentloop.authoring.feedback import FeedbackError, read_files
from pytest_agentloop.handoff.evidence import read_feedback

from conftest import EXAMPLE


@pytest.fixture
def suite(pytester: pytest.Pytester, example_copy: Path) -> Path:
    """The example copied into the pytester folder, with the ini naming its feedback file."""
    return use_example(pytester)


def test_the_example_feedback_follows_the_documented_format() -> None:
    items = read_files([EXAMPLE / "diligence" / "feedback" / "human_feedback.jsonl"])
    assert [f.id for f in items] == ["hf-01", "hf-02", "hf-03", "hf-04", "hf-05"]
    assert all(f.is_human and f.author and f.rating == "good" and f.theme for f in items)


def test_add_appends_one_valid_line_and_list_shows_it(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = agentloop(
        capsys,
        *("feedback", "add", "trace-02", "--theme", "arr_source", "--summary", "Relies on the bridge."),
        *("--require", "names the $36.9M bridge", "--require", "keeps the conflict visible"),
        *("--prohibit", "calls $43.0M the ARR", "--bad", "--by", "lee"),
    )
    assert code == 0, out
    assert f"added hf-06 on trace-02 ({TRACE_02})" in out
    [*_, added] = lines(suite.parent.parent / FEEDBACK)
    assert added["id"] == "hf-06" and added["trace_id"] == TRACE_02 and added["label"] == "trace-02"
    assert added["source"] == "human_feedback" and added["author"] == "lee" and added["rating"] == "bad"
    assert added["required_observations"] == ["names the $36.9M bridge", "keeps the conflict visible"]
    assert added["prohibited_claims"] == ["calls $43.0M the ARR"]
    assert added["question"].startswith("How strong is revenue quality") and added["created"].endswith("Z")
    code, out, _ = agentloop(capsys, "feedback", "list", "--trace", "trace-02")
    assert code == 0
    assert "hf-02\ttrace-02" in out and "hf-06\ttrace-02\tarr_source\thuman_feedback by lee, rated bad" in out
    assert "    prohibited: calls $43.0M the ARR" in out and "hf-01" not in out
    assert out.rstrip().endswith("2 feedback lines")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trace-99", "--summary", "s"], "no recorded run 'trace-99'"),
        (["trace-01", "--summary", "  "], "--summary must not be empty"),
        (["trace-01", "--summary", "s", "--id", "hf-01"], "feedback id 'hf-01' is already used"),
        (["trace-01", "--summary", "s", "--require", " "], "--require: expected a list of non-empty strings"),
    ],
)
def test_add_refuses_bad_input_and_leaves_the_file_alone(
    suite: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    before = (suite.parent.parent / FEEDBACK).read_bytes()
    code, _, err = agentloop(capsys, "feedback", "add", *argv, "--theme", "financing_risk", "--by", "lee")
    assert code != 0
    assert message in err
    assert (suite.parent.parent / FEEDBACK).read_bytes() == before


GOOD = {
    "id": "hf-1",
    "trace_id": TRACE_02,
    "label": "trace-02",
    "question": "q?",
    "theme": "arr",
    "summary": "fine",
    "source": "human_feedback",
    "author": "lee",
}

INSIGHT = {
    "id": "insight-trace-02",
    "trace_id": TRACE_02,
    "label": "trace-02",
    "question": "q?",
    "source": "llm_insight",
    "model": "m",
    "prompt_version": "insights-1",
    "observations": ["o"],
}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        (
            json.dumps({"source": "human:lee", "feedback": "x"} | {"id": "x"}),
            "field 'source': 'human:lee' is not one of",
        ),
        (json.dumps({**GOOD, "id": "hf-2", "author": None}), "field 'author': missing"),
        (json.dumps({**GOOD, "id": "hf-2", "rating": "ok"}), "field 'rating': 'ok' is not one of good, bad"),
        (json.dumps({**GOOD, "id": "hf-2", "mood": "x"}), "field 'mood': unknown for source 'human_feedback'"),
        (json.dumps({**GOOD, "id": "hf-2", "trace_id": "abc"}), "field 'trace_id': expected 32 lowercase hex"),
        (json.dumps({**GOOD, "id": "hf-2", "required_observations": "x"}), "field 'required_observations'"),
        (json.dumps({**GOOD, "source": "llm_insight", "id": "i-1"}), "field 'theme': unknown for source 'llm_insight'"),
        (json.dumps({**INSIGHT, "model": None}), "field 'model': missing"),
        (
            json.dumps({**INSIGHT, "observations": []}),
            "field 'observations': an insight needs at least one observation",
        ),
        (json.dumps(GOOD), "field 'id': 'hf-1' is used twice (first on line 1)"),
    ],
)
def test_a_malformed_line_names_file_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "feedback.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + line + "\n")
    with pytest.raises(FeedbackError) as caught:
        read_files([path])
    assert str(caught.value).startswith(f"{path}:2: ")
    assert message.removeprefix("line 2: ") in str(caught.value)


def test_a_last_line_without_newline_is_an_error_not_skipped(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    path.write_text(json.dumps(GOOD) + '\n{"id": "hf-2", "trace')
    with pytest.raises(FeedbackError, match=r"feedback.jsonl:2: this last line is not a complete JSON object"):
        read_files([path])


def test_the_handoff_reads_feedback_through_the_validated_reader(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    path.write_text(json.dumps(GOOD) + "\n")
    assert read_feedback([path])[0]["summary"] == "fine"
    path.write_text(json.dumps({"source": "human:lee", "feedback": "empty span before"}) + "\n")
    with pytest.raises(FeedbackError, match=r":1: field 'source'"):
        read_feedback([path])


def test_add_makes_the_first_feedback_file(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = suite / "feedback" / "new" / "first.jsonl"
    code, out, err = agentloop(
        capsys,
        *("feedback", "add", "trace-02", "--file", str(new), "--theme", "arr_source"),
        *("--summary", "Good.", "--good", "--by", "lee"),
    )
    assert code == 0, out + err
    [added] = lines(new)
    assert added["id"] == "hf-01" and added["label"] == "trace-02" and added["rating"] == "good"
