"""Tools of the diligence analyst, confined to the dataroom (reads) and the run's working directory (writes).

Paths are workspace-relative. ``..``, absolute paths and symlinks that lead
out of their root are refused before anything is opened; a refusal is an
error the run reports, not an answer the model can argue with.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from agents import RunContextWrapper, function_tool

from pytest_agentloop.agent.builtin import AgentContext

REQUIRED = (
    "summary_answer.md",
    "investment_memo.md",
    "risk_register.json",
    "open_questions.md",
    "citations.json",
    "evidence_table.csv",
)
MAX_READ = 200_000


class OutsideRoot(Exception):
    """A path that leaves the folder a tool is confined to."""


def confined(root: Path, relative: str) -> Path:
    """``root / relative`` if it stays inside ``root`` (no ``..``, no absolute path, no symlink out)."""
    if not relative or Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise OutsideRoot(f"refused path {relative!r}: give a path inside the workspace, without '..'")
    base = root.resolve()
    candidate = base / relative
    probe = candidate
    while probe != base:  # every existing component, so a symlinked folder cannot lead out either
        if probe.is_symlink() and not probe.resolve().is_relative_to(base):
            raise OutsideRoot(f"refused path {relative!r}: it is a link leading out of the workspace")
        probe = probe.parent
    return candidate


def _dataroom(ctx: RunContextWrapper[AgentContext]) -> Path:
    if ctx.context.dataroom is None:
        raise OutsideRoot("no dataroom configured (tool_policy.readable_data_root)")
    return ctx.context.dataroom


@function_tool(failure_error_function=None)
def list_files(ctx: RunContextWrapper[AgentContext], folder: str = ".") -> str:
    """List the dataroom files under a folder (workspace-relative), one path a line."""
    root = _dataroom(ctx)
    base = root if folder in ("", ".") else confined(root, folder)
    paths = sorted(p.relative_to(root).as_posix() for p in base.rglob("*") if p.is_file() and not p.is_symlink())
    return "\n".join(paths) or "(no files)"


@function_tool(failure_error_function=None)
def read_file(ctx: RunContextWrapper[AgentContext], path: str) -> str:
    """Read one dataroom file (workspace-relative path)."""
    target = confined(_dataroom(ctx), path)
    if not target.is_file():
        return f"no such file: {path}"
    return target.read_text(encoding="utf-8", errors="replace")[:MAX_READ]


@function_tool(failure_error_function=None)
def write_artifact(ctx: RunContextWrapper[AgentContext], name: str, content: str) -> str:
    """Write one output artifact (a file name such as summary_answer.md) into the run's output folder."""
    target = confined(ctx.context.workdir, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content, encoding="utf-8")
    return f"wrote {name} ({len(content)} characters)"


def contract_problems(outputs: Path, dataroom: Path | None) -> list[str]:
    """What the output contract finds wrong with the artifacts written so far."""
    problems = [
        f"missing or empty: {n}" for n in REQUIRED if not (outputs / n).is_file() or not (outputs / n).stat().st_size
    ]
    sources: list[str] = []
    for name, keys in (("risk_register.json", {"evidence"}), ("citations.json", {"claim_id", "claim", "sources"})):
        rows = _json_rows(outputs / name, keys, problems)
        sources += [s for row in rows for s in row.get("evidence", row.get("sources", [])) if isinstance(s, str)]
    table = outputs / "evidence_table.csv"
    if table.is_file():
        header = next(csv.reader(io.StringIO(table.read_text(encoding="utf-8"))), [])
        if header[:3] != ["claim_id", "claim", "sources"]:
            problems.append(f"evidence_table.csv columns are {header}, expected claim_id, claim, sources")
    if dataroom is not None:
        problems += [f"cited source does not exist: {s}" for s in sorted(set(sources)) if not (dataroom / s).is_file()]
    return problems


def _json_rows(path: Path, keys: set[str], problems: list[str]) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        problems.append(f"{path.name} is not JSON: {exc.msg}")
        return []
    if not isinstance(rows, list) or not all(isinstance(r, dict) and keys <= set(r) for r in rows):
        problems.append(f"{path.name} must be a list of objects with {', '.join(sorted(keys))}")
        return []
    return rows


@function_tool
def check_output_contract(ctx: RunContextWrapper[AgentContext]) -> str:
    """Check the six required artifacts: present, non-empty, right JSON and CSV shapes, citations resolving."""
    problems = contract_problems(ctx.context.workdir, ctx.context.dataroom)
    return "output contract ok" if not problems else "\n".join(problems)
