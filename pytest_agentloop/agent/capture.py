"""Capture of one agent run into a trace store: record, answer, artifacts and span lines.

Layout written (store format 2: each run keeps its own span file, so
concurrent captures never interleave lines)::

    <store>/runs/<label>/record.json     trace id, label, question, harness version, model, created,
                                         status, error, usage, cost, wall time, provenance
    <store>/runs/<label>/answer.md       the final answer (absent for a failed run)
    <store>/runs/<label>/artifacts/      the files the run wrote in its working directory (with a seed:
                                         the files it added or changed)
    <store>/runs/<label>/spans.jsonl     the run's span lines (HALO's SpanRecord shape)

A run is staged in a hidden folder and renamed into place, so a reader never
sees half a run; a failed run keeps its record, error and spans but no answer.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pytest_agentloop.agent.cost import cost_of
from pytest_agentloop.agent.errors import AgentConfigError, require
from pytest_agentloop.agent.harness import Harness
from pytest_agentloop.agent.redact import Redactor
from pytest_agentloop.agent.runner import AgentCallable, AgentReply, Question, Usage, coerce_reply, question_text
from pytest_agentloop.agent.spanlines import LineContext, SpanLineError, span_line
from pytest_agentloop.agent.usage import UsageMeter, metering
from pytest_agentloop.agent.workdir import WorkdirChanges, fresh_workdir, workdir_changes
from pytest_agentloop.traces import spans as spanfmt

STORE_FORMAT = 2


@dataclass(frozen=True)
class CaptureOptions:
    """How a run is captured: where it comes from and what is done to it before it is written."""

    harness: Harness = field(default_factory=lambda: Harness(None, {}))
    metadata: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    redactor: Redactor | None = None
    prices: dict[str, tuple[float, float]] | None = None
    provenance: str = "captured"
    agent_ref: str = ""
    upload: bool = False
    replace: bool = False


@dataclass(frozen=True)
class CapturedRun:
    """What a capture wrote."""

    label: str
    trace_id: str
    run_dir: Path
    question: str
    answer: str | None
    error: str | None
    usage: Usage | None  # None: unknown (the agent said nothing and its calls were not seen)
    cost_usd: float | None
    wall_seconds: float
    model: str | None
    harness_version: str
    created: str

    @property
    def ok(self) -> bool:
        """Whether the run finished with an answer."""
        return self.error is None


@dataclass
class _Outcome:
    reply: AgentReply | None = None
    error: str | None = None
    usage: Usage | None = None
    meter: UsageMeter | None = None  # what the plugin's client counted


class _Lines:
    """Span lines of one run, made as its spans end (on any thread)."""

    def __init__(self, context: LineContext, redactor: Redactor) -> None:
        self.context, self.redactor = context, redactor
        self.export_context = context.export_context()
        self.lines: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, span: Any) -> None:
        try:
            line = span_line(span, self.context, self.export_context, self.redactor)
        except SpanLineError as exc:
            self.problems.append(str(exc))
            return
        with self._lock:
            self.lines.append(line)


def _now() -> datetime:
    return datetime.now(UTC)


def wrap_agent(agent: Any) -> AgentCallable:
    """An ``agents.Agent`` as an agent callable (run with its own client, bound to the running loop)."""
    from pytest_agentloop.agent.builtin import run_sdk_agent

    async def call(question: Question, *, metadata: dict[str, Any], workdir: Path, harness: Harness) -> Any:
        return await run_sdk_agent(agent, question, metadata=metadata, workdir=workdir, harness=harness)

    return call


async def capture_run(
    agent: Any, question: Question, *, store: Path, label: str, options: CaptureOptions | None = None
) -> CapturedRun:
    """Run ``agent`` (an async agent callable or an ``agents.Agent``) once and write the run into ``store``."""
    agents = require("agents")
    options = options or CaptureOptions()
    call: AgentCallable = wrap_agent(agent) if isinstance(agent, agents.Agent) else agent
    final = store / "runs" / label
    if final.exists() and not options.replace:
        raise AgentConfigError(f"run {label!r} already exists in {store}; record it again with --replace")
    from pytest_agentloop.agent.routing import install

    router = install(upload=options.upload)
    redactor = options.redactor or Redactor()
    harness = options.harness
    context = LineContext(
        project_id=str(harness.data.get("name") or "agentloop"),
        service_name=options.agent_ref or "agent",
        harness_version=harness.version,
        label=label,
        environment="live" if options.provenance == "live" else "capture",
        provenance=options.provenance,
    )
    lines = _Lines(context, redactor)
    trace_id = agents.gen_trace_id()
    workdir = fresh_workdir(harness.workdir_seed)
    try:
        started, clock = _now(), time.monotonic()
        router.route(trace_id, lines)
        try:
            with metering() as meter, agents.trace(workflow_name=label, trace_id=trace_id, group_id=label):
                outcome = await _call(call, question, workdir, options)
                outcome.meter = meter
        finally:
            router.release(trace_id)
        wall = time.monotonic() - clock
        if lines.problems:
            outcome.error = outcome.error or f"span lines not written as HALO reads them: {lines.problems[0]}"
        return _write(store, label, trace_id, question, outcome, lines, workdir, started, wall, options, redactor)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def _call(call: AgentCallable, question: Question, workdir: Path, options: CaptureOptions) -> _Outcome:
    """Await the agent; any exception, the timeout or the turn limit becomes the run's error."""
    agents = require("agents")
    try:
        value = await asyncio.wait_for(
            call(question, metadata=dict(options.metadata), workdir=workdir, harness=options.harness),
            timeout=options.timeout,
        )
        return _Outcome(reply=coerce_reply(value))
    except TimeoutError:
        return _Outcome(error=f"timed out after {options.timeout:g}s")
    except agents.MaxTurnsExceeded as exc:
        return _Outcome(error=f"hit the turn limit: {exc}", usage=_partial_usage(exc))
    except Exception as exc:
        return _Outcome(error=f"{type(exc).__name__}: {exc}")


def _partial_usage(exc: Any) -> Usage | None:
    data = getattr(exc, "run_data", None)
    usage = getattr(getattr(data, "context_wrapper", None), "usage", None)
    return None if usage is None else Usage(usage.input_tokens, usage.output_tokens, usage.requests)


def _span_usage_by_model(lines: list[dict[str, Any]]) -> dict[str, Usage]:
    """The usage the run's LLM spans report, by the model each span names ("" when it names none)."""
    by_model: dict[str, Usage] = {}
    for line in lines:
        attributes = line["attributes"]
        if attributes.get("inference.observation_kind") != "LLM":
            continue
        model = str(attributes.get("inference.llm.model_name") or "")
        by_model[model] = by_model.get(model, Usage()) + Usage(
            int(attributes.get("inference.llm.input_tokens") or 0),
            int(attributes.get("inference.llm.output_tokens") or 0),
            1,
        )
    return by_model


def _total(by_model: dict[str, Usage]) -> Usage | None:
    """All the usage in ``by_model`` (None: the run has no LLM span)."""
    return sum(by_model.values(), Usage()) if by_model else None


def _span_model(lines: list[dict[str, Any]]) -> str | None:
    """The model the first LLM span names: what the server answered with, not what was asked for."""
    for line in lines:
        model = line["attributes"].get("inference.llm.model_name")
        if model:
            return str(model)
    return None


def _cost(
    usage: Usage, model: str | None, by_model: dict[str, Usage], prices: dict[str, tuple[float, float]] | None
) -> float | None:
    """The run's cost: span by span at each span's model when the spans hold the whole usage, else at ``model``."""
    spanned = _total(by_model)
    if spanned is None or (spanned.input_tokens, spanned.output_tokens) != (usage.input_tokens, usage.output_tokens):
        return cost_of(model, usage.input_tokens, usage.output_tokens, prices)
    costs = [cost_of(name or model, u.input_tokens, u.output_tokens, prices) for name, u in by_model.items()]
    return None if None in costs else round(sum(c for c in costs if c is not None), 8)


def _agent_span(
    trace_id: str,
    context: LineContext,
    question: str,
    answer: str | None,
    error: str | None,
    started: datetime,
    wall: float,
) -> dict[str, Any]:
    """The one span a run made without the Agents SDK gets: question, answer, timing, error."""
    resource = spanfmt.Resource(
        service_name=context.service_name,
        service_version=context.harness_version,
        environment=context.environment,
        harness_version=context.harness_version,
        extra={"agentloop.label": context.label, "agentloop.provenance": context.provenance},
    )
    attributes = {
        "inference.agent_name": context.service_name,
        "inference.session_id": context.label,
        "input.value": question,
    }
    if answer is not None:
        attributes["output.value"] = answer
    return spanfmt.span_line(
        trace_id=trace_id,
        span_id=spanfmt.stable_id(trace_id, "agent"),
        name=f"agent.{context.service_name}",
        kind=spanfmt.KIND_INTERNAL,
        observation="AGENT",
        start=started,
        end=started + timedelta(seconds=wall),
        resource=resource,
        attributes=attributes,
        project_id=context.project_id,
        error=error,
    )


def _write(
    store: Path,
    label: str,
    sdk_trace_id: str,
    question: Question,
    outcome: _Outcome,
    lines: _Lines,
    workdir: Path,
    started: datetime,
    wall: float,
    options: CaptureOptions,
    redactor: Redactor,
) -> CapturedRun:
    trace_id = sdk_trace_id.removeprefix("trace_")
    reply = outcome.reply
    answer = None if reply is None or outcome.error else redactor.text(reply.answer)
    text = redactor.text(question_text(question))
    error = None if outcome.error is None else redactor.text(outcome.error)
    span_lines = list(lines.lines)
    if not any(line["attributes"].get("inference.observation_kind") == "AGENT" for line in span_lines):
        span_lines.append(_agent_span(trace_id, lines.context, text, answer, error, started, wall))
    meter = outcome.meter or UsageMeter()
    by_model = _span_usage_by_model(span_lines)
    usage = (reply.usage if reply else None) or outcome.usage or _total(by_model)
    # the model the server answered with (spans, then the plugin's client) before the one the agent asked for
    model = _span_model(span_lines) or meter.model() or (reply.model if reply else None) or options.harness.model
    if usage is not None:
        cost = _cost(usage, model, by_model, options.prices)
    else:  # only what the plugin's client counted, priced model by model
        usage, cost = meter.usage(), meter.cost(options.prices)
    run = CapturedRun(
        label=label,
        trace_id=trace_id,
        run_dir=store / "runs" / label,
        question=text,
        answer=answer,
        error=error,
        usage=usage,
        cost_usd=cost,
        wall_seconds=round(wall, 3),
        model=model,
        harness_version=options.harness.version,
        created=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    changes = workdir_changes(workdir, options.harness)
    record = _record(run, question, options, redactor, changes)
    stage = store / "runs" / f".staging-{label}-{uuid.uuid4().hex[:8]}"
    stage.mkdir(parents=True)
    (stage / "record.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if answer is not None:
        (stage / "answer.md").write_text(answer, encoding="utf-8")
    _copy_artifacts(workdir, changes.artifacts, stage / "artifacts", redactor)
    with (stage / "spans.jsonl").open("w", encoding="utf-8") as handle:
        for line in span_lines:
            handle.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
    _place(stage, run.run_dir, options.replace)
    return run


def _record(
    run: CapturedRun, question: Question, options: CaptureOptions, redactor: Redactor, changes: WorkdirChanges
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "format": STORE_FORMAT,
        "trace_id": run.trace_id,
        "label": run.label,
        "question": run.question,
        "harness_version": run.harness_version,
        "model": run.model,
        "created": run.created,
        "status": "ok" if run.ok else "failed",
        "error": run.error,
        "usage": None if run.usage is None else run.usage.to_json(),
        "cost_usd": run.cost_usd,
        "wall_seconds": run.wall_seconds,
        "provenance": {"source": options.provenance, "agent": options.agent_ref},
    }
    if not isinstance(question, str):
        record["messages"] = redactor.value(question)
    if options.metadata:
        record["metadata"] = redactor.value(options.metadata)
    if changes.seed_deleted is not None:  # a reader must know artifacts/ is a diff against the seed
        record["workdir_seed"] = options.harness.seed_as_written
        record["seed_deleted"] = changes.seed_deleted
    return record


def _copy_artifacts(workdir: Path, artifacts: list[str], target: Path, redactor: Redactor) -> None:
    """The artifact files, redacted, under ``target`` (made even when there are none)."""
    target.mkdir()
    for relative in artifacts:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(redactor.data((workdir / relative).read_bytes()))


def _place(stage: Path, final: Path, replace: bool) -> None:
    """Move the staged run into place (replacing an older one only when asked)."""
    if final.exists():
        if not replace:
            shutil.rmtree(stage, ignore_errors=True)
            raise AgentConfigError(f"run {final.name!r} appeared while recording; record it again with --replace")
        shutil.rmtree(final)
    stage.rename(final)
