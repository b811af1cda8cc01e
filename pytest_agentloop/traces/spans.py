"""Span lines in the JSONL shape HALO reads (its ``SpanRecord``), built deterministically."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SCHEMA_VERSION = 1
SCOPE_NAME = "pytest-agentloop"
KIND_CLIENT = "SPAN_KIND_CLIENT"
KIND_INTERNAL = "SPAN_KIND_INTERNAL"
STATUS_OK = "STATUS_CODE_OK"
STATUS_ERROR = "STATUS_CODE_ERROR"

#: Agents SDK span types and the observation kind HALO expects for each.
OBSERVATION_KINDS = {
    "agent": "AGENT",
    "generation": "LLM",
    "response": "LLM",
    "function": "TOOL",
    "mcp_tools": "TOOL",
    "handoff": "CHAIN",
    "guardrail": "GUARDRAIL",
}


def observation_kind(span_type: str) -> str:
    """HALO observation kind for an Agents SDK span type (``SPAN`` for the rest)."""
    return OBSERVATION_KINDS.get(span_type, "SPAN")


def format_time(moment: datetime) -> str:
    """UTC time with nanosecond precision and a ``Z``: ``2026-01-12T09:14:03.000000000Z``."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond * 1000:09d}Z"


def stable_id(*parts: object, length: int = 16) -> str:
    """A hex id derived from ``parts``: the same inputs give the same id."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return digest[:length]


@dataclass(frozen=True)
class Resource:
    """Who produced a span: service, version, environment, harness version."""

    service_name: str
    service_version: str = ""
    environment: str = "example"
    harness_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``resource`` block of a span line."""
        attributes = {
            "service.name": self.service_name,
            "service.version": self.service_version,
            "deployment.environment": self.environment,
            "agentloop.harness_version": self.harness_version,
        }
        return {"attributes": {**attributes, **self.extra}}


def span_line(
    *,
    trace_id: str,
    span_id: str,
    name: str,
    kind: str,
    observation: str,
    start: datetime,
    end: datetime,
    resource: Resource,
    attributes: dict[str, Any],
    project_id: str,
    parent_span_id: str = "",
    error: str | None = None,
) -> dict[str, Any]:
    """One span line, HALO's canonical field order, with the ``inference.*`` keys set."""
    base = {
        "inference.export.schema_version": SCHEMA_VERSION,
        "inference.project_id": project_id,
        "inference.observation_kind": observation,
        "openinference.span.kind": observation if observation != "SPAN" else "CHAIN",
    }
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent_span_id,
        "trace_state": "",
        "name": name,
        "kind": kind,
        "start_time": format_time(start),
        "end_time": format_time(end),
        "status": {"code": STATUS_ERROR if error else STATUS_OK, "message": error or ""},
        "resource": resource.to_json(),
        "scope": {"name": SCOPE_NAME, "version": SCHEMA_VERSION.__str__()},
        "attributes": {**base, **attributes},
    }
