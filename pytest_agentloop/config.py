"""The frozen settings object, built once from options and ini, kept under a StashKey."""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DEFAULT_EVAL_PATTERNS = ("*.eval.yaml", "*.eval.yml")
DEFAULT_TRACES_DIRNAME = "traces"
DEFAULT_MAX_EVAL_FILE_MB = 10.0


DEFAULT_JUDGE_MODEL = "gpt-4.1-mini"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_VERDICTS_FILE = "verdicts.jsonl"
DEFAULT_ARTIFACTS_DIR = ".agentloop"
DEFAULT_JUDGE_MAX_TOKENS = 1024
DEFAULT_JUDGE_CONTEXT_KB = 64


class JudgeMode(enum.StrEnum):
    """Where rubric verdicts come from."""

    REPLAY = "replay"
    RECORD = "record"
    REFRESH = "refresh"
    OFF = "off"


class GateMode(enum.StrEnum):
    """What fails a session."""

    ALL = "all"
    REGRESSIONS = "regressions"


class Backend(enum.StrEnum):
    """What grades the eval items: this plugin, or one Promptfoo run."""

    NATIVE = "native"
    PROMPTFOO = "promptfoo"


class JudgeApi(enum.StrEnum):
    """Which OpenAI API the judge is called through."""

    AUTO = "auto"
    RESPONSES = "responses"
    CHAT = "chat"


class JudgeSchema(enum.StrEnum):
    """Whether the judge is sent the verdict's JSON schema."""

    ON = "on"
    OFF = "off"


@dataclass(frozen=True)
class Settings:
    """Everything the plugin reads from the command line and ini files (no secrets)."""

    eval_patterns: tuple[str, ...] = DEFAULT_EVAL_PATTERNS
    traces_dirname: str = DEFAULT_TRACES_DIRNAME
    max_eval_file_bytes: int = int(DEFAULT_MAX_EVAL_FILE_MB * 1_000_000)
    judge_mode: JudgeMode = JudgeMode.REPLAY
    judge_model: str = DEFAULT_JUDGE_MODEL
    judge_base_url: str | None = None
    judge_api: JudgeApi = JudgeApi.AUTO
    judge_max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS
    judge_schema: JudgeSchema = JudgeSchema.ON
    judge_context_bytes: int = DEFAULT_JUDGE_CONTEXT_KB * 1000
    judge_key_env: str = DEFAULT_KEY_ENV
    judge_timeout: float = 60.0
    judge_retries: int = 4
    concurrency: int = 8
    repeat: int | None = None
    verdicts_filename: str = DEFAULT_VERDICTS_FILE
    handoff: str | None = None
    artifacts_dir: str = DEFAULT_ARTIFACTS_DIR
    handoff_timeout: float = 900.0
    halo_model: str | None = None
    halo_subagent_model: str | None = None
    halo_synthesis_model: str | None = None
    halo_compaction_model: str | None = None
    halo_depth: int = 1
    halo_parallel: int = 2
    halo_turns: int = 30
    harness: str | None = None
    feedback: tuple[str, ...] = ()
    history: str | None = None
    baseline: str | None = None
    gate: GateMode = GateMode.ALL
    split: str | None = None
    report: str | None = None
    shard: str | None = None
    durations: str | None = None
    backend: Backend = Backend.NATIVE
    html: str | None = None

    def history_path(self, root: Path) -> Path:
        """Where the run history lives."""
        return root / (self.history or f"{self.artifacts_dir}/history.sqlite")

    def locks_dir(self, root: Path) -> Path:
        """Where lock files go: under the artifacts folder, never beside tracked files."""
        return root / self.artifacts_dir / "locks"

    def judge_key(self) -> str | None:
        """The judge's API key, read from the environment when needed, never stored."""
        return os.environ.get(self.judge_key_env) or None


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


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise pytest.UsageError(f"expected a whole number, got {text!r}") from None
    if value < low:
        raise pytest.UsageError(f"expected a number of at least {low}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """``type=`` callable for counts of at least 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """``type=`` callable for counts of at least 0."""
    return _int_at_least(text, 0)


def enum_value(kind: type[enum.StrEnum]) -> Callable[[str], enum.StrEnum]:
    """``type=`` callable accepting one of an enum's values."""

    def convert(text: str) -> enum.StrEnum:
        try:
            return kind(text)
        except ValueError:
            choices = ", ".join(m.value for m in kind)
            raise pytest.UsageError(f"{text!r} is not one of {choices}") from None

    return convert


def _setting(config: pytest.Config, name: str, default: object = None) -> object:
    """Command line first, then ini, then environment (for the judge model), then default."""
    value = config.getoption(name, None)
    if value is None or value == "":
        value = config.getini(name) or None
    return default if value is None else value


def build_settings(config: pytest.Config) -> Settings:
    """Read options (which win) and ini settings into one frozen object."""
    patterns = tuple(config.getini("agentloop_eval_files")) or DEFAULT_EVAL_PATTERNS
    max_mb = positive_float(str(config.getini("agentloop_max_eval_file_mb") or DEFAULT_MAX_EVAL_FILE_MB))
    key_env = str(_setting(config, "agentloop_judge_key_env", DEFAULT_KEY_ENV))
    mode_text = _setting(config, "agentloop_judge")
    if mode_text is None:
        mode = JudgeMode.RECORD if os.environ.get(key_env) else JudgeMode.REPLAY
    else:
        mode = JudgeMode(enum_value(JudgeMode)(str(mode_text)))
    repeat = _setting(config, "agentloop_repeat")
    return Settings(
        eval_patterns=patterns,
        traces_dirname=str(_setting(config, "agentloop_traces", DEFAULT_TRACES_DIRNAME)),
        max_eval_file_bytes=int(max_mb * 1_000_000),
        judge_mode=mode,
        judge_model=str(
            _setting(config, "agentloop_judge_model") or os.environ.get("AGENTLOOP_JUDGE_MODEL") or DEFAULT_JUDGE_MODEL
        ),
        judge_base_url=str(_setting(config, "agentloop_judge_base_url") or os.environ.get("OPENAI_BASE_URL") or "")
        or None,
        judge_api=JudgeApi(enum_value(JudgeApi)(str(_setting(config, "agentloop_judge_api", "auto")))),
        judge_max_tokens=non_negative_int(
            str(_setting(config, "agentloop_judge_max_tokens", DEFAULT_JUDGE_MAX_TOKENS))
        ),
        judge_schema=JudgeSchema(enum_value(JudgeSchema)(str(_setting(config, "agentloop_judge_schema", "on")))),
        judge_context_bytes=int(
            positive_float(str(_setting(config, "agentloop_judge_context_kb", DEFAULT_JUDGE_CONTEXT_KB))) * 1000
        ),
        judge_key_env=key_env,
        judge_timeout=positive_float(str(_setting(config, "agentloop_judge_timeout", 60))),
        judge_retries=non_negative_int(str(_setting(config, "agentloop_judge_retries", 4))),
        concurrency=positive_int(str(_setting(config, "agentloop_concurrency", 8))),
        repeat=None if repeat is None else positive_int(str(repeat)),
        verdicts_filename=str(_setting(config, "agentloop_verdicts", DEFAULT_VERDICTS_FILE)),
        backend=Backend(enum_value(Backend)(str(_setting(config, "agentloop_backend", "native")))),
        **_handoff_settings(config),
    )


def _optional(config: pytest.Config, name: str) -> str | None:
    value = _setting(config, name)
    return None if value is None else str(value)


def _handoff_settings(config: pytest.Config) -> dict[str, Any]:
    """The handoff's part of the settings."""
    handoff = config.getoption("agentloop_handoff", None)
    return {
        "handoff": None if handoff is None else str(handoff),
        "artifacts_dir": str(_setting(config, "agentloop_artifacts_dir", DEFAULT_ARTIFACTS_DIR)),
        "handoff_timeout": positive_float(str(_setting(config, "agentloop_handoff_timeout", 900))),
        "halo_model": _optional(config, "agentloop_halo_model"),
        "halo_subagent_model": _optional(config, "agentloop_halo_subagent_model"),
        "halo_synthesis_model": _optional(config, "agentloop_halo_synthesis_model"),
        "halo_compaction_model": _optional(config, "agentloop_halo_compaction_model"),
        "halo_depth": non_negative_int(str(_setting(config, "agentloop_halo_depth", 1))),
        "halo_parallel": positive_int(str(_setting(config, "agentloop_halo_parallel", 2))),
        "halo_turns": positive_int(str(_setting(config, "agentloop_halo_turns", 30))),
        "harness": _optional(config, "agentloop_harness"),
        "feedback": tuple(str(p) for p in config.getini("agentloop_feedback") or ()),
        "history": _optional(config, "agentloop_history"),
        "baseline": _optional(config, "agentloop_baseline"),
        "gate": GateMode(enum_value(GateMode)(str(_setting(config, "agentloop_gate", "all")))),
        "split": _optional(config, "agentloop_split"),
        "report": _optional(config, "agentloop_report"),
        "shard": _optional(config, "agentloop_shard"),
        "durations": _optional(config, "agentloop_durations"),
        "html": _optional(config, "agentloop_html"),
    }


def settings_of(config: pytest.Config) -> Settings:
    """The settings built at configure time."""
    return config.stash[SETTINGS_KEY]
