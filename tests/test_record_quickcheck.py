"""The quick check of run records: a yes only when the full JSON Schema check agrees, and no jsonschema import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.formats import problem
from pytest_agentloop.traces.quickcheck import record_fits

from conftest import EXAMPLE

ROOT = Path(__file__).resolve().parent.parent
RECORDS = sorted(ROOT.glob("evals/**/record.json")) + sorted(ROOT.glob("tests/outside/**/record.json"))
BASE = json.loads((EXAMPLE / "diligence" / "traces" / "runs" / "trace-01" / "record.json").read_text())

VALID: list[dict[str, Any]] = [
    {"provenance": "hand-written"},
    {"provenance": {"source": "captured", "agent": "mypkg.agent:run"}},
    {"format": 2, "status": "ok", "error": None, "usage": None, "cost_usd": None, "wall_seconds": 1.5},
    {"format": 1, "usage": {"input_tokens": 3, "output_tokens": 0, "requests": 1}, "cost_usd": 0},
    {"usage": {"input_tokens": None}, "cost_usd": 0.25, "model": None, "messages": [], "metadata": {}},
]
INVALID: list[dict[str, Any]] = [
    {"format": True},  # a bool is not 1
    {"format": 3},
    {"usage": {"input_tokens": -1}},
    {"usage": {"input_tokens": True}},
    {"usage": {"input_tokens": 1.5}},
    {"usage": []},
    {"cost_usd": -0.1},
    {"cost_usd": "free"},
    {"wall_seconds": False},
    {"provenance": {"source": "dreamed"}},
    {"provenance": {"source": "captured", "extra": 1}},
    {"provenance": 5},
    {"label": "two words"},
    {"trace_id": "ABC"},
    {"created": "yesterday"},
    {"harness_version": ""},
    {"status": "maybe"},
    {"unknown_field": 1},
    {"messages": {}},
]
UNSURE: list[dict[str, Any]] = [  # valid, but the quick check leaves them to the full check
    {"format": 1.0},
    {"usage": {"input_tokens": 2.0}},
    {"cost_usd": float("nan")},
]


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_bundled_record_fits_quickly(path: Path) -> None:
    data = json.loads(path.read_text())
    assert record_fits()(data) and problem("record", data) is None


CASES = [(c, "yes") for c in VALID] + [(c, "no") for c in INVALID] + [(c, "unsure") for c in UNSURE]


@pytest.mark.parametrize(("change", "kind"), CASES, ids=[repr(c) for c, _ in CASES])
def test_the_quick_check_says_yes_only_when_the_full_check_does(change: dict[str, Any], kind: str) -> None:
    data = {**BASE, **change}
    quick, full = record_fits()(data), problem("record", data) is None
    assert full is (kind != "no")
    assert quick is (kind == "yes")  # never a yes the full check refuses; a yes for the plain valid forms


def test_reading_a_store_imports_no_jsonschema() -> None:
    code = (
        "import sys; from pathlib import Path; from pytest_agentloop.traces.store import TraceStore; "
        f"TraceStore(Path({str(EXAMPLE / 'diligence' / 'traces')!r})).get('trace-01'); "
        "print('jsonschema' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
