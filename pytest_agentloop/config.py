"""The frozen settings object, built once from options and ini, kept under a StashKey."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

DEFAULT_EVAL_PATTERNS = ("*.eval.yaml", "*.eval.yml")
DEFAULT_TRACES_DIRNAME = "traces"
DEFAULT_MAX_EVAL_FILE_MB = 10.0


@dataclass(frozen=True)
class Settings:
    """Everything the plugin reads from the command line and ini files."""

    eval_patterns: tuple[str, ...] = DEFAULT_EVAL_PATTERNS
    traces_dirname: str = DEFAULT_TRACES_DIRNAME
    max_eval_file_bytes: int = int(DEFAULT_MAX_EVAL_FILE_MB * 1_000_000)


SETTINGS_KEY = pytest.StashKey[Settings]()


def positive_float(text: str) -> float:
    """``type=`` callable for positive numbers; bad values are usage errors."""
    try:
        value = float(text)
    except ValueError:
        raise pytest.UsageError(f"expected a number, got {text!r}") from None
    if value <= 0:
        raise pytest.UsageError(f"expected a positive number, got {text!r}")
    return value


def build_settings(config: pytest.Config) -> Settings:
    """Read options (which win) and ini settings into one frozen object."""
    patterns = tuple(config.getini("agentloop_eval_files")) or DEFAULT_EVAL_PATTERNS
    traces = config.getoption("agentloop_traces") or config.getini("agentloop_traces") or DEFAULT_TRACES_DIRNAME
    max_mb = positive_float(str(config.getini("agentloop_max_eval_file_mb") or DEFAULT_MAX_EVAL_FILE_MB))
    return Settings(
        eval_patterns=patterns,
        traces_dirname=str(traces),
        max_eval_file_bytes=int(max_mb * 1_000_000),
    )


def settings_of(config: pytest.Config) -> Settings:
    """The settings built at configure time."""
    return config.stash[SETTINGS_KEY]
