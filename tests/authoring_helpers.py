"""Shared helpers for the feedback, insights and generate tests: a copy of the example, scripted model answers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pytest_agentloop.authoring.generate
import pytest_agentloop.authoring.insights  # noqa: F401 - imported once here: pytester drops modules a test imports
from pytest_agentloop.cli import main
from pytest_agentloop.testing.fake_openai import FakeOpenAI, Reply, Request

TRACE_01 = "4b1f0c2a9d3e4f5a8b6c7d8e9f0a1b2c"
TRACE_02 = "8e2d6a41c7b94f03a5d1e6f2b3c4d5e6"
FEEDBACK = "evals/diligence/feedback/human_feedback.jsonl"
INSIGHTS = "evals/diligence/feedback/insights.jsonl"
RECORDINGS = "evals/diligence/recordings.jsonl"
KEY = "test-key-agentloop-authoring-0123456789"
TRACE_LINE = re.compile(r"Trace id: ([0-9a-f]{32})")


def use_example(pytester: pytest.Pytester) -> Path:
    """The ini naming the example's feedback file (the example itself comes from ``example_copy``)."""
    pytester.makeini(f"[pytest]\nasyncio_default_fixture_loop_scope = function\nagentloop_feedback = {FEEDBACK}\n")
    return pytester.path / "evals" / "diligence"


def agentloop(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the ``agentloop`` command in-process; returns (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def model_args(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A key in the environment and options pointing the commands at the fake server."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return ["--base-url", server.base_url, "--model", "fake-1"]


def asked_trace(request: Request) -> str:
    """The trace id a request is about (from the prompt's ``Trace id:`` line)."""
    found = TRACE_LINE.search(request.text())
    assert found, request.text()[:300]
    return found.group(1)


def definition(eval_id: str, trace: str = TRACE_01, **fields: Any) -> dict[str, Any]:
    """One eval definition as the model answers it (every schema field present)."""
    base: dict[str, Any] = {
        "id": eval_id,
        "title": f"Title of {eval_id}",
        "trace": trace,
        "scoring": "deterministic",
        "tags": ["financing_risk"],
        "expected": "States the runway.",
        "rubric": "",
        "assertions": [{"type": "icontains", "value": "11 months", "artifact": None}],
        "pass_example": "Runway is 11 months.",
        "fail_example": "Runway is 18 months.",
        "threshold": 0.8,
        "sources": [],
    }
    return base | fields


Script = Callable[[Request], Reply]


def script(generations: dict[str, list[dict[str, Any]]] | None = None) -> Script:
    """Answers insight calls with one observation, generation calls from ``generations`` (by trace id), the judge with a pass."""

    def answer(request: Request) -> Reply:
        if "<<<OUTPUT " in request.text():  # the judge grading a generated rubric eval
            return Reply(text=json.dumps({"pass": True, "score": 0.9, "reason": "ties the burn to a raise"}))
        trace = asked_trace(request)
        if "Write eval definitions" in request.text():
            return Reply(text=json.dumps({"evals": (generations or {}).get(trace, [])}))
        return Reply(text=json.dumps({"trace": trace, "observations": [f"observation on {trace[:6]}"]}))

    return answer


def lines(path: Path) -> list[dict[str, Any]]:
    """A JSONL file's objects."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
