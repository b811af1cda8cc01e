"""Questions files are strict: each error names the file, the line, the question and the field, and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_agentloop.agent.errors import AgentConfigError
from pytest_agentloop.agent.questions import load_questions

ALLOWED = "allowed: label, question or messages, metadata"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "q.yaml",
            "- {label: a, question: x, extra: 1}\n",
            f"q.yaml:1: question 'a', field 'extra': unknown field; {ALLOWED}",
        ),
        (
            "q.yaml",
            "- label: a\n  question: x\n- label: b\n  questoin: hi\n",
            f"q.yaml:4: question 'b', field 'questoin': unknown field; {ALLOWED}",
        ),
        (
            "q.jsonl",
            '{"label": "a", "question": "x"}\n\n{"label": "b", "questoin": "y"}\n',
            f"q.jsonl:3: question 'b', field 'questoin': unknown field; {ALLOWED}",
        ),
        ("q.yaml", "- {label: 'bad label!', question: x}\n", "q.yaml:1: question 1, field 'label': got 'bad label!'"),
        ("q.yaml", "- label: a\n  metadata: {}\n", "q.yaml:1: question 'a': no question: give question"),
        (
            "q.yaml",
            "- label: a\n  question: x\n  messages: [{role: user, content: x}]\n",
            "q.yaml:3: question 'a', field 'messages': give question or messages, not both",
        ),
        ("q.yaml", "- {label: a, question: x}\n- {label: a, question: y}\n", "q.yaml:2: label 'a' appears twice"),
        ("q.yaml", "- label: a\n  question: [x\n", "q.yaml:3: not valid YAML"),
        (
            "q.jsonl",
            '{"label": "a", "label": "b", "question": "x"}\n',
            "q.jsonl:1: not JSON: key 'label' appears twice",
        ),
    ],
)
def test_a_questions_file_error_names_file_line_and_field(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(AgentConfigError) as raised:
        load_questions(path)
    assert str(raised.value).removeprefix(f"{tmp_path}/").startswith(expected), str(raised.value)


def test_a_good_questions_file_keeps_plain_data(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text("questions:\n  - label: a\n    messages: [{role: user, content: hi}]\n    metadata: {topic: t}\n")
    (question,) = load_questions(path)
    assert question.question == [{"role": "user", "content": "hi"}] and question.metadata == {"topic": "t"}
    assert type(question.metadata) is dict and type(question.question[0]) is dict
