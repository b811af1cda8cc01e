"""Gathering the evidence for a handoff from a finished session's results and the files they name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_agentloop.authoring.feedback import read_files
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.formats import check
from pytest_agentloop.handoff.context import Evidence
from pytest_agentloop.results import PYTHON_SCORING, EvalResult
from pytest_agentloop.spec import EvalSpec, load_suite
from pytest_agentloop.traces.spanindex import SpanSource
from pytest_agentloop.traces.store import TraceRecord, TraceStore, find_store_root
from pytest_agentloop.yamlload import MAX_EXPANDED_VALUES, expanded_size, load_yaml_of, plain

MAX_BYTES = 10_000_000
MAX_HARNESS_BYTES = 1_000_000


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
    for store_path in sorted({r.trace_store for r in results if r.scoring == PYTHON_SCORING and r.trace_store}):
        store_root = root / store_path  # a Python eval's run: the store its fixture read, named in its result
        if (store_root / "runs").is_dir() and store_root.resolve() not in stores:
            stores[store_root.resolve()] = TraceStore(store_root)
    return specs, list(stores.values())


def read_feedback(paths: list[Path]) -> list[dict[str, Any]]:
    """Feedback items from JSONL files (human feedback and model insights), validated on read."""
    return [item.to_json() for item in read_files(paths)]


def read_harness(path: Path | None) -> dict[str, Any] | None:
    """The harness config as data, or None when none is configured; errors name file, line and field."""
    if path is None:
        return None
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AgentloopError(f"the harness file cannot be read: {exc.strerror or exc}", path=path) from None
    if len(raw) > MAX_HARNESS_BYTES:
        raise AgentloopError(f"the harness file is over the {MAX_HARNESS_BYTES:,}-byte limit", path=path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise AgentloopError(f"harness is not UTF-8 text (byte {exc.start})", path=path, line=line) from None
    data = _harness_yaml(path, text)
    if not isinstance(data, dict):
        raise AgentloopError("the harness config must be a YAML mapping with a 'version'", path=path, line=1)
    check("harness", data, path, text=text)
    harness: dict[str, Any] = plain(data)
    return harness


def _harness_yaml(path: Path, text: str) -> object:
    document = load_yaml_of(path, text, "harness is malformed YAML")
    if "*" in text and expanded_size(document) > MAX_EXPANDED_VALUES:
        raise AgentloopError("harness YAML aliases expand too far (or refer to themselves)", path=path)
    return document


def gather(
    results: list[EvalResult],
    root: Path,
    traces_dirname: str,
    harness: Path | None,
    feedback: list[Path],
    *,
    extra_stores: Sequence[Path] = (),
) -> Evidence:
    """Specs, recorded runs, where their span lines are, feedback and harness for the traces the results touch.

    ``extra_stores`` are trace stores beyond those beside the eval files (the
    fresh runs of ``--agentloop-live``). No span line is read here: the context
    writer streams them (see :mod:`pytest_agentloop.handoff.context`).
    """
    specs, stores = _suites(results, root, traces_dirname)
    known = {store.root.resolve() for store in stores}
    stores += [TraceStore(path) for path in extra_stores if path.resolve() not in known and (path / "runs").is_dir()]
    wanted = {r.trace_id for r in results}
    records: dict[str, TraceRecord] = {}
    sources: list[SpanSource] = []
    for store in stores:
        found = [r for r in store if r.trace_id in wanted and r.trace_id not in records]
        records.update((r.trace_id, r) for r in found)
        if found:
            ids = frozenset(r.trace_id for r in found)
            sources.append(SpanSource(tuple(store.span_files(ids)), ids))
    harness_data = read_harness(harness)
    version = str((harness_data or {}).get("version") or next((r.harness_version for r in records.values()), ""))
    return Evidence(
        results=tuple(sorted(results, key=lambda r: r.nodeid)),
        specs=specs,
        records=tuple(sorted(records.values(), key=lambda r: r.trace_id)),
        feedback=tuple(read_feedback(feedback)),
        harness=harness_data,
        project_id=(harness_data or {}).get("project_id", "agentloop"),
        harness_version=version,
        span_sources=tuple(sources),
    )
