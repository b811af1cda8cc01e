"""Structured model calls for insights and generation, recorded and replayed like verdicts.

Every answer is kept in the suite's ``recordings.jsonl`` (the project's one
keyed record/replay store, :mod:`pytest_agentloop.recordings`), keyed by a
digest of everything that went into the call: its kind, prompt version, model,
system and user messages and JSON schema. Modes mirror the judge's:

- ``replay``: recorded answers only; a missing one is an error saying how to get it;
- ``record``: recorded answers where they exist, the model for the rest (default with a key);
- ``refresh``: ask the model again for everything.

Calls run concurrently on one event loop, bounded by a semaphore; retries of
rate limits, 5xx, timeouts and dropped connections are the ``openai``
client's; its HTTP client is the paced one (:mod:`pytest_agentloop.pacing`),
so with a rate (``--rate``, ini ``agentloop_rate``) these calls draw on the
same per-endpoint budget as the judge. An answer that is not whole JSON is an error and is
never recorded.
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pydantic

from pytest_agentloop.authoring.schema import ModelAnswerError, decode
from pytest_agentloop.config import JudgeApi
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.judge.endpoint import JudgeEndpoint
from pytest_agentloop.pacing import paced_client
from pytest_agentloop.recordings import RecordStore, digest, now


class Mode(enum.StrEnum):
    """Where answers come from (the judge's modes)."""

    REPLAY = "replay"
    RECORD = "record"
    REFRESH = "refresh"


class ModelCallError(AgentloopError):
    """A model call failed, answered unusably, or has no recording in replay mode."""


@dataclass(frozen=True)
class Call:
    """One structured request: messages, schema, and what it is about (for messages)."""

    kind: str
    subject: str
    system: str
    user: str
    schema_name: str
    schema: dict[str, Any]
    prompt_version: str

    def key(self, model: str) -> str:
        """The recording key: every input of the prompt, the model and the prompt version."""
        schema = json.dumps(self.schema, sort_keys=True)
        return digest(self.kind, self.prompt_version, model, self.system, self.user, schema)


@dataclass(frozen=True)
class Recording:
    """One recorded answer and what produced it."""

    key: str
    kind: str
    subject: str
    model: str
    prompt_version: str
    answer: dict[str, Any]
    created: str
    input_tokens: int | None = None
    output_tokens: int | None = None


class _Codec:
    def to_json(self, record: Recording) -> dict[str, Any]:
        return {k: v for k, v in record.__dict__.items() if v is not None}

    def from_json(self, data: dict[str, Any]) -> Recording:
        known = Recording.__dataclass_fields__
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r}")
        record = Recording(**data)
        if not isinstance(record.answer, dict):
            raise ValueError("field 'answer': expected a JSON object")
        return record

    def sort_key(self, record: Recording) -> tuple[Any, ...]:
        return (record.kind, record.subject, record.model, record.created, record.key)


def recordings(path: Path) -> RecordStore[Recording]:
    """The recordings file at ``path``."""
    return RecordStore(path, _Codec())


Validator = Callable[[dict[str, Any]], None]
"""Checks a decoded answer as a whole; raises ModelAnswerError (the answer is then neither recorded nor used)."""


@dataclass(frozen=True)
class Answer:
    """A call's answer: the decoded JSON object, the recording's key, model and time, and whether it was replayed."""

    data: dict[str, Any]
    key: str
    model: str
    created: str
    replayed: bool


class Caller:
    """Answers calls from the recordings, or from the model as the mode allows."""

    def __init__(
        self, endpoint: JudgeEndpoint, mode: Mode, store: RecordStore[Recording], concurrency: int, key_env: str
    ) -> None:
        self.endpoint, self.mode, self.store = endpoint, mode, store
        self.concurrency, self.key_env = concurrency, key_env

    def answer(self, calls: Sequence[Call], validators: Mapping[str, Validator] | None = None) -> list[Answer]:
        """One answer per call, in order; good new answers are recorded before any error is raised."""
        checks = dict(validators or {})
        known = {r.key: r for r in self.store.read()} if self.mode is not Mode.REFRESH else {}
        keys = [c.key(self.endpoint.model) for c in calls]
        for call, key in zip(calls, keys, strict=True):
            if key in known:
                self._check(call, known[key].answer, checks.get(key), "recorded ")
        missing = [c for c, k in zip(calls, keys, strict=True) if k not in known]
        if missing and (self.mode is Mode.REPLAY or not self.endpoint.api_key):
            raise ModelCallError(self._missing_message(missing))
        fresh = asyncio.run(self._ask_all(missing, checks)) if missing else []
        done = [r for r in fresh if isinstance(r, Recording)]
        if done:
            self.store.append(done)
            self.store.rewrite()
        errors = [r for r in fresh if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        new = {r.key for r in done}
        known.update({r.key: r for r in done})
        return [Answer(known[k].answer, k, known[k].model, known[k].created, k not in new) for k in keys]

    def _check(self, call: Call, data: dict[str, Any], check: Validator | None, what: str = "") -> None:
        if check is None:
            return
        try:
            check(data)
        except ModelAnswerError as exc:
            hint = "; ask again with --mode refresh" if what else "; nothing was recorded or written"
            raise ModelCallError(f"{self._where(call)}: the {what}answer is unusable: {exc}{hint}") from None

    def _missing_message(self, missing: Sequence[Call]) -> str:
        subjects = ", ".join(sorted({f"{c.kind} for {c.subject}" for c in missing}))
        how = (
            f"set ${self.key_env} (and --base-url/--model for your endpoint) and run again with --mode record"
            if not self.endpoint.api_key
            else "run again with --mode record"
        )
        return (
            f"no recorded answer for {subjects} (model {self.endpoint.model}, prompt "
            f"{missing[0].prompt_version}) in {self.store.path}; to get one, {how}"
        )

    async def _ask_all(self, calls: Sequence[Call], checks: Mapping[str, Validator]) -> list[Recording | BaseException]:
        client = openai.AsyncOpenAI(
            api_key=self.endpoint.api_key or "missing",
            base_url=self.endpoint.url,
            timeout=self.endpoint.timeout,
            max_retries=self.endpoint.max_retries,
            # the endpoint's one rate budget, shared with the judge (and every process of a pytest session)
            http_client=paced_client(
                self.endpoint.budget(), timeout=self.endpoint.timeout, connections=self.concurrency
            ),
        )
        limit = asyncio.Semaphore(self.concurrency)
        try:
            return list(
                await asyncio.gather(*(self._ask_one(client, limit, c, checks) for c in calls), return_exceptions=True)
            )
        finally:
            await client.close()

    async def _ask_one(
        self, client: openai.AsyncOpenAI, limit: asyncio.Semaphore, call: Call, checks: Mapping[str, Validator]
    ) -> Recording:
        async with limit:
            try:
                text, finished, usage = await self._request(client, call)
            except openai.APIStatusError as exc:
                raise ModelCallError(self._status(call, exc)) from None
            except openai.APIConnectionError as exc:
                raise ModelCallError(self._connection(call, exc)) from None
            except (json.JSONDecodeError, pydantic.ValidationError, openai.APIResponseValidationError) as exc:
                raise ModelCallError(f"{self._where(call)} sent a malformed response: {exc}") from None
        try:
            data = decode(text, finished)
        except ModelAnswerError as exc:
            raise ModelCallError(f"{self._where(call)}: {exc}; nothing was recorded or written") from None
        key = call.key(self.endpoint.model)
        self._check(call, data, checks.get(key))
        return Recording(key, call.kind, call.subject, self.endpoint.model, call.prompt_version, data, now(), *usage)

    def _where(self, call: Call) -> str:
        return f"{call.kind} for {call.subject}: endpoint {self.endpoint.url} (model {self.endpoint.model})"

    def _status(self, call: Call, exc: openai.APIStatusError) -> str:
        detail = exc.message if len(exc.message) < 300 else exc.message[:300] + "…"
        hint = "; if it does not take JSON schemas on this API, try --api chat" if exc.status_code == 400 else ""
        return f"{self._where(call)} answered HTTP {exc.status_code}: {detail}{hint}"

    def _connection(self, call: Call, exc: openai.APIConnectionError) -> str:
        if isinstance(exc, openai.APITimeoutError) or isinstance(exc.__cause__, httpx.TimeoutException):
            return (
                f"{self._where(call)} timed out after {self.endpoint.timeout:g}s ({self.endpoint.max_retries} retries)"
            )
        cause = exc.__cause__ or exc
        return f"could not reach {self._where(call)}: {type(cause).__name__}: {cause}"

    async def _request(self, client: openai.AsyncOpenAI, call: Call) -> tuple[str, bool, tuple[int | None, int | None]]:
        messages: Any = [{"role": "system", "content": call.system}, {"role": "user", "content": call.user}]
        if self.endpoint.resolved_api is JudgeApi.CHAT:  # auto: as the judge chooses
            schema: Any = {"name": call.schema_name, "schema": call.schema, "strict": True}
            chat = await client.chat.completions.create(
                model=self.endpoint.model,
                messages=messages,
                response_format={"type": "json_schema", "json_schema": schema},
            )
            if not chat.choices:
                raise ModelCallError(f"{self._where(call)} returned no choices")
            choice = chat.choices[0]
            usage = (chat.usage.prompt_tokens, chat.usage.completion_tokens) if chat.usage else (None, None)
            return choice.message.content or "", choice.finish_reason != "length", usage
        response = await client.responses.create(
            model=self.endpoint.model,
            input=messages,
            text=_text_format(call),
        )
        tokens = (response.usage.input_tokens, response.usage.output_tokens) if response.usage else (None, None)
        return response.output_text, response.status != "incomplete", tokens


def _text_format(call: Call) -> Any:
    """The Responses API's ``text`` parameter asking for ``call``'s strict JSON schema."""
    return {"format": {"type": "json_schema", "name": call.schema_name, "schema": call.schema, "strict": True}}
