"""Calling an OpenAI-compatible judge through the ``openai`` client.

Retries of rate limits, 5xx, timeouts and dropped connections are the client's
own (exponential backoff, ``retry-after`` honoured); what still fails becomes a
:class:`JudgeError` naming the endpoint and the status. No temperature is sent:
several model families reject any value but their default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx
import openai
import pydantic

from pytest_agentloop.config import JudgeApi
from pytest_agentloop.judge.endpoint import JudgeEndpoint, JudgeError
from pytest_agentloop.judge.rubric import VERDICT_SCHEMA, ParsedVerdict, Prompt, parse_verdict

TIMEOUTS = (httpx.TimeoutException, httpcore.TimeoutException, TimeoutError)


@dataclass(frozen=True)
class Graded:
    """A parsed verdict and the token counts the endpoint reported."""

    verdict: ParsedVerdict
    input_tokens: int | None = None
    output_tokens: int | None = None


class OpenAIJudge:
    """Grades prompts through one endpoint; create and use it on one event loop."""

    def __init__(self, endpoint: JudgeEndpoint) -> None:
        self.endpoint = endpoint
        self._client = openai.AsyncOpenAI(
            api_key=endpoint.api_key or "missing",
            base_url=endpoint.url,
            timeout=endpoint.timeout,
            max_retries=endpoint.max_retries,
        )
        self._structured = True
        # The client imports each API's module on first use (~0.6 s); do it now, before any call is timed.
        _ = self._client.chat if endpoint.api is JudgeApi.CHAT else self._client.responses

    async def close(self) -> None:
        """Release connections."""
        await self._client.close()

    async def grade(self, prompt: Prompt) -> Graded:
        """One verdict for ``prompt``; raises JudgeError (or JudgeAnswerError) on failure."""
        try:
            text, usage = await self._ask(prompt)
        except openai.BadRequestError as exc:
            if not self._structured:
                raise self._status_error(exc) from None
            self._structured = False  # the endpoint may not know JSON schemas: ask in words
            return await self.grade(prompt)
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except openai.APIConnectionError as exc:  # APITimeoutError included
            raise self._connection_error(exc) from None
        except (json.JSONDecodeError, pydantic.ValidationError, openai.APIResponseValidationError) as exc:
            raise JudgeError(f"judge endpoint {self.endpoint.url} sent a malformed response: {exc}") from None
        return Graded(parse_verdict(text), *usage)

    def _connection_error(self, exc: openai.APIConnectionError) -> JudgeError:
        cause = exc.__cause__ or exc
        if isinstance(exc, openai.APITimeoutError) or isinstance(
            cause, httpx.TimeoutException | httpcore.TimeoutException | TimeoutError
        ):
            return JudgeError(
                f"judge endpoint {self.endpoint.url} timed out after {self.endpoint.timeout:g}s "
                f"({self.endpoint.max_retries} retries); raise agentloop_judge_timeout or try later"
            )
        return JudgeError(f"could not reach judge endpoint {self.endpoint.url}: {type(cause).__name__}: {cause}")

    def _status_error(self, exc: openai.APIStatusError) -> JudgeError:
        detail = exc.message if len(exc.message) < 300 else exc.message[:300] + "…"
        return JudgeError(
            f"judge endpoint {self.endpoint.url} answered HTTP {exc.status_code} "
            f"(model {self.endpoint.model}): {detail}"
        )

    async def _ask(self, prompt: Prompt) -> tuple[str, tuple[int | None, int | None]]:
        if self.endpoint.api is JudgeApi.CHAT:
            return await self._ask_chat(prompt)
        return await self._ask_responses(prompt)

    async def _ask_responses(self, prompt: Prompt) -> tuple[str, tuple[int | None, int | None]]:
        extra: dict[str, Any] = {}
        if self._structured:
            extra["text"] = {
                "format": {"type": "json_schema", "name": "verdict", "schema": VERDICT_SCHEMA, "strict": True}
            }
        response = await self._client.responses.create(
            model=self.endpoint.model,
            input=[{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}],
            **extra,
        )
        usage = response.usage
        return response.output_text, (usage.input_tokens, usage.output_tokens) if usage else (None, None)

    async def _ask_chat(self, prompt: Prompt) -> tuple[str, tuple[int | None, int | None]]:
        extra: dict[str, Any] = {}
        if self._structured:
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "verdict", "schema": VERDICT_SCHEMA, "strict": True},
            }
        response = await self._client.chat.completions.create(
            model=self.endpoint.model,
            messages=[{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}],
            **extra,
        )
        if not response.choices:
            raise JudgeError(f"judge endpoint {self.endpoint.url} returned no choices")
        usage = response.usage
        tokens = (usage.prompt_tokens, usage.completion_tokens) if usage else (None, None)
        return response.choices[0].message.content or "", tokens
