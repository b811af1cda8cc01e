"""Running ``promptfoo eval`` on a config and reading its results file.

Promptfoo exits 0 when every test passes and 100 when any fails; anything else
is a failed run. Each row of ``results.results[]`` has ``success``, ``score``,
``error``, ``failureReason``, ``gradingResult`` (``reason``,
``componentResults``) and ``testCase`` (``description``, ``vars``,
``metadata``); the backend matches rows to evals by ``metadata.nodeid``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pytest_agentloop.errors import AgentloopError

PASS_EXIT_CODES = (0, 100)
FAILURE_REASON_ERROR = 2


class PromptfooRunError(AgentloopError):
    """``promptfoo eval`` did not finish, or wrote no readable results."""


@dataclass(frozen=True)
class Component:
    """One assertion's result as Promptfoo reports it."""

    type: str | None
    passed: bool
    score: float
    reason: str
    metric: str | None = None
    weight: float | None = None
    value: Any = None
    grading_prompt: str | None = None


@dataclass(frozen=True)
class Row:
    """One test's result."""

    nodeid: str
    success: bool
    score: float
    reason: str
    error: str | None = None
    failure_reason: int | None = None
    components: tuple[Component, ...] = field(default_factory=tuple)

    @property
    def provider_error(self) -> str | None:
        """Promptfoo's own error for this test (its provider, or an assertion that threw); not a failed check."""
        if self.failure_reason == FAILURE_REASON_ERROR:
            return self.error or self.reason or "Promptfoo reported an error"
        return None

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form (for the shared results file under xdist)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Row:
        """Inverse of :meth:`to_json`."""
        components = tuple(Component(**c) for c in data.get("components", []))
        return cls(**{**data, "components": components})


def promptfoo_env(work: Path) -> dict[str, str]:
    """The environment ``promptfoo eval`` runs in: no telemetry, no update check, state kept in ``work``."""
    return {
        **os.environ,
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_DISABLE_SHARING": "1",
        "PROMPTFOO_CONFIG_DIR": str(work / "state"),
        "PROMPTFOO_PYTHON": os.environ.get("PROMPTFOO_PYTHON", sys.executable),
        "NO_COLOR": "1",
    }


def run_eval(
    executable: Path, config: Path, results: Path, concurrency: int, env: dict[str, str], timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """``promptfoo eval -c CONFIG -o RESULTS --no-cache``; raises PromptfooRunError unless it exits 0 or 100."""
    command = [
        str(executable),
        "eval",
        "-c",
        str(config),
        "-o",
        str(results),
        "--no-cache",
        "--no-table",
        "--no-progress-bar",
        "-j",
        str(concurrency),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=config.parent, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PromptfooRunError(f"promptfoo eval ran over {timeout:g}s on {config}") from None
    if done.returncode not in PASS_EXIT_CODES or not results.is_file():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise PromptfooRunError(f"promptfoo eval exited {done.returncode} on {config}:\n{tail}")
    return done


def _component(data: dict[str, Any]) -> Component:
    assertion = data.get("assertion") or None
    metadata = data.get("metadata") or {}
    return Component(
        type=assertion.get("type") if assertion else None,
        passed=bool(data.get("pass")),
        score=float(data.get("score") or 0.0),
        reason=str(data.get("reason") or ""),
        metric=assertion.get("metric") if assertion else None,
        weight=assertion.get("weight") if assertion else None,
        value=assertion.get("value") if assertion else None,
        grading_prompt=metadata.get("renderedGradingPrompt") if isinstance(metadata, dict) else None,
    )


def _row(data: dict[str, Any]) -> Row | None:
    case = data.get("testCase") or {}
    nodeid = (case.get("metadata") or {}).get("nodeid")
    if not nodeid:
        return None
    grading = data.get("gradingResult") or {}
    return Row(
        nodeid=str(nodeid),
        success=bool(data.get("success")),
        score=float(data.get("score") or 0.0),
        reason=str(grading.get("reason") or ""),
        error=data.get("error") or None,
        failure_reason=data.get("failureReason"),
        components=tuple(_component(c) for c in grading.get("componentResults") or []),
    )


def read_results(path: Path) -> dict[str, Row]:
    """Rows of a results file by node id."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        rows = document["results"]["results"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PromptfooRunError(f"cannot read Promptfoo's results {path}: {type(exc).__name__}: {exc}") from None
    found = (_row(r) for r in rows if isinstance(r, dict))
    return {row.nodeid: row for row in found if row is not None}
