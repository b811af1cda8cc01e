"""``agentloop insights``: a model's observations on each selected trace, kept as ``llm_insight`` lines.

One structured call per trace (question, answer, a compact span summary and
its human feedback); the answer's ``trace`` must be the trace asked about. An
answer that fails that is an error and is not recorded, so asking again asks
the model again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from pytest_agentloop.authoring.feedback import INSIGHT, Feedback
from pytest_agentloop.authoring.model import Answer, Call, Caller
from pytest_agentloop.authoring.prompts import INSIGHTS_VERSION, insights_prompt
from pytest_agentloop.authoring.schema import ModelAnswerError, check_item, insight_model, strict_schema
from pytest_agentloop.traces.store import TraceRecord, TraceStore


def select(store: TraceStore, refs: Sequence[str]) -> list[TraceRecord]:
    """The runs named by ``refs`` (labels or ids; unknown ones are errors), or every run."""
    if not refs:
        return list(store)
    return list({store.get(ref).trace_id: store.get(ref) for ref in refs}.values())


def _validator(model: type[BaseModel], record: TraceRecord) -> Any:
    def check(data: dict[str, Any]) -> None:
        checked = check_item(model, data)
        if checked.data is None:
            raise ModelAnswerError(str(checked.reason))
        if checked.data["trace"] != record.trace_id:
            raise ModelAnswerError(
                f"the answer names trace {checked.data['trace']!r}, not the one asked about ({record.trace_id})"
            )
        if not [o for o in checked.data["observations"] if o.strip()]:
            raise ModelAnswerError("the answer has no observations")

    return check


def run(
    store: TraceStore, records: Sequence[TraceRecord], feedback: Sequence[Feedback], caller: Caller
) -> list[Feedback]:
    """Ask (or replay) one insight per trace; returns the insight lines to write."""
    model = insight_model([r.trace_id for r in store])
    schema = strict_schema(model)
    human = {r.trace_id: [f for f in feedback if f.is_human and f.trace_id == r.trace_id] for r in records}
    calls = []
    for record in records:
        system, user = insights_prompt(store, record, human[record.trace_id])
        calls.append(Call("insight", record.label, system, user, "trace_insight", schema, INSIGHTS_VERSION))
    answers = caller.answer(
        calls, {c.key(caller.endpoint.model): _validator(model, r) for c, r in zip(calls, records, strict=True)}
    )
    return [_insight(record, answer, human[record.trace_id]) for record, answer in zip(records, answers, strict=True)]


def _insight(record: TraceRecord, answer: Answer, human: Sequence[Feedback]) -> Feedback:
    return Feedback(
        id=f"insight-{record.label}",
        trace_id=record.trace_id,
        label=record.label,
        question=record.question,
        source=INSIGHT,
        created=answer.created,
        model=answer.model,
        prompt_version=INSIGHTS_VERSION,
        observations=tuple(o.strip() for o in answer.data["observations"] if o.strip()),
        feedback_ids=tuple(f.id for f in human),
        recording=answer.key,
    )
