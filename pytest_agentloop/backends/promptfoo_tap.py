"""A pass-through HTTP proxy on 127.0.0.1 between Promptfoo's grader and the judge endpoint.

Promptfoo reads a grader answer without ``pass`` as a pass, and turns a grader
that is down (HTTP 500, a non-JSON answer) into an ordinary failed assertion.
This project treats both as errors. The tap forwards every grading call
unchanged and keeps what the endpoint answered, keyed by the prompt's messages,
so the backend can judge each answer by this project's rules
(:func:`pytest_agentloop.judge.rubric.parse_verdict`) and store the verdict.
Nothing is written to disk; headers (the key) are forwarded, never kept.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HOP_HEADERS = {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "accept-encoding"}


def prompt_key(system: str, user: str) -> str:
    """Key of one grading prompt (its system and user messages)."""
    return hashlib.sha256(f"{system}\x1f{user}".encode()).hexdigest()


@dataclass(frozen=True)
class Exchange:
    """One grading call as the endpoint answered it."""

    status: int | None
    body: str
    error: str | None = None

    def answer_text(self) -> str | None:
        """The model's text from a Responses or Chat Completions body, or None if there is none."""
        try:
            data = json.loads(self.body)
        except json.JSONDecodeError:
            return None
        if not isinstance(data, dict):
            return None
        if isinstance(data.get("choices"), list) and data["choices"]:
            message = data["choices"][0].get("message") or {}
            content = message.get("content")
            return content if isinstance(content, str) else None
        texts = [
            part.get("text", "")
            for item in data.get("output") or []
            if isinstance(item, dict) and item.get("type") == "message"
            for part in item.get("content") or []
            if isinstance(part, dict) and part.get("type") == "output_text"
        ]
        return "".join(texts) if texts else None

    def usage(self) -> tuple[int | None, int | None]:
        """Input and output token counts, when the endpoint reported them."""
        try:
            usage = json.loads(self.body).get("usage") or {}
        except (json.JSONDecodeError, AttributeError):
            return None, None
        return usage.get("input_tokens", usage.get("prompt_tokens")), usage.get(
            "output_tokens", usage.get("completion_tokens")
        )


def _messages_key(body: dict[str, Any]) -> str | None:
    messages = body.get("messages") if "messages" in body else body.get("input")
    if not isinstance(messages, list):
        return None
    found: dict[str, str] = {}
    for message in messages:
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            found.setdefault(str(message.get("role")), message["content"])
    if "user" not in found:
        return None
    return prompt_key(found.get("system", ""), found["user"])


class GraderTap:
    """The proxy; a context manager that serves on a free port and stops."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream.rstrip("/"))
        self.upstream = parts
        self.exchanges: dict[str, list[Exchange]] = {}
        self.lock = threading.Lock()
        handler = type("TapHandler", (_TapHandler,), {"tap": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="agentloop-tap", daemon=True)

    @property
    def base_url(self) -> str:
        """The URL to give Promptfoo's grader instead of the endpoint's (same path)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.upstream.path}"

    def record(self, key: str | None, exchange: Exchange) -> None:
        """Keep one exchange."""
        if key is None:
            return
        with self.lock:
            self.exchanges.setdefault(key, []).append(exchange)

    def last(self, key: str) -> Exchange | None:
        """The last answer to this prompt (after Promptfoo's retries)."""
        with self.lock:
            found = self.exchanges.get(key)
            return found[-1] if found else None

    def connection(self) -> http.client.HTTPConnection:
        """A new connection to the endpoint."""
        kind = http.client.HTTPSConnection if self.upstream.scheme == "https" else http.client.HTTPConnection
        return kind(self.upstream.netloc, timeout=600)

    def __enter__(self) -> GraderTap:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _TapHandler(BaseHTTPRequestHandler):
    tap: GraderTap
    protocol_version = "HTTP/1.1"
    upstream_conn: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

    def do_POST(self) -> None:
        """Forward, keep the answer, relay it."""
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            key = _messages_key(json.loads(raw or b"{}"))
        except (json.JSONDecodeError, AttributeError):
            key = None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        try:
            status, body, reply_headers = self._forward(raw, headers)
        except OSError as exc:
            self.tap.record(key, Exchange(None, "", f"{type(exc).__name__}: {exc}"))
            self._send(
                502, json.dumps({"error": {"message": f"agentloop tap: upstream unreachable: {exc}"}}).encode(), {}
            )
            return
        self.tap.record(key, Exchange(status, body.decode("utf-8", errors="replace")))
        self._send(status, body, reply_headers)

    def _forward(self, raw: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        for attempt in (1, 2):  # a kept-alive connection the endpoint closed is retried once, fresh
            if self.upstream_conn is None:
                self.upstream_conn = self.tap.connection()
            try:
                self.upstream_conn.request("POST", self.path, body=raw, headers=headers)
                response = self.upstream_conn.getresponse()
                body = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.upstream_conn.close()
                self.upstream_conn = None
                if attempt == 2:
                    raise
                continue
            kept = {k: v for k, v in response.getheaders() if k.lower() not in HOP_HEADERS}
            return response.status, body, kept
        raise OSError("unreachable")

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
