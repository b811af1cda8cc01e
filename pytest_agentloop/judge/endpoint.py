"""Where the judge is and how to reach it (no client library imported here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pytest_agentloop.config import DEFAULT_KEY_ENV, JudgeApi
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.ratelimit import RateBudget, RateLimit, endpoint_budget
from pytest_agentloop.spend import MoneyBudget

DEFAULT_BASE_URL = "https://api.openai.com/v1"
OPENAI_HOSTS = ("api.openai.com",)
API_NAMES = {JudgeApi.RESPONSES: "the Responses API", JudgeApi.CHAT: "Chat Completions"}


class JudgeError(AgentloopError):
    """The judge could not be asked, or did not answer usably (one line, naming the endpoint)."""


@dataclass(frozen=True)
class JudgeEndpoint:
    """Where and how to reach the judge; the key is never shown."""

    model: str
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    api: JudgeApi = JudgeApi.AUTO
    timeout: float = 60.0
    max_retries: int = 4
    key_env: str = DEFAULT_KEY_ENV
    max_tokens: int = 1024
    schema: bool = True
    rate: RateLimit | None = None
    rate_dir: Path | None = None
    """Where the endpoint's shared rate budget lives (one per session, under the artifacts folder)."""
    money: MoneyBudget | None = None
    """The session's money budget (``--agentloop-budget``) its calls are held against."""

    @property
    def url(self) -> str:
        """The base URL requests go to."""
        return self.base_url or DEFAULT_BASE_URL

    @property
    def is_openai(self) -> bool:
        """Whether the endpoint is OpenAI's own API."""
        return (urlsplit(self.url).hostname or "") in OPENAI_HOSTS

    @property
    def resolved_api(self) -> JudgeApi:
        """The API calls go through: ``auto`` means Responses on OpenAI, Chat Completions elsewhere."""
        if self.api is not JudgeApi.AUTO:
            return self.api
        return JudgeApi.RESPONSES if self.is_openai else JudgeApi.CHAT

    def describe(self) -> str:
        """``judge M via Chat Completions at URL (auto: not api.openai.com)`` for the terminal."""
        chosen = API_NAMES[self.resolved_api]
        why = ""
        if self.api is JudgeApi.AUTO:
            why = " (auto: OpenAI's API)" if self.is_openai else " (auto: not api.openai.com; --agentloop-judge-api)"
        return f"judge {self.model} via {chosen} at {self.url}{why}"

    def budget(self) -> RateBudget | None:
        """The shared request budget of this endpoint (base URL and key), when a rate is set."""
        return endpoint_budget(self.url, self.key_env, self.rate, self.rate_dir)
