"""Calling an OpenAI-compatible judge over HTTP: two JSON POSTs, spoken directly.

The judge needs Chat Completions or the Responses API and nothing else of the
``openai`` package, whose import (its typed models) costs 1.5 s and more before
the first call can leave; so the judge talks ``httpx`` itself, through the
paced client every model call of the plugin shares
(:func:`pytest_agentloop.pacing.paced_client`: the endpoint's rate budget).

Retries follow the ``openai`` client's policy: 408, 409, 429, 5xx, timeouts
and dropped connections are retried up to ``max_retries`` times with
exponential backoff (0.5 s doubling to 8 s, jittered), ``retry-after-ms`` /
``retry-after`` honoured (up to 60 s) and ``x-should-retry`` obeyed. What still
fails becomes a :class:`JudgeError` naming the endpoint and the status. No
temperature is sent: several model families reject any value but their default.

Each call sends the verdict's JSON schema (unless ``--agentloop-judge-schema=off``)
and caps the answer's tokens. A call whose schema the endpoint refuses (a 400
saying so) is asked again in words, that call only; any other 400 is an error.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from pytest_agentloop.config import JudgeApi
from pytest_agentloop.judge.endpoint import JudgeEndpoint, JudgeError
from pytest_agentloop.judge.rubric import VERDICT_SCHEMA, ParsedVerdict, Prompt, parse_verdict
from pytest_agentloop.judge.spending import paid, prompt_tokens
from pytest_agentloop.pacing import paced_client

SCHEMA_WORDS = ("response_format", "text.format", "json_schema", "structured output", "schema")
RETRY_STATUSES = frozenset({408, 409, 429})
MAX_RETRY_AFTER = 60.0
PATHS = {JudgeApi.CHAT: "/chat/completions", JudgeApi.RESPONSES: "/responses"}


@dataclass(frozen=True)
class Graded:
    """A parsed verdict and the token counts the endpoint reported."""

    verdict: ParsedVerdict
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class Answer:
    """The judge's text and token counts, before parsing."""

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None


class StatusError(Exception):
    """The endpoint answered an HTTP error status (its own message and ``param`` kept)."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        error = _error_object(response)
        message, param = error.get("message"), error.get("param")
        self.message = message if isinstance(message, str) and message else _body_text(response)
        self.param = param if isinstance(param, str) else ""
        super().__init__(f"HTTP {self.status_code}: {self.message}")


class Malformed(Exception):
    """A 2xx answer that is not the JSON object the API describes."""


def _error_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    if not isinstance(body, dict):
        return {}
    error = body.get("error", body)
    return error if isinstance(error, dict) else {"message": str(error)}


def _body_text(response: httpx.Response) -> str:
    return response.text.strip() or response.reason_phrase or f"HTTP {response.status_code}"


def schema_refused(exc: StatusError) -> bool:
    """Whether a 400 says the endpoint does not accept the JSON schema (the one 400 worth asking again)."""
    text = f"{exc.param} {exc.message}".lower()
    return exc.status_code == 400 and any(word in text for word in SCHEMA_WORDS)


def retry_delay(response: httpx.Response | None, retries_done: int) -> float | None:
    """Seconds before the next attempt, or None when the answer must not be retried (the openai client's rules)."""
    if response is not None:
        told = response.headers.get("x-should-retry", "").lower()
        if told == "false" or (told != "true" and not _retryable(response.status_code)):
            return None
        asked = _retry_after(response.headers)
        if asked is not None and 0 < asked <= MAX_RETRY_AFTER:
            return asked
    return min(0.5 * 2.0**retries_done, 8.0) * (1 - 0.25 * random.random())


def _retryable(status: int) -> bool:
    return status in RETRY_STATUSES or status >= 500


def _retry_after(headers: httpx.Headers) -> float | None:
    try:
        return float(headers["retry-after-ms"]) / 1000
    except (KeyError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError):
        return None


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def _get(data: object, *path: str | int) -> Any:
    """``data[p0][p1]...`` through dicts and lists, None where the shape differs."""
    for step in path:
        if isinstance(step, int):
            data = data[step] if isinstance(data, list) and len(data) > step else None
        else:
            data = data.get(step) if isinstance(data, dict) else None
    return data


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class OpenAIJudge:
    """Grades prompts through one endpoint; create and use it on one event loop."""

    def __init__(self, endpoint: JudgeEndpoint, connections: int = 8) -> None:
        self.endpoint = endpoint
        self.api = endpoint.resolved_api
        self.budget = endpoint.budget()
        self.money = endpoint.money.ledger() if endpoint.money else None
        self._client = paced_client(self.budget, timeout=endpoint.timeout, connections=connections)
        self._url = httpx.URL(endpoint.url.rstrip("/") + PATHS[self.api])  # parsed once, not at every call
        # OpenAI's reasoning models refuse max_tokens; other servers know max_tokens best.
        self._cap_name = "max_completion_tokens" if endpoint.is_openai else "max_tokens"
        self._headers = {"Authorization": f"Bearer {endpoint.api_key or 'missing'}"}

    async def _paced(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST one call (the paced client waits for the endpoint's rate budget), retrying as the policy says."""
        retries = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = await self._client.post(self._url, json=body, headers=self._headers)
            except httpx.TimeoutException:
                error: Exception = self._timed_out()
            except httpx.TransportError as exc:
                error = self._unreachable(exc)
            else:
                if response.is_success:
                    return self._json(response)
                error = StatusError(response)
            delay = retry_delay(response, retries) if retries < self.endpoint.max_retries else None
            if delay is None:
                raise error
            retries += 1
            await asyncio.sleep(delay)

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            data = json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Malformed(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise Malformed(f"expected a JSON object, got {type(data).__name__}")
        return data

    async def close(self) -> None:
        """Release connections."""
        await self._client.aclose()

    async def grade(self, prompt: Prompt) -> Graded:
        """One verdict for ``prompt``; raises JudgeError (JudgeAnswerError for an unusable answer)."""
        structured = self.endpoint.schema
        try:
            return await self._grade_once(prompt, structured)
        except StatusError as exc:
            if not (structured and schema_refused(exc)):
                raise self._status_error(exc) from None
        try:  # this endpoint refuses JSON schemas: ask this call in words
            return await self._grade_once(prompt, structured=False)
        except StatusError as exc:
            raise self._status_error(exc) from None

    async def _grade_once(self, prompt: Prompt, structured: bool) -> Graded:
        try:
            ask = self._ask_chat if self.api is JudgeApi.CHAT else self._ask_responses
            answer = await paid(self.money, self.endpoint, prompt_tokens(prompt), lambda: ask(prompt, structured))()
        except Malformed as exc:
            raise JudgeError(
                f"judge endpoint {self.endpoint.url} sent a malformed response: {_one_line(str(exc))}"
            ) from None
        verdict = parse_verdict(answer.text, strict=structured, hint=self._hint())
        return Graded(verdict, answer.input_tokens, answer.output_tokens)

    def _hint(self) -> str:
        if self.api is JudgeApi.RESPONSES:
            return (
                " (the endpoint may ignore the schema on the Responses API: try --agentloop-judge-api=chat, "
                "or --agentloop-judge-schema=off)"
            )
        return " (the endpoint ignored the schema: try --agentloop-judge-schema=off to ask in words)"

    def _timed_out(self) -> JudgeError:
        return JudgeError(
            f"judge endpoint {self.endpoint.url} timed out after {self.endpoint.timeout:g}s "
            f"({self.endpoint.max_retries} retries); raise agentloop_judge_timeout or try later"
        )

    def _unreachable(self, exc: httpx.TransportError) -> JudgeError:
        return JudgeError(
            f"could not reach judge endpoint {self.endpoint.url}: {type(exc).__name__}: {_one_line(str(exc))}"
        )

    def _status_error(self, exc: StatusError) -> JudgeError:
        key = ""
        if exc.status_code in (401, 403):
            state = "set" if self.endpoint.api_key else "not set"
            key = f"; the judge's key is read from ${self.endpoint.key_env}, which is {state}"
        return JudgeError(
            f"judge endpoint {self.endpoint.url} answered HTTP {exc.status_code} "
            f"(model {self.endpoint.model}): {_one_line(exc.message)}{key}"
        )

    def _cut(self) -> JudgeError:
        return JudgeError(
            f"judge endpoint {self.endpoint.url} stopped the answer at the output cap of "
            f"{self.endpoint.max_tokens} tokens (model {self.endpoint.model}); raise --agentloop-judge-max-tokens"
        )

    def _empty(self, what: str) -> JudgeError:
        return JudgeError(f"judge endpoint {self.endpoint.url} returned {what} (model {self.endpoint.model})")

    async def _ask_responses(self, prompt: Prompt, structured: bool) -> Answer:
        body: dict[str, Any] = {
            "model": self.endpoint.model,
            "input": [{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}],
        }
        if structured:
            body["text"] = {
                "format": {"type": "json_schema", "name": "verdict", "schema": VERDICT_SCHEMA, "strict": True}
            }
        if self.endpoint.max_tokens:
            body["max_output_tokens"] = self.endpoint.max_tokens
        response = await self._paced(body)
        output = response.get("output")
        if not isinstance(output, list):
            raise self._empty("a response without an output list")
        if response.get("status") == "incomplete" and _get(response, "incomplete_details", "reason") == (
            "max_output_tokens"
        ):
            raise self._cut()
        texts = [
            part["text"]
            for item in output
            if _get(item, "type") == "message"
            for part in (_get(item, "content") or [])
            if _get(part, "type") == "output_text" and isinstance(_get(part, "text"), str)
        ]
        if not texts:
            raise self._empty("no output text")
        usage = response.get("usage")
        return Answer("".join(texts), _count(_get(usage, "input_tokens")), _count(_get(usage, "output_tokens")))

    async def _ask_chat(self, prompt: Prompt, structured: bool) -> Answer:
        body: dict[str, Any] = {
            "model": self.endpoint.model,
            "messages": [{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}],
        }
        if structured:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "verdict", "schema": VERDICT_SCHEMA, "strict": True},
            }
        if self.endpoint.max_tokens:
            body[self._cap_name] = self.endpoint.max_tokens
        response = await self._paced(body)
        choice = _get(response, "choices", 0)
        if choice is None:
            raise self._empty("no choices")
        if _get(choice, "finish_reason") == "length":
            raise self._cut()
        content = _get(choice, "message", "content")
        if not isinstance(content, str):
            refusal = _get(choice, "message", "refusal")
            raise self._empty(f"a refusal: {refusal!r}" if refusal else "a choice without text")
        usage = response.get("usage")
        return Answer(content, _count(_get(usage, "prompt_tokens")), _count(_get(usage, "completion_tokens")))
