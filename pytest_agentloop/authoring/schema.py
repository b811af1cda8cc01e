"""The structured answers asked of a model, as Pydantic models built per call.

Each call's model names what is known *for that call*: the trace field is a
``Literal`` of the store's trace ids and an assertion's ``type`` a ``Literal``
of the registered assertion types, so the strict JSON schema sent to the
endpoint carries them as ``enum``s. Assertion values are strings or lists of
strings (strict schemas reject open objects).

The answer is parsed in two steps so that one bad definition does not sink the
others: the envelope (a JSON object with a list) must be whole, else the answer
is malformed; then each item is validated alone and a bad one is reported with
its reason.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import openai
import pydantic
from pydantic import BaseModel, ConfigDict, Field, create_model

SCORING = ("deterministic", "llm_judge", "hybrid")
STRICT = ConfigDict(extra="forbid")


class ModelAnswerError(ValueError):
    """The model answered, but not with the JSON the schema asks for."""


def _literal(values: Sequence[str]) -> Any:
    if not values:
        raise ValueError("a Literal needs at least one value")
    return Literal[tuple(values)]


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The strict JSON schema the ``openai`` client would send for ``model``."""
    return dict(openai.pydantic_function_tool(model)["function"]["parameters"])


def insight_model(trace_ids: Sequence[str]) -> type[BaseModel]:
    """``{trace, observations}`` with ``trace`` one of the store's ids."""
    return create_model(
        "TraceInsight",
        __config__=STRICT,
        trace=(_literal(trace_ids), Field(description="the trace id, copied exactly")),
        observations=(list[str], Field(description="recurring behaviours worth an eval, one sentence each")),
    )


def eval_model(trace_ids: Sequence[str], types: Sequence[str]) -> type[BaseModel]:
    """One generated eval definition; the answer is ``{"evals": [<this>, ...]}``."""
    assertion = create_model(
        "LiteralAssertion",
        __config__=STRICT,
        type=(_literal(types), Field(description="a registered assertion type")),
        value=(str | list[str], Field(description="what the type expects")),
        artifact=(str | None, Field(description="artifact file to check instead of the answer, or null")),
    )
    return create_model(
        "EvalDefinition",
        __config__=STRICT,
        id=(str, Field(description="short kebab-case id, unique")),
        title=(str, Field(description="one line")),
        trace=(_literal(trace_ids), Field(description="source trace id, copied exactly")),
        scoring=(_literal(SCORING), ...),
        tags=(list[str], Field(description="behaviour tags (letters, digits, underscores)")),
        expected=(str, Field(description="the expected behaviour in words")),
        rubric=(str, Field(description="concise PASS/FAIL rubric for the judge; empty for deterministic")),
        assertions=(list[assertion], Field(description="literal checks; none for llm_judge")),  # type: ignore[valid-type]
        pass_example=(str, ...),
        fail_example=(str, ...),
        threshold=(float, Field(description="judge score needed to pass, 0-1 (0.8 usual)")),
        sources=(list[str], Field(description="ids of the feedback this eval comes from")),
    )


def envelope(item: type[BaseModel]) -> type[BaseModel]:
    """``{"evals": [item, ...]}``."""
    return create_model("GeneratedEvals", __config__=STRICT, evals=(list[item], ...))  # type: ignore[valid-type]


def decode(text: str, finished: bool = True) -> dict[str, Any]:
    """The answer's JSON object; a malformed or cut-off answer is a :class:`ModelAnswerError`."""
    if not finished:
        raise ModelAnswerError("the answer was cut off before it finished (output token limit?)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        excerpt = text if len(text) <= 200 else text[:200] + "…"
        raise ModelAnswerError(f"the answer is not valid JSON ({exc.msg} at column {exc.colno}): {excerpt!r}") from None
    if not isinstance(data, dict):
        raise ModelAnswerError(f"the answer is a JSON {type(data).__name__}, not an object")
    return data


def items(data: dict[str, Any], name: str) -> list[Any]:
    """The list under ``name`` in the envelope, or a :class:`ModelAnswerError`."""
    found = data.get(name)
    if not isinstance(found, list):
        raise ModelAnswerError(f"the answer has no {name!r} list")
    return found


@dataclass(frozen=True)
class Checked:
    """One item of an answer: validated data, or why it was refused."""

    data: dict[str, Any] | None
    reason: str | None = None


_FIELD_WORDS = {"trace": "trace", "type": "assertion type", "scoring": "scoring method"}


def check_item(model: type[BaseModel], raw: Any) -> Checked:
    """Validate one item with ``model``; the reason names the field and the bad value."""
    try:
        return Checked(model.model_validate(raw).model_dump())
    except pydantic.ValidationError as exc:
        return Checked(None, "; ".join(_describe(error) for error in exc.errors()[:3]))


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"])
    last = next((str(p) for p in reversed(error["loc"]) if isinstance(p, str)), "")
    if error["type"] == "literal_error":
        return f"{where}: unknown {_FIELD_WORDS.get(last, last)} {error['input']!r}"
    return f"{where}: {error['msg']}"
