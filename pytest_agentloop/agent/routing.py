"""One trace processor for the process, routing each span to the run that started its trace.

The SDK's default processor uploads every trace to OpenAI's ingest endpoint
(even when ``OPENAI_BASE_URL`` points elsewhere); installing the router
replaces the processor list, so uploading is an explicit opt-in. HALO's engine
clears the list when it runs: the router is installed again at every capture.
Spans of traces the plugin did not start (the user's own agents, HALO's) are
ignored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from agents import set_trace_processors
from agents.tracing import Span, Trace
from agents.tracing.processor_interface import TracingProcessor

Sink = Callable[[Span[Any]], None]


def strip(trace_id: str) -> str:
    """A trace id without the SDK's ``trace_`` prefix."""
    return trace_id.removeprefix("trace_")


class SpanRouter(TracingProcessor):
    """Hands each ended span to the sink registered for its trace id."""

    def __init__(self) -> None:
        self._sinks: dict[str, Sink] = {}
        self._lock = threading.Lock()

    def route(self, trace_id: str, sink: Sink) -> None:
        """Send spans of ``trace_id`` to ``sink`` until :meth:`release`."""
        with self._lock:
            self._sinks[strip(trace_id)] = sink

    def release(self, trace_id: str) -> None:
        """Stop routing ``trace_id``."""
        with self._lock:
            self._sinks.pop(strip(trace_id), None)

    def on_trace_start(self, trace: Trace) -> None:
        """Nothing to do: lines are written per span."""

    def on_trace_end(self, trace: Trace) -> None:
        """Nothing to do: the capture releases its route."""

    def on_span_start(self, span: Span[Any]) -> None:
        """Lines are made when a span ends (with its end time and status)."""

    def on_span_end(self, span: Span[Any]) -> None:
        """Route the span to its run, if the plugin started its trace."""
        with self._lock:
            sink = self._sinks.get(strip(span.trace_id))
        if sink is not None:
            sink(span)

    def shutdown(self) -> None:
        """Nothing buffered here: each run writes its own file."""

    def force_flush(self) -> None:
        """Nothing buffered here."""


_ROUTER = SpanRouter()


def install(upload: bool = False) -> SpanRouter:
    """Make the router the SDK's only processor (plus the default uploader when ``upload``)."""
    processors: list[TracingProcessor] = [_ROUTER]
    if upload:
        from agents.tracing.processors import default_processor

        processors.append(default_processor())
    set_trace_processors(processors)
    return _ROUTER
