"""One schema per file format the plugin reads from a trace store or a project: record.json, span lines, harness.

Each schema is a JSON Schema (draft 2020-12) whose properties carry a
``description`` saying what is allowed; :func:`check` turns the first problem
into one :class:`FormatError` naming the file, the line, the field and that
description. The README's "File formats" tables are written from these.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from pytest_agentloop.errors import AgentloopError

#: A run's provenance: how the recording came to be.
PROVENANCE = {
    "recorded": "exported from the agent's own tracing while it ran in its real setting",
    "captured": "captured by pytest-agentloop from an Agents SDK run",
    "live": "produced by a live run of the harness during an eval session",
    "hand-written": "written by a person as an example of a run",
    "generated": "written by a model as a synthetic example of a run",
    "imported": "converted from another tool's export",
    "synthetic": "made by a program (test fixtures, benchmarks)",
}
#: Older spellings still read, and what they mean.
PROVENANCE_ALIASES = {"example_authors": "hand-written", "tests": "synthetic"}

_HEX32 = "^(trace_)?[0-9a-f]{32}$"
_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
_LABEL = "^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_TEXT = {"type": "string"}


class FormatError(AgentloopError):
    """A record.json, span line or harness file that does not follow its documented format."""


def _provenance_schema() -> dict[str, Any]:
    kinds = sorted([*PROVENANCE, *PROVENANCE_ALIASES])
    words = f"one of {', '.join(PROVENANCE)}"
    return {
        "description": f"{words}, or an object {{source: <{words}>, by, note}}",
        "oneOf": [
            {"type": "string", "enum": kinds},
            {
                "type": "object",
                "required": ["source"],
                "additionalProperties": False,
                "properties": {
                    "source": {"enum": kinds, "description": words},
                    "by": {"type": "string", "description": "who or what made the run (a person, a model, a tool)"},
                    "agent": {"type": ["string", "null"], "description": "the agent callable that ran (captures)"},
                    "note": {"type": "string", "description": "free text"},
                },
            },
        ],
    }


RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["trace_id", "label", "question", "harness_version", "model", "created"],
    "additionalProperties": False,
    "properties": {
        "format": {"enum": [1, 2], "description": "the store format, 1 or 2 (2: the run keeps its own spans.jsonl)"},
        "trace_id": {"type": "string", "pattern": _HEX32, "description": "32 lowercase hex characters"},
        "label": {"type": "string", "pattern": _LABEL, "description": "a name like trace-01 (letters, digits, ._-)"},
        "question": {"type": "string", "description": "the question or task the run answered"},
        "harness_version": {"type": "string", "minLength": 1, "description": "the harness version that ran"},
        "model": {"type": ["string", "null"], "description": "the model name, or null when unknown"},
        "created": {"type": "string", "pattern": _TIME, "description": "UTC time like 2026-01-12T09:14:03Z"},
        "provenance": _provenance_schema(),
        "status": {"enum": ["ok", "failed"], "description": "ok or failed (a failed run has no answer.md)"},
        "error": {"type": ["string", "null"], "description": "why the run failed, or null"},
        "usage": {
            "type": ["object", "null"],
            "additionalProperties": {"type": ["integer", "null"], "minimum": 0},
            "description": "token counts: {input_tokens, output_tokens, requests}, whole numbers ≥ 0; null: unknown",
        },
        "cost_usd": {"type": ["number", "null"], "minimum": 0, "description": "cost in US dollars, or null"},
        "wall_seconds": {"type": ["number", "null"], "minimum": 0, "description": "the run's wall time in seconds"},
        "messages": {"type": "array", "description": "the input messages, when the question was a conversation"},
        "metadata": {"type": "object", "description": "a free-form mapping"},
        "workdir_seed": {
            "type": "string",
            "description": "the harness's tool_policy.workdir_seed as written: the run started with a copy of it, "
            "and artifacts/ holds only the files it added or changed",
        },
        "seed_deleted": {
            "type": "array",
            "items": {"type": "string"},
            "description": "the seed's files the run deleted, as paths relative to the working directory",
        },
    },
}

SPAN_KINDS = [f"SPAN_KIND_{k}" for k in ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")]
STATUS_CODES = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"]

SPAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "trace_id",
        "span_id",
        "name",
        "kind",
        "start_time",
        "end_time",
        "status",
        "resource",
        "scope",
        "attributes",
    ],
    "properties": {
        "trace_id": {"type": "string", "pattern": "^[0-9a-f]{32}$", "description": "32 lowercase hex characters"},
        "span_id": {
            "type": "string",
            "pattern": "^[0-9a-f]{16,32}$",
            "description": "16 to 32 lowercase hex characters",
        },
        "parent_span_id": {
            "type": "string",
            "pattern": "^([0-9a-f]{16,32})?$",
            "description": "the parent's span_id, or '' for a root span",
        },
        "trace_state": {"type": "string", "description": "a string, usually ''"},
        "name": {"type": "string", "minLength": 1, "description": "a non-empty string"},
        "kind": {"enum": SPAN_KINDS, "description": f"one of {', '.join(SPAN_KINDS)}"},
        "start_time": {
            "type": "string",
            "pattern": _TIME,
            "description": "UTC time like 2026-01-12T09:14:03.000000000Z",
        },
        "end_time": {
            "type": "string",
            "pattern": f"{_TIME}|^$",
            "description": "UTC time like 2026-01-12T09:14:33.000000000Z, or '' for a span that never ended",
        },
        "status": {
            "type": "object",
            "required": ["code"],
            "additionalProperties": False,
            "properties": {"code": {"enum": STATUS_CODES}, "message": _TEXT},
            "description": f"{{code: {' | '.join(STATUS_CODES)}, message: <text>}}",
        },
        "resource": {
            "type": "object",
            "required": ["attributes"],
            "additionalProperties": False,
            "properties": {"attributes": {"type": "object"}},
            "description": "{attributes: {service.name: ..., ...}}",
        },
        "scope": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {"name": _TEXT, "version": _TEXT},
            "description": "{name: <text>, version: <text>}",
        },
        "attributes": {"type": "object", "description": "a mapping of OpenInference and inference.* keys"},
    },
}

HARNESS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["version"],
    "additionalProperties": False,
    "properties": {
        "version": {
            "type": ["string", "integer"],
            "minLength": 1,
            "description": "the harness version, like v001 (a string or a whole number)",
        },
        "description": {"type": "string", "description": "one paragraph on what the agent does"},
        "status": {"type": "string", "description": "free text, like draft or promoted"},
        "created_by": {"type": "string", "description": "who wrote this version"},
        "promoted_by": {"type": "string", "description": "who promoted it"},
        "project_id": {"type": "string", "description": "the project id written on synthetic spans"},
        "system_prompt": {"type": "string", "description": "the agent's instructions"},
        "model_settings": {
            "type": "object",
            "properties": {"model": {"type": "string", "description": "the model name"}},
            "description": "{model: <name>, ...any other settings}",
        },
        "tool_policy": {
            "type": "object",
            "properties": {
                "workdir_seed": {"type": "string", "description": "the folder every run's working directory copies"},
                "artifact_ignore": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "glob patterns of working-directory files that are never artifacts",
                },
            },
            "description": "a mapping: tools, roots, required artifacts, rules, workdir_seed, artifact_ignore",
        },
        "tools": {"type": "array", "description": "a list of tool descriptions"},
        "output_contract": {
            "type": "object",
            "description": "what the agent must write: artifacts, shapes, where cited sources live (a mapping)",
        },
        "metadata": {"type": "object", "description": "a free-form mapping"},
        "name": {"type": "string", "description": "the agent's name (the built-in runner)"},
        "max_turns": {"type": "integer", "minimum": 1, "description": "turn limit of a run (the built-in runner)"},
    },
}


@cache
def _validator(name: str) -> Any:
    import jsonschema
    from referencing import Registry

    schema = {"record": RECORD_SCHEMA, "span": SPAN_SCHEMA, "harness": HARNESS_SCHEMA}[name]
    return jsonschema.Draft202012Validator(schema, registry=Registry())


def _allowed(schema: dict[str, Any], field: str | None) -> str:
    properties = schema.get("properties", {})
    if field is None:
        return f"fields {', '.join(properties)}"
    return str(properties.get(field, {}).get("description", ""))


def problem(name: str, data: object) -> tuple[str | None, str] | None:
    """The first problem of ``data`` against format ``name``: (field or None, message), or None if it fits."""
    import jsonschema

    validator = _validator(name)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return None
    field = str(error.absolute_path[0]) if error.absolute_path else None
    if error.validator == "additionalProperties" and not error.absolute_path:
        extra = sorted(set(data) - set(validator.schema["properties"])) if isinstance(data, dict) else []
        return (extra[0] if extra else None), f"unknown field; expected {_allowed(validator.schema, None)}"
    if error.validator == "required":
        return None, f"{error.message}; expected {_allowed(validator.schema, None)}"
    where = "/".join(str(p) for p in error.absolute_path)
    allowed = _allowed(validator.schema, field)
    if not allowed:
        return field, f"{_short(error.message)} at {where}"
    inner = f" at {where}" if len(error.absolute_path) > 1 else ""
    return field, f"got {_short(repr(error.instance))}{inner}; expected {allowed}"


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _line_of_key(text: str | None, field: str | None) -> int | None:
    if not text or field is None:
        return None
    match = re.search(rf'^\s*"?{re.escape(field)}"?\s*:', text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else None


def check(name: str, data: object, path: Path, *, line: int | None = None, text: str | None = None) -> None:
    """Raise :class:`FormatError` naming file, line and field unless ``data`` fits format ``name``.

    ``line`` is the line of a one-line record (a span line); otherwise the
    line of the offending field is found in ``text``, the file's content.
    """
    found = problem(name, data)
    if found is None:
        return
    field, message = found
    what = {"record": "run record", "span": "span line", "harness": "harness"}[name]
    prefix = f"{what}, field {field!r}: " if field else f"{what}: "
    found_line = line or _line_of_key(text, field) or (1 if text is not None else None)
    raise FormatError(prefix + message, path=path, line=found_line)


def provenance_of(value: object) -> dict[str, Any]:
    """A validated provenance (string or object) as an object with ``source`` in the documented vocabulary."""
    data = {"source": value} if isinstance(value, str) else dict(value) if isinstance(value, dict) else {}
    if data.get("source") in PROVENANCE_ALIASES:
        data["source"] = PROVENANCE_ALIASES[data["source"]]
    return data
