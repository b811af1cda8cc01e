"""Python evals: pytest tests that read a recorded run through the ``agentloop_trace`` fixture.

Such a test is an eval like one collected from a YAML file: it makes an :class:`EvalResult`
(scoring ``python``) that the summary, gate, history, reports and handoff read, and its failure
is an eval failure, not an outside one. Other Python tests are left as they are.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from pytest_agentloop.collect import EvalItem, display_path
from pytest_agentloop.outcomes import explanation_of, outcome_of
from pytest_agentloop.results import PYTHON_SCORING, EvalResult
from pytest_agentloop.traces.store import TraceRecord, TraceStore

MUST_PASS_MARKER = "agentloop_must_pass"
TRACE_FIXTURE = "agentloop_trace"

# Markers that say how pytest runs a test, not what the eval is about: never tags.
_PYTEST_MARKERS = frozenset(
    {"parametrize", "skip", "skipif", "xfail", "usefixtures", "filterwarnings", "tryfirst", "trylast"}
)


def is_python_eval(item: pytest.Item) -> bool:
    """Whether ``item`` is a Python test whose fixtures include ``agentloop_trace``."""
    return not isinstance(item, EvalItem) and TRACE_FIXTURE in getattr(item, "fixturenames", ())


def python_result(item: pytest.Item, report: pytest.TestReport) -> EvalResult:
    """The Python eval's result record from its first decisive report and the run its fixture returned."""
    record = _record_of(item)
    outcome = outcome_of(report)
    return EvalResult(
        eval_id=item.name,
        nodeid=item.nodeid,
        title=_title(item),
        trace_id="" if record is None else record.trace_id,
        trace_label=_marker_label(item) if record is None else record.label,
        outcome=outcome,
        score=None,
        explanation=explanation_of(report, item),
        tags=tags_of(item),
        must_pass=item.get_closest_marker(MUST_PASS_MARKER) is not None,
        scoring=PYTHON_SCORING,
        eval_file=display_path(item.config, item.path),
        trace_store=_store_of(item, record),
        question=None if record is None else record.question,
        harness_version=None if record is None else record.harness_version,
        cost=None if record is None else record.cost_usd,
    )


def _record_of(item: pytest.Item) -> TraceRecord | None:
    """The run the ``agentloop_trace`` fixture returned (None when setup failed before it)."""
    record = getattr(item, "funcargs", {}).get(TRACE_FIXTURE)
    return record if isinstance(record, TraceRecord) else None


def _marker_label(item: pytest.Item) -> str:
    marker = item.get_closest_marker(TRACE_FIXTURE)
    return str(marker.args[0]) if marker is not None and marker.args else ""


def _title(item: pytest.Item) -> str:
    """The first line of the test function's docstring, else the test's name."""
    doc = inspect.getdoc(getattr(item, "obj", None)) if hasattr(item, "obj") else None
    first = (doc or "").strip().splitlines()
    return first[0].strip() if first else item.name


def tags_of(item: pytest.Item) -> tuple[str, ...]:
    """The item's markers (its own, its class's, its module's) that are neither pytest's nor agentloop's."""
    names = (m.name for m in item.iter_markers())
    return tuple(sorted({n for n in names if n not in _PYTEST_MARKERS and not n.startswith("agentloop")}))


def _store_of(item: pytest.Item, record: TraceRecord | None) -> str | None:
    """The store the run lives in (a live run's own), else the test's ``agentloop_store``, as a display path."""
    root: Path | None = None
    if record is not None:
        root = record.store_root or record.run_dir.parent.parent
    else:
        store = getattr(item, "funcargs", {}).get("agentloop_store")
        root = store.root if isinstance(store, TraceStore) else None
    return None if root is None else display_path(item.config, root)
