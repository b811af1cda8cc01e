"""The live-run options and ini settings, and the frozen settings object built from them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_agentloop.config import DEFAULT_KEY_ENV, positive_float, positive_int

DEFAULT_LIVE_CONCURRENCY = 8
DEFAULT_LIVE_TIMEOUT = 600.0

AddSettings = Callable[[pytest.OptionGroup, pytest.Parser, list[Any]], None]


def add_options(group: pytest.OptionGroup, parser: pytest.Parser, add_settings: AddSettings) -> None:
    """``--agentloop-live`` and its settings; the agent, redaction and price ini values."""
    group.addoption(
        "--agentloop-live",
        dest="agentloop_live",
        action="store_true",
        default=False,
        help="run the agent (agentloop_agent) on each selected eval's question and check the fresh runs",
    )
    add_settings(
        group,
        parser,
        [
            (
                "live-concurrency",
                "N",
                positive_int,
                f"live runs in flight at once (default: {DEFAULT_LIVE_CONCURRENCY})",
            ),
            (
                "live-repeat",
                "K",
                positive_int,
                "run each question K times; report pass@k and the majority (default: 1)",
            ),
            ("live-timeout", "SECONDS", positive_float, "a live run still going after this fails (default: 600)"),
            (
                "budget",
                "USD",
                positive_float,
                "start no live run or judge call that could take the session's cost past USD",
            ),
        ],
    )
    parser.addini("agentloop_agent", default="", help="the agent: package.module:function, or 'harness' (built-in)")
    parser.addini(
        "agentloop_agent_key_env", default=DEFAULT_KEY_ENV, help="variable holding the agent's key ('none': no key)"
    )
    parser.addini("agentloop_redact", default="", help="redaction hook package.module:function (str -> str)")
    parser.addini(
        "agentloop_redact_builtin",
        default="api-key bearer email",
        help="built-in redaction patterns that apply: api-key bearer email (email may be left out)",
    )
    parser.addini("agentloop_prices", type="linelist", default=[], help="lines 'MODEL USD_PER_1M_IN USD_PER_1M_OUT'")


@dataclass(frozen=True)
class LiveSettings:
    """What the live plugin reads from options and ini (no secrets)."""

    live: bool = False
    concurrency: int = DEFAULT_LIVE_CONCURRENCY
    repeat: int = 1
    timeout: float = DEFAULT_LIVE_TIMEOUT
    budget: float | None = None
    agent: str = ""
    key_env: str = DEFAULT_KEY_ENV
    redact: str = ""
    redact_builtin: str = "api-key bearer email"
    prices: tuple[str, ...] = ()


def _value(config: pytest.Config, name: str, default: object) -> object:
    value = config.getoption(name, None)
    if value is None or value == "":
        value = config.getini(name) or None
    return default if value is None else value


def build_live_settings(config: pytest.Config) -> LiveSettings:
    """Options win over ini values."""
    budget = _value(config, "agentloop_budget", None)
    return LiveSettings(
        live=bool(config.getoption("agentloop_live", False)),
        concurrency=positive_int(str(_value(config, "agentloop_live_concurrency", DEFAULT_LIVE_CONCURRENCY))),
        repeat=positive_int(str(_value(config, "agentloop_live_repeat", 1))),
        timeout=positive_float(str(_value(config, "agentloop_live_timeout", DEFAULT_LIVE_TIMEOUT))),
        budget=None if budget is None else positive_float(str(budget)),
        agent=str(config.getini("agentloop_agent") or "").strip(),
        key_env=str(config.getini("agentloop_agent_key_env") or DEFAULT_KEY_ENV).strip(),
        redact=str(config.getini("agentloop_redact") or "").strip(),
        redact_builtin=str(config.getini("agentloop_redact_builtin")).strip(),
        prices=tuple(str(line) for line in config.getini("agentloop_prices") or ()),
    )
