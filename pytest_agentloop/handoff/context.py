"""The optimization context: the agent's span lines plus one synthetic span per piece of evidence.

Synthetic spans (``HARNESS_CONFIG``, ``HUMAN_FEEDBACK``, ``LLM_FEEDBACK``,
``EVAL``, ``EVAL_RESULT``, ``GATE_SUMMARY``) hang under the root span of the
trace they are about, or on one global trace. Each says where it came from in
``optimizer.signal_source``. Ids and times derive from the inputs only, so the
same inputs give the same file. Holdout evals appear only as counts.

The file is written as a stream (:func:`write_context`): the agent's span
lines go from the trace stores through validation into the output one trace at
a time (:class:`~pytest_agentloop.traces.spanindex.SpanIndex`); only root
spans and the small evidence spans are held in memory. Which traces carry all
their spans is :func:`traces_in_full`.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from pytest_agentloop.results import EvalResult, Outcome
from pytest_agentloop.spec import EvalSpec, Split
from pytest_agentloop.traces.spanindex import SpanIndex, SpanSource
from pytest_agentloop.traces.spans import KIND_INTERNAL, Resource, span_line, stable_id
from pytest_agentloop.traces.store import TraceRecord

SCOPE = "pytest-agentloop.optimizer"
SIGNATURE_CHARS = 160
VOLATILE = {"duration", "run_started"}  # differs run to run; kept out so the same inputs give the same file
#: Traces none of whose visible evals failed and that no feedback is about: this many carry all their spans
#: (the first by trace id), the rest their root spans only. See "What the optimization context carries".
PASSING_TRACES_IN_FULL = 20

DATASET_CONTEXT = f"""\
This JSONL holds an LLM agent's own traces plus synthetic evidence spans written by pytest-agentloop.
Agent spans follow OpenInference (AGENT, LLM, TOOL). Synthetic spans have kind SPAN_KIND_INTERNAL and
one of these names; the JSON payload is in attributes["input.value"], the origin in
attributes["optimizer.signal_source"]:
- HARNESS_CONFIG (global trace): the harness under test - version, system prompt, model settings, tool policy.
- HUMAN_FEEDBACK (on its trace): a domain reviewer's judgment: required_observations and prohibited_claims.
  Human judgments outrank model judgments.
- LLM_FEEDBACK (on its trace): a model's observations over traces (weaker evidence).
- EVAL (on its source trace): an eval definition: rubric, literal assertions, expected behaviour, tags.
- EVAL_RESULT (on its source trace): one gate row; status STATUS_CODE_ERROR with a failure signature when it failed.
- GATE_SUMMARY (global trace): totals; holdout evals are reported only as counts by tag and never individually.
Every trace with a failed or erroring eval, or with feedback, carries all its agent spans. Of the traces whose
evals all passed, up to {PASSING_TRACES_IN_FULL} do (as a contrast); the others carry only their root span
(question and answer), and GATE_SUMMARY's "context" field counts them.
Trace ids of agent runs are 32 hex chars; the global evidence trace is named by GATE_SUMMARY's trace_id."""


@dataclass(frozen=True)
class Evidence:
    """Everything the loop learned in one session, as plain records."""

    results: tuple[EvalResult, ...]
    specs: dict[str, EvalSpec]
    records: tuple[TraceRecord, ...]
    agent_spans: tuple[dict[str, Any], ...] = ()
    feedback: tuple[dict[str, Any], ...] = ()
    harness: dict[str, Any] | None = None
    project_id: str = "agentloop"
    harness_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    span_sources: tuple[SpanSource, ...] = ()
    """Where the records' span lines are on disk; read while the context is written, never all at once."""

    def visible_results(self) -> list[EvalResult]:
        """Results a coding agent may see individually (the holdout set is excluded)."""
        return [r for r in self.results if r.split != Split.HOLDOUT.value]


def holdout_counts(results: Iterable[EvalResult]) -> dict[str, dict[str, int]]:
    """Holdout outcomes by tag: ``{tag: {"passed": n, "failed": m, ...}}``."""
    counts: dict[str, Counter[str]] = {}
    for result in results:
        if result.split != Split.HOLDOUT.value:
            continue
        for tag in result.tags or ("untagged",):
            counts.setdefault(tag, Counter())[result.outcome.value] += 1
    return {tag: dict(sorted(c.items())) for tag, c in sorted(counts.items())}


def totals(results: Iterable[EvalResult]) -> dict[str, int]:
    """Counts by outcome plus ``total``."""
    counter = Counter(r.outcome.value for r in results)
    return {"total": sum(counter.values()), **{o.value: counter[o.value] for o in Outcome}}


def failure_signature(result: EvalResult) -> str:
    """A short, stable description of why an eval did not pass (for HALO's error grouping)."""
    first = (result.explanation or result.outcome.value).strip().splitlines()[0] if result.explanation else ""
    text = f"{result.outcome.value}: {first}" if first else result.outcome.value
    return text[:SIGNATURE_CHARS]


class _Builder:
    """Accumulates span lines with deterministic ids and times."""

    def __init__(self, evidence: Evidence, roots: dict[str, dict[str, Any]]) -> None:
        self.evidence = evidence
        self.lines: list[dict[str, Any]] = []
        self.roots = roots
        self.resource = Resource(
            "pytest-agentloop",
            "optimizer",
            "evaluation",
            evidence.harness_version,
            {"agentloop.provenance": "pytest-agentloop synthetic evidence"},
        )
        times = [_parse(r.created) for r in evidence.records]
        self.base = max(times) if times else datetime(2000, 1, 1)
        self.global_trace = stable_id("agentloop-global", evidence.project_id, length=32)
        self.counter: Counter[str] = Counter()

    def add(
        self,
        trace_id: str,
        name: str,
        source: str,
        payload: Any,
        error: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        index = self.counter[trace_id]
        self.counter[trace_id] += 1
        root = self.roots.get(trace_id)
        start = (_parse(root["end_time"]) if root else self.base) + timedelta(milliseconds=index)
        attributes = {
            "optimizer.signal_source": source,
            "optimizer.signal_kind": name,
            "input.value": json.dumps(payload, sort_keys=True, ensure_ascii=False),
            "input.mime_type": "application/json",
            **(extra or {}),
        }
        self.lines.append(
            span_line(
                trace_id=trace_id,
                span_id=stable_id(trace_id, name, index),
                parent_span_id=root["span_id"] if root else "",
                name=name,
                kind=KIND_INTERNAL,
                observation="SPAN",
                start=start,
                end=start + timedelta(microseconds=500),
                resource=self.resource,
                attributes=attributes,
                project_id=self.evidence.project_id,
                error=error,
            )
            | {"scope": {"name": SCOPE, "version": "1"}}
        )


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00").replace("000Z", ""))


def _spec_payload(spec: EvalSpec) -> dict[str, Any]:
    return {
        "eval_id": spec.id,
        "title": spec.title,
        "tags": list(spec.tags),
        "scoring": spec.scoring.value,
        "expected": spec.expected,
        "rubric": spec.rubric,
        "threshold": spec.threshold,
        "must_pass": spec.must_pass,
        "assertions": [{"type": a.type, "value": a.value, "artifact": a.artifact} for a in spec.assertions],
        "examples": dict(spec.examples),
    }


def traces_in_full(evidence: Evidence) -> frozenset[str]:
    """The traces whose every span goes into the context (the others give their root spans only).

    Those a visible eval failed or errored on and those feedback is about, then
    the first :data:`PASSING_TRACES_IN_FULL` others by trace id. Holdout results
    do not count, so which traces are complete says nothing about the holdout set.
    """
    ids = {r.trace_id for r in evidence.records}
    bad = (Outcome.FAILED, Outcome.ERROR)
    diagnosed = {r.trace_id for r in evidence.visible_results() if r.outcome in bad}
    diagnosed |= {str(item.get("trace_id")) for item in evidence.feedback}
    others = sorted(ids - diagnosed)[:PASSING_TRACES_IN_FULL]
    return frozenset((diagnosed & ids) | set(others))


def write_context(evidence: Evidence, out: BinaryIO, spool_dir: Path | None = None) -> None:
    """Write the optimization context to ``out``: agent spans first, then the evidence spans, in a stable order.

    ``spool_dir`` holds a temporary file for span lines that must be
    re-serialised (on the output's file system, so not in memory).
    """
    trace_ids = {r.trace_id for r in evidence.records}
    full = traces_in_full(evidence)
    with tempfile.TemporaryFile(dir=spool_dir) as spool:
        index = SpanIndex(spool, full)
        index.add_spans(evidence.agent_spans, trace_ids)
        for source in evidence.span_sources:
            index.add_source(source)
        index.write(out)
        root_only = len([t for t in index.trace_ids() if t not in full])
    for line in _evidence_lines(evidence, index.roots, trace_ids, root_only):
        out.write((json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8"))


def build_context(evidence: Evidence) -> list[dict[str, Any]]:
    """Every span line of the optimization context, in memory (small inputs and tests; see :func:`write_context`)."""
    buffer = io.BytesIO()
    write_context(evidence, buffer)
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def _evidence_lines(
    evidence: Evidence, roots: dict[str, dict[str, Any]], trace_ids: set[str], root_only: int
) -> list[dict[str, Any]]:
    builder = _Builder(evidence, roots)
    if evidence.harness is not None:
        builder.add(builder.global_trace, "HARNESS_CONFIG", "harness_config", evidence.harness)
    for item in sorted(evidence.feedback, key=lambda f: (str(f.get("trace_id")), str(f.get("id")))):
        if item.get("trace_id") in trace_ids:
            kind = "HUMAN_FEEDBACK" if item.get("source") == "human_feedback" else "LLM_FEEDBACK"
            builder.add(str(item["trace_id"]), kind, str(item.get("source", "llm_insight")), item)
    for result in sorted(evidence.visible_results(), key=lambda r: (r.trace_id, r.eval_id)):
        spec = evidence.specs.get(result.nodeid)
        if spec is not None:
            builder.add(result.trace_id, "EVAL", "eval_definition", _spec_payload(spec))
        error = failure_signature(result) if result.outcome in (Outcome.FAILED, Outcome.ERROR) else None
        builder.add(
            result.trace_id,
            "EVAL_RESULT",
            "eval_result",
            {k: v for k, v in result.to_json().items() if k not in VOLATILE},
            error=error,
            extra={"eval.id": result.eval_id, "eval.outcome": result.outcome.value},
        )
    builder.add(builder.global_trace, "GATE_SUMMARY", "gate_summary", _summary(evidence, root_only))
    return builder.lines


def _summary(evidence: Evidence, root_only: int) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "optimization": totals(evidence.visible_results()),
        "holdout_by_tag": holdout_counts(evidence.results),
        "holdout": totals(r for r in evidence.results if r.split == Split.HOLDOUT.value),
    }
    if root_only:  # only then, so a context with every trace complete reads as it always has
        summary["context"] = {"traces_root_span_only": root_only, "passing_traces_in_full": PASSING_TRACES_IN_FULL}
    return summary


def to_jsonl(lines: list[dict[str, Any]]) -> str:
    """The context as JSONL text."""
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
