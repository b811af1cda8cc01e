"""One request/token budget per endpoint, shared by every process of a session.

Users are bound by their key's rate limit, not by a concurrency number. A
:class:`RateBudget` paces calls so that the session stays under the limit and
slows down *before* a 429: it is a token bucket (requests per minute, and
optionally tokens per minute) whose state lives in a small file under a lock,
so pytest-xdist workers and the controller draw from one budget instead of N.
Responses teach it more: ``x-ratelimit-limit-*`` lowers the pace to what the
endpoint says the key has, and ``x-ratelimit-remaining-*`` with
``x-ratelimit-reset-*`` pause callers until the window resets when the budget
is nearly spent.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_agentloop.recordings import digest
from pytest_agentloop.sharedfile import SharedJson

Clock = Callable[[], float]
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class RateLimit:
    """Requests (and optionally tokens) per minute."""

    rpm: float
    tpm: float | None = None

    def __str__(self) -> str:
        return f"{self.rpm:g} rpm" + (f", {self.tpm:g} tpm" if self.tpm else "")


def parse_rate(text: str) -> RateLimit:
    """``RPM`` or ``RPM,TPM`` (positive numbers); anything else is a ValueError saying what is allowed."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"expected RPM or RPM,TPM (for example 600 or 600,200000), got {text!r}") from None
    if len(values) not in (1, 2) or not all(0 < v < float("inf") for v in values):
        raise ValueError(f"expected RPM or RPM,TPM with positive numbers, got {text!r}")
    return RateLimit(values[0], values[1] if len(values) == 2 else None)


def parse_reset(text: str) -> float | None:
    """OpenAI's reset durations (``1s``, ``6m0s``, ``20ms``) in seconds."""
    found = _DURATION.findall(text.strip())
    if not found:
        return None
    return sum(float(number) * _UNIT[unit] for number, unit in found)


@dataclass
class _Bucket:
    """Tokens available, the pace, and until when the endpoint asked for a pause."""

    requests: float
    tokens: float
    stamp: float
    rpm: float
    tpm: float | None
    paused_until: float = 0.0


class RateBudget:
    """A token bucket for one endpoint, kept in ``state_dir`` so every process of a session shares it."""

    BURST_SECONDS = 1.0  # tokens: at most one second's worth at once, what a per-second limiter accepts
    # Requests go out evenly spaced, with a little credit: enough that a call taken late (a busy machine, a sleep
    # that overslept) does not lose its slot for good, never more than half of the endpoint's own bucket (a second's
    # worth of calls), which is left to absorb network jitter. Two calls, or a quarter second's worth when more.
    REQUEST_CREDIT_SECONDS = 0.25

    def __init__(self, endpoint: str, limit: RateLimit, state_dir: Path, clock: Clock = time.time) -> None:
        self.limit = limit
        self.clock = clock
        self._file = SharedJson(state_dir / f"rate-{digest(endpoint)}.json")
        self.path, self._lock = self._file.path, self._file.lock
        self._turn: asyncio.Lock | None = None
        self.waited = 0.0

    # -- the bucket, under the file lock -------------------------------------------------

    def _load(self, now: float) -> _Bucket:
        try:
            bucket = _Bucket(**(self._file.read() or {}))
        except TypeError:
            bucket = _Bucket(1.0, self._burst(self.limit.tpm or 0), now, *self._pace())
        elapsed = max(0.0, now - bucket.stamp)
        bucket.requests = min(self._request_burst(bucket.rpm), bucket.requests + elapsed * bucket.rpm / 60)
        if bucket.tpm:
            bucket.tokens = min(self._burst(bucket.tpm), bucket.tokens + elapsed * bucket.tpm / 60)
        bucket.stamp = now
        return bucket

    def _pace(self) -> tuple[float, float | None]:
        return self.limit.rpm, self.limit.tpm

    def _request_burst(self, rpm: float) -> float:
        per_second = rpm / 60
        return max(1.0, min(per_second / 2, max(2.0, per_second * self.REQUEST_CREDIT_SECONDS)))

    def _burst(self, per_minute: float) -> float:
        return max(1.0, per_minute / 60 * self.BURST_SECONDS)

    def _save(self, bucket: _Bucket) -> None:
        self._file.write(bucket.__dict__)

    def try_take(self, tokens: int = 0) -> float:
        """Take one request (and ``tokens``) if available: returns 0, else the seconds to wait."""
        with self._lock:
            now = self.clock()
            bucket = self._load(now)
            wait = max(0.0, bucket.paused_until - now)
            if not wait and bucket.requests < 1:
                wait = (1 - bucket.requests) * 60 / bucket.rpm
            if not wait and bucket.tpm and tokens:
                need = min(tokens, self._burst(bucket.tpm))
                if bucket.tokens < need:
                    wait = (need - bucket.tokens) * 60 / bucket.tpm
            if not wait:
                bucket.requests -= 1
                bucket.tokens -= tokens if bucket.tpm else 0
            self._save(bucket)
            return wait

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until a call (of about ``tokens`` tokens) fits the budget, then take it.

        Callers of one process queue for their turn (first come, first served): only the head of the queue
        polls the shared file, so 64 waiting calls cost one file read a slot, not 64 (use on one event loop).
        """
        self._turn = self._turn or asyncio.Lock()
        async with self._turn:
            while True:
                wait = await asyncio.to_thread(self.try_take, tokens)
                if not wait:
                    return
                self.waited += wait
                await asyncio.sleep(wait)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn from a response's ``x-ratelimit-*`` headers: the key's real limit, and a pause near its end."""
        lowered = {k.lower(): v for k, v in headers.items()}
        if not any(k.startswith("x-ratelimit-") for k in lowered):
            return
        with self._lock:
            now = self.clock()
            bucket = self._load(now)
            limit = _number(lowered.get("x-ratelimit-limit-requests"))
            if limit:
                bucket.rpm = min(bucket.rpm, limit)
            token_limit = _number(lowered.get("x-ratelimit-limit-tokens"))
            if token_limit and bucket.tpm:
                bucket.tpm = min(bucket.tpm, token_limit)
            remaining = _number(lowered.get("x-ratelimit-remaining-requests"))
            reset = parse_reset(lowered.get("x-ratelimit-reset-requests", ""))
            if remaining is not None and remaining < 1 and reset:
                bucket.paused_until = max(bucket.paused_until, now + reset)
                bucket.requests = min(bucket.requests, 0.0)
            self._save(bucket)


def endpoint_budget(url: str, key_env: str, limit: RateLimit | None, state_dir: Path | None) -> RateBudget | None:
    """The one budget of an endpoint (its base URL and the variable its key is read from), when a rate is set.

    Every caller that names the same endpoint gets the same bucket file: the judge, insights and generation,
    a live agent run through the plugin's client; ``state_dir`` is ``Settings.rate_dir(root)``.
    """
    if limit is None or state_dir is None:
        return None
    return RateBudget(f"{url.rstrip('/')}\x1f{key_env}", limit, state_dir)


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None
