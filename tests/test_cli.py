"""The agentloop command: help, validate, traces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import EXAMPLE


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_agentloop.cli", *args], capture_output=True, text=True)


def test_help() -> None:
    result = _run("--help")
    assert result.returncode == 0
    assert "validate" in result.stdout and "traces" in result.stdout


def test_validate_good_and_bad(tmp_path: Path) -> None:
    bad = tmp_path / "bad.eval.yaml"
    bad.write_text("evals:\n  - id: x\n    title: T\n")
    result = _run("validate", str(EXAMPLE / "diligence" / "concentration.eval.yaml"), str(bad))
    assert result.returncode == 1
    assert "concentration.eval.yaml: 2 evals ok" in result.stdout
    assert f"{bad}:2: eval 'x': missing required field 'trace'" in result.stderr


def test_traces_lists_runs() -> None:
    result = _run("traces", str(EXAMPLE / "diligence" / "traces"))
    assert result.returncode == 0
    assert result.stdout.count("\n") == 5
    assert result.stdout.startswith("trace-01\t4b1f0c2a9d3e4f5a8b6c7d8e9f0a1b2c\tv001\t")
