"""The frozen settings object and the one table of settings it is built from.

Every setting is declared once in :data:`SETTINGS`: its ``--agentloop-NAME``
option and/or ``agentloop_NAME`` ini value, its help text and how a value is
checked. Its default is written once, on the :class:`Settings` field. The
plugin registers options and ini values from the table; :func:`build_settings`
reads them (command line, then ini, then environment, then default) for the
plugin and for every ``agentloop`` subcommand alike.
"""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import pytest

from pytest_agentloop.ratelimit import RateLimit, parse_rate
from pytest_agentloop.scoped import bound


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


class SplitChoice(enum.StrEnum):
    """Values of ``--agentloop-split`` (the eval schema's ``split`` values)."""

    OPTIMIZATION = "optimization"
    HOLDOUT = "holdout"


@dataclass(frozen=True)
class Settings:
    """Everything the plugin reads from the command line, ini files and environment (no secrets).

    Each field's default here is the only place that default is written.
    """

    eval_patterns: tuple[str, ...] = ("*.eval.yaml", "*.eval.yml")
    traces_dirname: str = "traces"
    max_eval_file_mb: float = 10.0
    judge_mode: JudgeMode = JudgeMode.REPLAY
    judge_model: str = "gpt-4.1-mini"
    judge_base_url: str | None = None
    judge_api: JudgeApi = JudgeApi.AUTO
    judge_max_tokens: int = 1024
    judge_schema: JudgeSchema = JudgeSchema.ON
    judge_context_kb: float = 64.0
    judge_key_env: str = "OPENAI_API_KEY"
    judge_timeout: float = 60.0
    judge_retries: int = 4
    concurrency: int = 8
    rate: RateLimit | None = None
    repeat: int | None = None
    verdicts_filename: str = "verdicts.jsonl"
    handoff: str | None = None
    artifacts_dir: str = ".agentloop"
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
    html: str | None = None
    shard: str | None = None
    durations: str | None = None
    shard_out: str | None = None
    backend: Backend = Backend.NATIVE
    given: frozenset[str] = field(default=frozenset(), compare=False)
    """Names of the fields set explicitly (option, ini or environment) rather than defaulted."""

    @property
    def max_eval_file_bytes(self) -> int:
        """The eval-file size limit in bytes."""
        return int(self.max_eval_file_mb * 1_000_000)

    @property
    def judge_context_bytes(self) -> int:
        """The most judge_context artifact text one eval shows the judge, in bytes."""
        return int(self.judge_context_kb * 1000)

    def rate_dir(self, root: Path) -> Path:
        """Where the shared rate budgets live (one file per endpoint, shared by xdist workers)."""
        return root / self.artifacts_dir / "rate"

    def locks_dir(self, root: Path) -> Path:
        """Where lock files go: under the artifacts folder, never beside tracked files."""
        return root / self.artifacts_dir / "locks"

    def history_path(self, root: Path) -> Path:
        """Where the run history lives."""
        return root / (self.history or f"{self.artifacts_dir}/history.sqlite")

    def judge_key(self) -> str | None:
        """The judge's API key, read from the environment when needed, never stored."""
        return os.environ.get(self.judge_key_env) or None

    @property
    def gate_requested(self) -> bool:
        """Whether the user asked for a baseline comparison or a gate policy."""
        return self.baseline is not None or "gate" in self.given


SETTINGS_KEY = pytest.StashKey[Settings]()
DEFAULTS = Settings()
# Names other modules import; each is the Settings default above, not a second copy.
DEFAULT_EVAL_PATTERNS = DEFAULTS.eval_patterns
DEFAULT_TRACES_DIRNAME = DEFAULTS.traces_dirname
DEFAULT_JUDGE_MODEL = DEFAULTS.judge_model
DEFAULT_KEY_ENV = DEFAULTS.judge_key_env
DEFAULT_VERDICTS_FILE = DEFAULTS.verdicts_filename
DEFAULT_ARTIFACTS_DIR = DEFAULTS.artifacts_dir
DEFAULT_JUDGE_MAX_TOKENS = DEFAULTS.judge_max_tokens
DEFAULT_JUDGE_CONTEXT_KB = int(DEFAULTS.judge_context_kb)


# -- value checks: each raises ValueError with what is allowed ----------------------------


def positive_float(text: str) -> float:
    """A finite number above zero."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {text!r}")
    if value <= 0:
        raise ValueError(f"expected a positive number, got {text!r}")
    return value


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None
    if value < low:
        raise ValueError(f"expected a number of at least {low}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A count of at least 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """A count of at least 0."""
    return _int_at_least(text, 0)


def enum_value(kind: type[enum.StrEnum]) -> Callable[[str], enum.StrEnum]:
    """One of an enum's values."""

    def convert(text: str) -> enum.StrEnum:
        try:
            return kind(text)
        except ValueError:
            choices = ", ".join(m.value for m in kind)
            raise ValueError(f"{text!r} is not one of {choices}") from None

    return convert


def _split_value(text: str) -> str:
    return str(enum_value(SplitChoice)(text))


def _shard_value(text: str) -> str:
    from pytest_agentloop.gate.shards import parse_shard

    parse_shard(text)  # raises ValueError saying what is allowed
    return text


IniType = Literal["string", "args", "paths"]


@dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    name: str
    """``--agentloop-NAME`` / ``agentloop_NAME`` (dashes become underscores)."""
    field: str
    help: str
    """Help text; ``{default}`` is replaced by the field's default."""
    metavar: str = "VALUE"
    convert: Callable[[str], Any] | None = None
    option: bool = True
    ini_type: IniType = "string"
    env: str | None = None
    """An environment variable read when neither option nor ini sets the value."""

    @property
    def dest(self) -> str:
        """The option's dest and the ini name."""
        return "agentloop_" + self.name.replace("-", "_")

    @property
    def flag(self) -> str:
        """The command-line flag."""
        return f"--agentloop-{self.name}"

    def help_text(self) -> str:
        """Help with the default filled in."""
        default = getattr(DEFAULTS, self.field)
        if isinstance(default, tuple):
            default = " ".join(default)
        return self.help.replace("{default}", str(default))


SETTINGS: tuple[Setting, ...] = (
    Setting("eval-files", "eval_patterns", "glob patterns of eval files (default: {default})", option=False,
            ini_type="args"),
    Setting("traces", "traces_dirname", "trace store folder looked up beside eval files and above them "
            "(default: {default})", "DIR"),
    Setting("max-eval-file-mb", "max_eval_file_mb", "largest eval file accepted, in MB (default: {default})",
            convert=positive_float, option=False),
    Setting("judge", "judge_mode", "where rubric verdicts come from: replay, record, refresh or off "
            "(default: record with a judge key in the environment, else replay)", "MODE", enum_value(JudgeMode)),
    Setting("judge-model", "judge_model", "judge model (default: $AGENTLOOP_JUDGE_MODEL or {default})", "MODEL",
            env="AGENTLOOP_JUDGE_MODEL"),
    Setting("judge-base-url", "judge_base_url", "OpenAI-compatible base URL of the judge "
            "(default: $OPENAI_BASE_URL or the OpenAI API)", "URL", env="OPENAI_BASE_URL"),
    Setting("judge-api", "judge_api", "auto (default: responses on api.openai.com, chat elsewhere), responses "
            "or chat", "API", enum_value(JudgeApi)),
    Setting("judge-max-tokens", "judge_max_tokens", "cap on the judge's output tokens per call, 0 for none "
            "(default: {default})", "N", non_negative_int),
    Setting("judge-schema", "judge_schema", "on (default): send the verdict's JSON schema; off: ask in words, for "
            "endpoints that ignore schemas", "ON_OFF", enum_value(JudgeSchema)),
    Setting("judge-context-kb", "judge_context_kb", "most judge_context artifact text one eval shows the judge, "
            "in KB (default: {default})", "KB", positive_float),
    Setting("judge-key-env", "judge_key_env", "variable holding the judge's API key (default: {default})", "NAME"),
    Setting("judge-timeout", "judge_timeout", "timeout of one judge call, seconds (default: {default})", "SECONDS",
            positive_float),
    Setting("judge-retries", "judge_retries", "retries of 429, 5xx, timeouts, dropped connections "
            "(default: {default})", "N", non_negative_int),
    Setting("concurrency", "concurrency", "judge calls in flight at once, an upper bound (default: {default})", "N",
            positive_int),
    Setting("rate", "rate", "the endpoint's rate limit, RPM or RPM,TPM: calls are paced to stay under it, shared "
            "by every process of the session (default: no pacing; with a rate, x-ratelimit headers can lower it)",
            "RPM[,TPM]", parse_rate),
    Setting("repeat", "repeat", "grade every rubric N times (default: each eval's repeat)", "N", positive_int),
    Setting("backend", "backend", "native (default) or promptfoo (one Promptfoo run grades the evals)", "NAME",
            enum_value(Backend)),
    Setting("verdicts", "verdicts_filename", "verdict store file name beside the eval files (default: {default})",
            "FILE"),
    Setting("handoff-timeout", "handoff_timeout", "time budget of the HALO run, seconds (default: {default})",
            "SECONDS", positive_float),
    Setting("halo-model", "halo_model", "HALO root agent model (default: the judge model)", "MODEL"),
    Setting("halo-subagent-model", "halo_subagent_model", "HALO subagent model (default: the HALO model)", "MODEL"),
    Setting("halo-synthesis-model", "halo_synthesis_model", "HALO synthesis model (default: the HALO model)",
            "MODEL"),
    Setting("halo-compaction-model", "halo_compaction_model", "HALO compaction model (default: the HALO model)",
            "MODEL"),
    Setting("halo-depth", "halo_depth", "HALO subagent depth (default: {default})", "N", non_negative_int),
    Setting("halo-parallel", "halo_parallel", "HALO parallel subagents (default: {default})", "N", positive_int),
    Setting("halo-turns", "halo_turns", "HALO turns per agent (default: {default})", "N", positive_int),
    Setting("artifacts-dir", "artifacts_dir", "folder for handoffs, saved runs and the history, relative to the "
            "rootdir (default: {default})", option=False),
    Setting("harness", "harness", "the harness config YAML the handoff describes", option=False),
    Setting("feedback", "feedback", "JSONL files of human feedback and model insights for the handoff",
            option=False, ini_type="paths"),
    Setting("history", "history", "run history database (default: <agentloop_artifacts_dir>/history.sqlite)",
            "FILE"),
    Setting("baseline", "baseline", "compare with a run id, an exported results file, or 'latest' (the newest "
            "run that covered this selection)", "REF"),
    Setting("gate", "gate", "all (any failure fails, as plain pytest; default) or regressions (failures the "
            "baseline already had are reported only)", "POLICY", enum_value(GateMode)),
    Setting("split", "split", "run only the optimization or the holdout evals", "SPLIT", _split_value),
    Setting("report", "report", "also write the gate summary (markdown) to PATH", "PATH"),
    Setting("html", "html", "write a self-contained HTML report of the run to PATH", "PATH"),
    Setting("shard", "shard", "run shard K of N (balanced by recorded durations; see agentloop merge)", "K/N",
            _shard_value),
    Setting("durations", "durations", "per-eval seconds for sharding: a results export or a {nodeid: seconds} file",
            "FILE"),
    Setting("shard-out", "shard_out", "write this shard's results for `agentloop merge` to PATH", "PATH"),
)  # fmt: skip


def add_settings(parser: pytest.Parser) -> pytest.OptionGroup:
    """Register every option and ini value of the table; returns the option group."""
    group = parser.getgroup("agentloop", "LLM-agent evals (pytest-agentloop)")
    for row in SETTINGS:
        if row.option:
            group.addoption(row.flag, dest=row.dest, default=None, metavar=row.metavar, help=row.help_text())
        default: object = [] if row.ini_type != "string" else ""
        parser.addini(row.dest, default=default, type=row.ini_type, help=row.help_text())
    return group


def _raw(config: pytest.Config, row: Setting) -> tuple[object, str] | None:
    """The value as given and where it came from, or None when nothing sets it."""
    if row.option:
        value = config.getoption(row.dest, None)
        if value is not None and value != "":
            return value, row.flag
    value = config.getini(row.dest)
    if value not in ("", [], None):
        return value, f"ini {row.dest}"
    if row.env and os.environ.get(row.env):
        return os.environ[row.env], f"${row.env}"
    return None


def _convert(row: Setting, value: object, where: str) -> object:
    if row.ini_type == "args":
        return tuple(str(v) for v in value)  # type: ignore[attr-defined]
    if row.ini_type == "paths":
        return tuple(str(v) for v in value)  # type: ignore[attr-defined]
    if row.convert is None:
        return str(value)
    try:
        return row.convert(str(value))
    except ValueError as exc:
        raise pytest.UsageError(f"{where}: {exc}") from None


def build_settings(config: pytest.Config) -> Settings:
    """Read options (which win), ini values and environment into one frozen object.

    A bad value is a :class:`pytest.UsageError` naming the option or ini value and what is allowed.
    """
    values: dict[str, object] = {}
    for row in SETTINGS:
        found = _raw(config, row)
        if found is not None:
            values[row.field] = _convert(row, found[0], found[1])
    handoff = config.getoption("agentloop_handoff", None)
    if handoff is not None:
        values["handoff"] = str(handoff)
    if "judge_mode" not in values:
        key_env = str(values.get("judge_key_env", DEFAULTS.judge_key_env))
        values["judge_mode"] = JudgeMode.RECORD if os.environ.get(key_env) else JudgeMode.REPLAY
        given = frozenset(k for k in values if k != "judge_mode")
    else:
        given = frozenset(values)
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in values.items() if k in known}, given=given)  # type: ignore[arg-type]


def settings_of(config: pytest.Config) -> Settings:
    """The settings built at configure time."""
    return config.stash[SETTINGS_KEY]


def is_worker(config: pytest.Config) -> bool:
    """Whether this process is a pytest-xdist worker."""
    return hasattr(config, "workerinput")


def evaluates(config: pytest.Config) -> bool:
    """Whether this session runs evals: not under ``--collect-only``, ``--setup-only`` or ``--setup-plan``.

    When it does not, nothing calls a model and nothing is recorded.
    """
    option = config.option
    return not (
        getattr(option, "collectonly", False)
        or getattr(option, "setuponly", False)
        or getattr(option, "setupplan", False)
    )


_IN_EFFECT: ContextVar[Settings | None] = ContextVar("agentloop_settings", default=None)


def settings_in_effect(settings: Settings) -> AbstractContextManager[Settings | None]:
    """Within the block, :func:`current_settings` is ``settings`` (the CLI's view of what pytest uses)."""
    return bound(_IN_EFFECT, settings)


def current_settings() -> Settings:
    """The settings in effect for code outside a pytest session (``agentloop`` subcommands); else the defaults."""
    return _IN_EFFECT.get() or DEFAULTS
