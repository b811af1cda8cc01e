"""Calling an OpenAI-compatible judge through the ``openai`` client.

Retries of rate limits, 5xx, timeouts and dropped connections are the client's
own (exponential backoff, ``retry-after`` honoured); what still fails becomes a
:class:`JudgeError` naming the endpoint and the status. No temperature is sent:
several model families reject any value but their default.

Each call sends the verdict's JSON schema (unless ``--agentloop-judge-schema=off``)
and caps the answer's tokens. A call whose schema the endpoint refuses (a 400
saying so) is asked again in words, that call only; any other 400 is an error.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx
import openai
import pydantic

from pytest_agentloop.config import JudgeApi
from pytest_agentloop.judge.endpoint import JudgeEndpoint, JudgeError
from pytest_agentloop.judge.rubric import VERDICT_SCHEMA, ParsedVerdict, Prompt, parse_verdict
from pytest_agentloop.judge.spending import paid

TIMEOUTS = (httpx.TimeoutException, httpcore.TimeoutException, TimeoutError)
SCHEMA_WORDS = ("response_format", "text.format", "json_schema", "structured output", "schema")
MALFORMED = (
    json.JSONDecodeError,
    pydantic.ValidationError,
    openai.APIResponseValidationError,
    TypeError,
    AttributeError,
)


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


def schema_refused(exc: openai.BadRequestError) -> bool:
    """Whether a 400 says the endpoint does not accept the JSON schema (the one 400 worth asking again)."""
    text = f"{getattr(exc, 'param', None) or ''} {_detail(exc)}".lower()
    return any(word in text for word in SCHEMA_WORDS)


def _detail(exc: openai.APIStatusError) -> str:
    """The server's own error message when it sent one, else the client's."""
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) and message else exc.message


def estimate_tokens(prompt: Prompt, max_tokens: int) -> int:
    """What a call may cost against a tokens-per-minute limit: the prompt (about 4 characters a token) and the cap."""
    return (len(prompt.system) + len(prompt.user)) // 4 + max_tokens


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


class OpenAIJudge:
    """Grades prompts through one endpoint; create and use it on one event loop."""

    def __init__(self, endpoint: JudgeEndpoint) -> None:
        self.endpoint = endpoint
        self.api = endpoint.resolved_api
        self._client = openai.AsyncOpenAI(
            api_key=endpoint.api_key or "missing",
            base_url=endpoint.url,
            timeout=endpoint.timeout,
            max_retries=endpoint.max_retries,
        )
        self.budget = endpoint.budget()
        self.money = endpoint.money.ledger() if endpoint.money else None
        # The client imports each API's module on first use (~0.6 s); do it now, before any call is timed.
        _ = self._client.chat if self.api is JudgeApi.CHAT else self._client.responses

    async def _paced(self, prompt: Prompt, call: Callable[[], Awaitable[Any]]) -> Any:
        """Wait for the endpoint's rate budget, make the call, learn from its rate-limit headers."""
        call = paid(self.money, self.endpoint, estimate_tokens(prompt, 0), call)  # --agentloop-budget
        if self.budget is None:
            return (await call()).parse()
        await self.budget.acquire(estimate_tokens(prompt, self.endpoint.max_tokens))
        raw = await call()
        self.budget.observe(raw.headers)
        return raw.parse()

    async def close(self) -> None:
        """Release connections."""
        await self._client.close()

    async def grade(self, prompt: Prompt) -> Graded:
        """One verdict for ``prompt``; raises JudgeError (JudgeAnswerError for an unusable answer)."""
        structured = self.endpoint.schema
        try:
            return await self._grade_once(prompt, structured)
        except openai.BadRequestError as exc:
            if not (structured and schema_refused(exc)):
                raise self._status_error(exc) from None
        try:  # this endpoint refuses JSON schemas: ask this call in words
            return await self._grade_once(prompt, structured=False)
        except openai.BadRequestError as exc:
            raise self._status_error(exc) from None

    async def _grade_once(self, prompt: Prompt, structured: bool) -> Graded:
        try:
            answer = await (self._ask_chat if self.api is JudgeApi.CHAT else self._ask_responses)(prompt, structured)
        except openai.BadRequestError:
            raise
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except openai.APIConnectionError as exc:  # APITimeoutError included
            raise self._connection_error(exc) from None
        except MALFORMED as exc:
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

    def _connection_error(self, exc: openai.APIConnectionError) -> JudgeError:
        cause = exc.__cause__ or exc
        if isinstance(exc, openai.APITimeoutError) or isinstance(cause, TIMEOUTS):
            return JudgeError(
                f"judge endpoint {self.endpoint.url} timed out after {self.endpoint.timeout:g}s "
                f"({self.endpoint.max_retries} retries); raise agentloop_judge_timeout or try later"
            )
        return JudgeError(
            f"could not reach judge endpoint {self.endpoint.url}: {type(cause).__name__}: {_one_line(str(cause))}"
        )

    def _status_error(self, exc: openai.APIStatusError) -> JudgeError:
        key = ""
        if exc.status_code in (401, 403):
            state = "set" if self.endpoint.api_key else "not set"
            key = f"; the judge's key is read from ${self.endpoint.key_env}, which is {state}"
        return JudgeError(
            f"judge endpoint {self.endpoint.url} answered HTTP {exc.status_code} "
            f"(model {self.endpoint.model}): {_one_line(_detail(exc))}{key}"
        )

    def _cut(self) -> JudgeError:
        return JudgeError(
            f"judge endpoint {self.endpoint.url} stopped the answer at the output cap of "
            f"{self.endpoint.max_tokens} tokens (model {self.endpoint.model}); raise --agentloop-judge-max-tokens"
        )

    def _empty(self, what: str) -> JudgeError:
        return JudgeError(f"judge endpoint {self.endpoint.url} returned {what} (model {self.endpoint.model})")

    async def _ask_responses(self, prompt: Prompt, structured: bool) -> Answer:
        extra: dict[str, Any] = {}
        if structured:
            extra["text"] = {
                "format": {"type": "json_schema", "name": "verdict", "schema": VERDICT_SCHEMA, "strict": True}
            }
        if self.endpoint.max_tokens:
            extra["max_output_tokens"] = self.endpoint.max_tokens
        response = await self._paced(
            prompt,
            lambda: self._client.responses.with_raw_response.create(
                model=self.endpoint.model,
                input=[{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}],
                **extra,
            ),
        )
        output = getattr(response, "output", None)
        if not isinstance(output, list):
            raise self._empty("a response without an output list")
        details = getattr(response, "incomplete_details", None)
        if (
            getattr(response, "status", None) == "incomplete"
            and getattr(details, "reason", None) == "max_output_tokens"
        ):
            raise self._cut()
        texts = [
            part.text
            for item in output
            if getattr(item, "type", None) == "message"
            for part in (getattr(item, "content", None) or [])
            if getattr(part, "type", None) == "output_text" and isinstance(getattr(part, "text", None), str)
        ]
        if not texts:
            raise self._empty("no output text")
        usage = getattr(response, "usage", None)
        return Answer("".join(texts), getattr(usage, "input_tokens", None), getattr(usage, "output_tokens", None))

    async def _ask_chat(self, prompt: Prompt, structured: bool) -> Answer:
        extra: dict[str, Any] = {}
        if structured:
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "verdict", "schema": VERDICT_SCHEMA, "strict": True},
            }
        if self.endpoint.max_tokens:
            # OpenAI's reasoning models refuse max_tokens; other servers know max_tokens best.
            name = "max_completion_tokens" if self.endpoint.is_openai else "max_tokens"
            extra[name] = self.endpoint.max_tokens
        response = await self._paced(
            prompt,
            lambda: self._client.chat.completions.with_raw_response.create(
                model=self.endpoint.model,
                messages=[{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}],
                **extra,
            ),
        )
        choices = getattr(response, "choices", None)
        if not choices:
            raise self._empty("no choices")
        choice = choices[0]
        if getattr(choice, "finish_reason", None) == "length":
            raise self._cut()
        message = getattr(choice, "message", None)
        content = getattr(message, "content", None)
        if not isinstance(content, str):
            refusal = getattr(message, "refusal", None)
            raise self._empty(f"a refusal: {refusal!r}" if refusal else "a choice without text")
        usage = getattr(response, "usage", None)
        return Answer(content, getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None))
