"""Gathering the evidence for a handoff from a finished session's results and the files they name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pytest_agentloop.authoring.feedback import read_files
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.handoff.context import Evidence
from pytest_agentloop.results import EvalResult
from pytest_agentloop.spec import EvalSpec, load_suite
from pytest_agentloop.traces.store import TraceRecord, TraceStore, find_store_root

MAX_BYTES = 10_000_000


def _suites(results: list[EvalResult], root: Path, traces_dirname: str) -> tuple[dict[str, EvalSpec], list[TraceStore]]:
    specs: dict[str, EvalSpec] = {}
    stores: dict[Path, TraceStore] = {}
    for file_part in sorted({r.nodeid.split("::")[0] for r in results if ".eval." in r.nodeid}):
        path = root / file_part
        try:
            suite = load_suite(path, MAX_BYTES)
        except (AgentloopError, OSError):
            continue
        for spec in suite.evals:
            specs[f"{file_part}::{spec.id}"] = spec
        store_root = suite.traces_dir or find_store_root(path.parent, traces_dirname, root)
        if store_root is not None and store_root.resolve() not in stores:
            stores[store_root.resolve()] = TraceStore(store_root)
    return specs, list(stores.values())


def read_feedback(paths: list[Path]) -> list[dict[str, Any]]:
    """Feedback items from JSONL files (human feedback and model insights), validated on read."""
    return [item.to_json() for item in read_files(paths)]


def read_harness(path: Path | None) -> dict[str, Any] | None:
    """The harness config as data, or None when none is configured."""
    if path is None:
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise AgentloopError("the harness config must be a YAML mapping", path=path)
    return data


def gather(
    results: list[EvalResult], root: Path, traces_dirname: str, harness: Path | None, feedback: list[Path]
) -> Evidence:
    """Specs, recorded runs, span lines, feedback and harness for the traces the results touch."""
    specs, stores = _suites(results, root, traces_dirname)
    wanted = {r.trace_id for r in results}
    records: dict[str, TraceRecord] = {}
    spans: list[dict[str, Any]] = []
    for store in stores:
        for record in store:
            if record.trace_id in wanted and record.trace_id not in records:
                records[record.trace_id] = record
                spans.extend(store.spans(record.trace_id))
    harness_data = read_harness(harness)
    version = str((harness_data or {}).get("version") or next((r.harness_version for r in records.values()), ""))
    return Evidence(
        results=tuple(sorted(results, key=lambda r: r.nodeid)),
        specs=specs,
        records=tuple(sorted(records.values(), key=lambda r: r.trace_id)),
        agent_spans=tuple(spans),
        feedback=tuple(read_feedback(feedback)),
        harness=harness_data,
        project_id=(harness_data or {}).get("project_id", "agentloop"),
        harness_version=version,
    )
