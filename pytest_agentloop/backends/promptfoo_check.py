"""A Promptfoo Python assertion that runs one of this package's checks, as ``pytest`` would.

The exported config names this file (``type: python``, ``value: file://…/promptfoo_check.py``)
for checks Promptfoo has no native form of; the assertion's ``config.agentloop``
says which check, on what, with which value. Promptfoo runs it with
``$PROMPTFOO_PYTHON`` (the exported config sets it to the interpreter that exported).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run by Promptfoo as a file: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def get_assert(output: str, context: dict[str, Any]) -> dict[str, Any]:
    """Promptfoo's entry point: a grading result ``{pass, score, reason}``."""
    from pytest_agentloop.evaluate import run_assertion
    from pytest_agentloop.spec import AssertionSpec

    config = (context.get("config") or {}).get("agentloop")
    if not isinstance(config, dict):
        return {"pass": False, "score": 0.0, "reason": "agentloop check: no config.agentloop in the assertion"}
    spec = AssertionSpec(
        type=str(config["type"]),
        value=config.get("value"),
        line=int(config.get("line") or 0),
        artifact=config.get("artifact"),
        threshold=config.get("threshold"),
    )
    artifacts = Path(config["artifacts_dir"]) if config.get("artifacts_dir") else None
    dataroom = Path(config["dataroom_dir"]) if config.get("dataroom_dir") else None
    result = run_assertion(spec, output, artifacts if artifacts and artifacts.is_dir() else None, dataroom)
    return {"pass": result.passed, "score": result.score, "reason": f"{result.expected}; seen: {result.seen}"}
