"""A real HTTP server on 127.0.0.1 speaking the parts of the OpenAI API this project uses.

Serves ``POST /v1/responses`` and ``POST /v1/chat/completions``, streaming
(Server-Sent Events) and not, with scripted replies, injected latency and
injected faults::

    with FakeOpenAI() as server:
        server.push(Reply(text='{"pass": true, "score": 1, "reason": "ok"}'))
        server.push(Reply(fault=Fault.RATE_LIMIT))
        client = openai.OpenAI(base_url=server.base_url, api_key="test")

Replies pushed with :meth:`FakeOpenAI.push` are used first, in order; after
that the ``responder`` callable (if any) answers; otherwise a 500 says the
script ran out. Every request is kept in :attr:`FakeOpenAI.requests`.
"""

from __future__ import annotations

import enum
import functools
import itertools
import json
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Fault(enum.Enum):
    """Ways a reply can go wrong."""

    RATE_LIMIT = "429"
    SERVER_ERROR = "500"
    RESET = "reset"
    MALFORMED_JSON = "malformed"
    TRUNCATED_STREAM = "truncated"
    BAD_REQUEST = "400"
    EMPTY_BODY = "empty"  # 200 with the body {}
    CUT_AT_LIMIT = "cut"  # the reply's text, stopped at the output-token cap (incomplete / finish_reason length)


@dataclass(frozen=True)
class ToolCall:
    """A function call the scripted model makes."""

    name: str
    arguments: dict[str, Any]
    call_id: str = ""


@dataclass(frozen=True)
class Reply:
    """One scripted answer: text and/or tool calls, or a fault, after a delay."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    delay: float = 0.0
    fault: Fault | None = None
    retry_after: float | None = 0.01
    usage: tuple[int, int] = (11, 7)
    model: str | None = None  # the model the answer names (default: the one asked for), as a local server's alias


@dataclass(frozen=True)
class Request:
    """A request the server received."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def stream(self) -> bool:
        """Whether the client asked for Server-Sent Events."""
        return bool(self.body.get("stream"))

    def text(self) -> str:
        """Every message text in the request, joined (for assertions on prompts)."""
        parts: list[str] = []
        for message in self.body.get("input") or self.body.get("messages") or []:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(str(c.get("text", "")) for c in content if isinstance(c, dict))
        if isinstance(self.body.get("input"), str):
            parts.append(self.body["input"])
        if self.body.get("instructions"):
            parts.append(str(self.body["instructions"]))
        return "\n".join(parts)


Responder = Callable[[Request], Reply]


@dataclass
class _State:
    script: deque[Reply] = field(default_factory=deque)
    requests: list[Request] = field(default_factory=list)
    responder: Responder | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: Iterator[int] = field(default_factory=itertools.count)
    in_flight: int = 0
    max_in_flight: int = 0
    limiter: _Limiter | None = None


class _Limiter:
    """A requests-per-minute limit enforced as OpenAI does: a bucket of one second's calls, 429 past it."""

    def __init__(self, rpm: float) -> None:
        self.rpm = rpm
        self.capacity = max(1.0, rpm / 60)
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self.rejected: list[float] = []
        self.accepted: list[float] = []

    def admit(self) -> tuple[bool, dict[str, str]]:
        """Whether a request arriving now is within the limit, and the ``x-ratelimit-*`` headers to send."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rpm / 60)
        self.stamp = now
        admitted = self.tokens >= 1
        if admitted:
            self.tokens -= 1
            self.accepted.append(now)
        else:
            self.rejected.append(now)
        reset = max(0.0, (1 - self.tokens) * 60 / self.rpm)
        headers = {
            "x-ratelimit-limit-requests": f"{self.rpm:g}",
            "x-ratelimit-remaining-requests": str(int(self.tokens)),
            "x-ratelimit-reset-requests": f"{int(reset * 1000)}ms",
        }
        return admitted, headers


class FakeOpenAI:
    """The server; a context manager that starts it on a free port and stops it."""

    def __init__(self, responder: Responder | None = None, host: str = "127.0.0.1", rpm: float | None = None) -> None:
        self.state = _State(responder=responder, limiter=_Limiter(rpm) if rpm else None)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._server = _QuietServer((host, 0), handler)
        self._server.daemon_threads = True
        # shutdown() waits for the serving loop's next poll: 0.5 s by default, at every test's teardown
        serve = functools.partial(self._server.serve_forever, poll_interval=0.02)
        self._thread = threading.Thread(target=serve, name="fake-openai", daemon=True)

    @property
    def base_url(self) -> str:
        """Base URL for ``openai`` clients (ends in ``/v1``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def requests(self) -> list[Request]:
        """Requests received so far, in arrival order."""
        with self.state.lock:
            return list(self.state.requests)

    @property
    def max_in_flight(self) -> int:
        """The most requests that were being answered at the same moment."""
        return self.state.max_in_flight

    @property
    def rate_limited(self) -> tuple[list[float], list[float]]:
        """With ``rpm``: the monotonic arrival times of admitted and of rejected (429) requests."""
        limiter = self.state.limiter
        return (list(limiter.accepted), list(limiter.rejected)) if limiter else ([], [])

    def push(self, *replies: Reply) -> None:
        """Queue replies, used before the responder."""
        with self.state.lock:
            self.state.script.extend(replies)

    def set_responder(self, responder: Responder | None) -> None:
        """Answer unscripted requests with ``responder``."""
        self.state.responder = responder

    def start(self) -> FakeOpenAI:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up (after a timeout, say) are expected here, not errors.

    It listens with a backlog of 128, not socketserver's 5: a burst of connections (20 live runs, a judge's 8
    kept-alive ones) would otherwise see some refused and retried by the kernel a second later.
    """

    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore dropped connections; report anything else as the base class does."""
        if not isinstance(sys.exc_info()[1], ConnectionError | OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    state: _State
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        """Send small writes at once: Nagle's delay would add ~40 ms to every reply."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

    def do_GET(self) -> None:
        """``/v1/models`` only."""
        self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    def do_POST(self) -> None:
        """Answer a Responses or Chat Completions call per the script."""
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        body = json.loads(raw or b"{}")
        request = Request(self.path, body, {k.lower(): v for k, v in self.headers.items()})
        self.extra_headers: dict[str, str] = {}
        if self.state.limiter is not None:
            with self.state.lock:
                admitted, self.extra_headers = self.state.limiter.admit()
            if not admitted:
                limited = {
                    **self.extra_headers,
                    "retry-after-ms": self.extra_headers["x-ratelimit-reset-requests"][:-2],
                }
                self._json(429, {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}, limited)
                return
        reply = self._next_reply(request)
        self._enter()
        try:
            self._answer(request, reply)
        finally:
            with self.state.lock:
                self.state.in_flight -= 1

    def _enter(self) -> None:
        with self.state.lock:
            self.state.in_flight += 1
            self.state.max_in_flight = max(self.state.max_in_flight, self.state.in_flight)

    def _answer(self, request: Request, reply: Reply) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        if reply.fault is not None and self._fault(reply):
            return
        if self.path.endswith("/responses"):
            self._respond(request, reply, _responses_body, _responses_events)
        elif self.path.endswith("/chat/completions"):
            self._respond(request, reply, _chat_body, _chat_events)
        else:
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def _next_reply(self, request: Request) -> Reply:
        with self.state.lock:
            self.state.requests.append(request)
            if self.state.script:
                return self.state.script.popleft()
        if self.state.responder is not None:
            return self.state.responder(request)
        return Reply(fault=Fault.SERVER_ERROR, retry_after=None, text="script exhausted")

    def _fault(self, reply: Reply) -> bool:
        """Send the fault; True if nothing more should be written."""
        fault = reply.fault
        if fault is Fault.RATE_LIMIT:
            headers = {} if reply.retry_after is None else {"retry-after-ms": str(int(reply.retry_after * 1000))}
            self._json(429, {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}, headers)
        elif fault is Fault.SERVER_ERROR:
            self._json(500, {"error": {"message": reply.text or "internal error", "type": "server_error"}})
        elif fault is Fault.BAD_REQUEST:
            self._json(400, {"error": {"message": reply.text or "bad request", "type": "invalid_request_error"}})
        elif fault is Fault.RESET:
            self._abort(reset=True)
        elif fault is Fault.MALFORMED_JSON:
            self._raw(200, b'{"id": "resp_broken", "output": [', "application/json")
        elif fault is Fault.EMPTY_BODY:
            self._json(200, {})
        elif fault is Fault.CUT_AT_LIMIT:
            self._json(200, _cut_body(self.path, next(self.state.ids), reply))
        else:
            return False
        return True

    def _respond(self, request: Request, reply: Reply, body: Any, events: Any) -> None:
        number = next(self.state.ids)
        model = reply.model or str(request.body.get("model", "fake-model"))
        if not request.stream:
            self._json(200, body(number, model, reply))
            return
        chunks = [f"event: {e.get('type', 'message')}\ndata: {json.dumps(e)}\n\n" for e in events(number, model, reply)]
        if self.path.endswith("/chat/completions"):
            chunks = [c.split("\n", 1)[1] for c in chunks] + ["data: [DONE]\n\n"]
        if reply.fault is Fault.TRUNCATED_STREAM:
            chunks = chunks[: max(1, len(chunks) // 2)]
        self._stream(chunks, truncated=reply.fault is Fault.TRUNCATED_STREAM)

    def _stream(self, chunks: list[str], truncated: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        for name, value in getattr(self, "extra_headers", {}).items():
            self.send_header(name, value)
        self.end_headers()
        for chunk in chunks:
            data = chunk.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        if truncated:
            self._abort(reset=False)
            return
        self.wfile.write(b"0\r\n\r\n")

    def _abort(self, reset: bool) -> None:
        """Drop the connection: a TCP reset, or a plain close in the middle of a reply."""
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            self.connection.shutdown(socket.SHUT_RDWR)
        self.rfile.close()  # the socket closes for real only once its file objects are gone
        self.connection.close()
        self.close_connection = True

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._raw(status, json.dumps(payload).encode(), "application/json", headers)

    def _raw(self, status: int, data: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        for name, value in (getattr(self, "extra_headers", {}) | (headers or {})).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


# -- response bodies ---------------------------------------------------------------


def _usage_responses(reply: Reply) -> dict[str, Any]:
    prompt, completion = reply.usage
    return {
        "input_tokens": prompt,
        "output_tokens": completion,
        "total_tokens": prompt + completion,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }


def _output_items(number: int, reply: Reply) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if reply.text or not reply.tool_calls:
        content = [{"type": "output_text", "text": reply.text, "annotations": []}]
        items.append(
            {"type": "message", "id": f"msg_{number}", "status": "completed", "role": "assistant", "content": content}
        )
    for index, call in enumerate(reply.tool_calls):
        items.append(
            {
                "type": "function_call",
                "id": f"fc_{number}_{index}",
                "call_id": call.call_id or f"call_{number}_{index}",
                "name": call.name,
                "arguments": json.dumps(call.arguments),
                "status": "completed",
            }
        )
    return items


def _responses_body(number: int, model: str, reply: Reply, status: str = "completed") -> dict[str, Any]:
    return {
        "id": f"resp_{number}",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": _output_items(number, reply) if status == "completed" else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": _usage_responses(reply) if status == "completed" else None,
    }


def _responses_events(number: int, model: str, reply: Reply) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _responses_body(number, model, reply, "in_progress")},
    ]
    for index, item in enumerate(_output_items(number, reply)):
        events.append(
            {"type": "response.output_item.added", "output_index": index, "item": {**item, "status": "in_progress"}}
        )
        if item["type"] == "message":
            text = item["content"][0]["text"]
            part = {"type": "output_text", "text": "", "annotations": []}
            events.append(
                {
                    "type": "response.content_part.added",
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "part": part,
                }
            )
            for piece in _pieces(text):
                events.append(
                    {
                        "type": "response.output_text.delta",
                        "item_id": item["id"],
                        "output_index": index,
                        "content_index": 0,
                        "delta": piece,
                        "logprobs": [],
                    }
                )
            events.append(
                {
                    "type": "response.output_text.done",
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "text": text,
                    "logprobs": [],
                }
            )
            events.append(
                {
                    "type": "response.content_part.done",
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "part": {**part, "text": text},
                }
            )
        else:
            events.append(
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item["id"],
                    "output_index": index,
                    "delta": item["arguments"],
                }
            )
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": index,
                    "arguments": item["arguments"],
                    "name": item["name"],
                }
            )
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.completed", "response": _responses_body(number, model, reply)})
    return [{**event, "sequence_number": seq} for seq, event in enumerate(events)]


def _pieces(text: str, size: int = 16) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _chat_message(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.call_id or f"call_{i}",
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for i, call in enumerate(reply.tool_calls)
        ]
    return message


def _chat_body(number: int, model: str, reply: Reply) -> dict[str, Any]:
    prompt, completion = reply.usage
    finish = "tool_calls" if reply.tool_calls else "stop"
    return {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": _chat_message(reply), "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def _chat_events(number: int, model: str, reply: Reply) -> list[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    events = [chunk({"role": "assistant", "content": ""})]
    events.extend(chunk({"content": piece}) for piece in _pieces(reply.text) if piece)
    for index, call in enumerate(reply.tool_calls):
        events.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call.call_id or f"call_{index}",
                            "type": "function",
                            "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                        }
                    ]
                }
            )
        )
    events.append(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
    return events


def _cut_body(path: str, number: int, reply: Reply) -> dict[str, Any]:
    """A reply stopped at the output-token cap, as each API reports it."""
    if path.endswith("/chat/completions"):
        body = _chat_body(number, "fake-model", reply)
        body["choices"][0]["finish_reason"] = "length"
        return body
    body = _responses_body(number, "fake-model", reply)
    body["status"] = "incomplete"
    body["incomplete_details"] = {"reason": "max_output_tokens"}
    return body


# -- scripted agent loops ------------------------------------------------------------


def tool_outputs(request: Request) -> int:
    """How many tool results the request carries back to the model (Responses or Chat Completions)."""
    items = request.body.get("input") or request.body.get("messages") or []
    if not isinstance(items, list):
        return 0
    return sum(
        1
        for item in items
        if isinstance(item, dict) and (item.get("type") == "function_call_output" or item.get("role") == "tool")
    )


def first_user_text(request: Request) -> str:
    """The first user message of the request (the agent's question)."""
    items = request.body.get("input") or request.body.get("messages") or []
    if isinstance(items, str):
        return items
    for item in items:
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, list):
                return " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
            return str(content or "")
    return ""


@dataclass
class AgentScript:
    """A responder that plays an agent loop per question: the reply for the step the conversation is at.

    ``scripts`` maps a piece of the question to its replies; the step is found
    from the tool results the request carries, so concurrent runs never take
    each other's replies. Requests are counted per question in :attr:`calls`.
    """

    scripts: dict[str, list[Reply]]
    default: list[Reply] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def steps_for(self, question: str) -> tuple[str, list[Reply]]:
        """The script whose key occurs in ``question`` (else the default)."""
        for key, steps in self.scripts.items():
            if key in question:
                return key, steps
        return "", self.default

    def __call__(self, request: Request) -> Reply:
        key, steps = self.steps_for(first_user_text(request))
        with self._lock:
            self.calls[key] = self.calls.get(key, 0) + 1
        if not steps:
            return Reply(fault=Fault.SERVER_ERROR, retry_after=None, text="no script for this question")
        outputs, done = tool_outputs(request), 0
        for reply in steps:
            if done >= outputs:
                return reply
            done += len(reply.tool_calls)
        return steps[-1]
