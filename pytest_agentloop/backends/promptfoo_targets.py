"""Finding the evals to hand to Promptfoo, and their recorded outputs, outside a pytest session."""

from __future__ import annotations

from pathlib import Path

from pytest_agentloop.backends.promptfoo_export import ExportTarget
from pytest_agentloop.config import DEFAULT_JUDGE_CONTEXT_KB, DEFAULT_TRACES_DIRNAME
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.judge.context import read_context
from pytest_agentloop.spec import load_suite
from pytest_agentloop.traces.store import TraceStore, find_store_root

MAX_BYTES = 10_000_000


def display(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it, with forward slashes."""
    path = path.resolve()
    return (path.relative_to(root) if path.is_relative_to(root) else path).as_posix()


def targets_for(
    files: list[Path],
    root: Path,
    traces_dirname: str = DEFAULT_TRACES_DIRNAME,
    limit: int = DEFAULT_JUDGE_CONTEXT_KB * 1000,
) -> list[ExportTarget]:
    """Every eval in ``files`` with its recorded answer and what the judge is shown; node ids relative to ``root``."""
    targets = []
    for path in files:
        suite = load_suite(path, MAX_BYTES)
        store_root = suite.traces_dir or find_store_root(path.resolve().parent, traces_dirname, root.resolve())
        if store_root is None:
            raise AgentloopError(
                f"no trace store found: no {traces_dirname}/runs/ beside this file or above", path=path
            )
        store = TraceStore(store_root)
        shown = display(path, root.resolve())
        for spec in suite.evals:
            record = store.get(spec.trace)
            artifacts = record.artifacts_dir.resolve() if record.artifacts_dir.is_dir() else None
            targets.append(
                ExportTarget(
                    spec=spec,
                    nodeid=f"{shown}::{spec.id}",
                    eval_file=shown,
                    output=record.answer,
                    trace_label=record.label,
                    artifacts_dir=artifacts,
                    dataroom_dir=suite.dataroom_dir.resolve() if suite.dataroom_dir else None,
                    question=record.asked,
                    context=read_context(spec.id, artifacts, tuple(getattr(spec, "judge_context", ()) or ()), limit),
                )
            )
    return targets
