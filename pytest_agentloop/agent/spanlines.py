"""Span lines from Agents SDK spans: HALO's own mapping, plus what the trace store needs.

The mapping is halo-engine's ``span_to_otlp_line``; this module adds the
model name, input and output of Responses-API spans (which HALO's mapping
leaves out), stamps harness version and label, redacts, and checks the line
against HALO's ``SpanRecord`` before anyone writes it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from pytest_agentloop.agent.errors import require
from pytest_agentloop.agent.redact import Redactor
from pytest_agentloop.errors import AgentloopError


class SpanLineError(AgentloopError):
    """A span line HALO's ``SpanRecord`` would not read."""


@dataclass(frozen=True)
class LineContext:
    """Who a run's span lines say produced them."""

    project_id: str
    service_name: str
    harness_version: str
    label: str
    environment: str = "capture"
    provenance: str = "captured"

    def export_context(self) -> Any:
        """HALO's ``ExportContext`` for these lines."""
        local = require("engine.telemetry.local_processor")
        return local.ExportContext(
            project_id=self.project_id,
            service_name=self.service_name,
            service_version=self.harness_version,
            deployment_environment=self.environment,
            extra_resource_attributes={
                "agentloop.harness_version": self.harness_version,
                "agentloop.label": self.label,
                "agentloop.provenance": self.provenance,
            },
        )


def _dump(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list | tuple):
        return [_dump(v) for v in value]
    return value


def response_attributes(span_data: Any) -> dict[str, Any]:
    """Model name, input and output messages of a Responses-API span (empty when not recorded)."""
    response = getattr(span_data, "response", None)
    if response is None:
        return {}
    attributes: dict[str, Any] = {
        "llm.model_name": response.model,
        "inference.llm.model_name": response.model,
        "llm.output_messages": json.dumps(_dump(list(response.output)), default=str),
        "output.value": response.output_text,
    }
    given = getattr(span_data, "input", None)
    if given is not None:
        attributes["llm.input_messages"] = json.dumps(_dump(given), default=str)
        attributes["input.value"] = given if isinstance(given, str) else attributes["llm.input_messages"]
    return attributes


def _version_once(local: Any) -> None:
    """HALO's mapping reads the SDK's version from package metadata for every span (a METADATA parse,
    15 ms under load: a quarter of a run's CPU here); the version cannot change in a process, so read it once."""
    if not hasattr(local._sdk_version, "cache_info"):
        local._sdk_version = functools.cache(local._sdk_version)


def span_line(span: Any, context: LineContext, export_context: Any, redactor: Redactor) -> dict[str, Any]:
    """One checked, redacted span line for an SDK span."""
    local = require("engine.telemetry.local_processor")
    _version_once(local)
    line: dict[str, Any] = local.span_to_otlp_line(span, ctx=export_context, workflow_name=context.label)
    if getattr(span.span_data, "type", "") == "response":
        line["attributes"].update(response_attributes(span.span_data))
    line["attributes"].setdefault("inference.session_id", context.label)
    if line["attributes"].get("inference.session_id") is None:
        line["attributes"]["inference.session_id"] = context.label
    line = redactor.value(line)
    check_line(line)
    return line


def check_line(line: dict[str, Any]) -> None:
    """Raise SpanLineError unless HALO's ``SpanRecord`` accepts ``line``."""
    canonical = require("engine.traces.models.canonical_span")
    try:
        canonical.SpanRecord.model_validate(line)
    except ValueError as exc:
        raise SpanLineError(
            f"span line {line.get('name')!r} does not validate against HALO's SpanRecord: {exc}"
        ) from None
