"""Where the judge is and how to reach it (no client library imported here)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_agentloop.config import JudgeApi

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class JudgeError(Exception):
    """The judge could not be asked, or did not answer usably."""


@dataclass(frozen=True)
class JudgeEndpoint:
    """Where and how to reach the judge; the key is never shown."""

    model: str
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    api: JudgeApi = JudgeApi.RESPONSES
    timeout: float = 60.0
    max_retries: int = 4

    @property
    def url(self) -> str:
        """The base URL requests go to."""
        return self.base_url or DEFAULT_BASE_URL
