"""A pacing relay on 127.0.0.1, for a model client the plugin cannot hand an HTTP client to (HALO in process).

HALO builds its own ``AsyncOpenAI(base_url, api_key, default_headers)`` from its
``ModelProviderConfig``, which takes those three fields and nothing else (no
HTTP client, no hooks); its base URL is the one supported seam. The relay
listens on a free port of 127.0.0.1 and forwards each request to the real
endpoint through the paced client (:func:`pytest_agentloop.pacing.paced_client`),
streaming the answer back as it comes (Server-Sent Events included), so HALO's
calls draw on the same per-endpoint budget as the judge. Errors of the endpoint
pass through unchanged; an endpoint that cannot be reached is a 502.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx

from pytest_agentloop.pacing import paced_client
from pytest_agentloop.ratelimit import RateBudget

HOP_BY_HOP = frozenset(
    {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade", "te"}
)


@contextlib.asynccontextmanager
async def pacing_relay(upstream: str, budget: RateBudget, timeout: float) -> AsyncIterator[str]:
    """Serve the relay for the block; yields the base URL to use in place of ``upstream``."""
    parts = urlsplit(upstream)
    origin = f"{parts.scheme}://{parts.netloc}"
    async with paced_client(budget, timeout=timeout) as client:
        relay = _Relay(client, origin)
        server = await asyncio.start_server(relay.serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}{parts.path.rstrip('/')}"
        finally:
            server.close()
            await server.wait_closed()


class _Relay:
    """Forwards HTTP/1.1 requests to the endpoint; each client connection is served request by request."""

    def __init__(self, client: httpx.AsyncClient, origin: str) -> None:
        self.client, self.origin = client, origin

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer requests on one connection until the client closes it."""
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        line = await reader.readline()
        if not line.strip():
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: list[tuple[str, str]] = []
        while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = raw.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))
        length = int(next((v for k, v in headers if k.lower() == "content-length"), "0") or 0)
        body = await reader.readexactly(length) if length else b""
        forwarded = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
        try:
            async with self.client.stream(method, self.origin + target, headers=forwarded, content=body) as answer:
                await self._relay(answer, writer)
        except httpx.TransportError as exc:
            payload = json.dumps({"error": {"message": f"relay could not reach {self.origin}: {exc!r}"}}).encode()
            head = f"HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\ncontent-length: {len(payload)}\r\n"
            writer.write(head.encode() + b"\r\n" + payload)
            await writer.drain()
        return not any(k.lower() == "connection" and v.lower() == "close" for k, v in headers)

    async def _relay(self, answer: httpx.Response, writer: asyncio.StreamWriter) -> None:
        head = [f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}"]
        head += [f"{k}: {v}" for k, v in answer.headers.multi_items() if k.lower() not in HOP_BY_HOP]
        head.append("transfer-encoding: chunked")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        async for chunk in answer.aiter_raw():
            if chunk:
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
