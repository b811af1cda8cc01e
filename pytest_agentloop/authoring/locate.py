"""Where the authoring commands find things: the ini settings, the feedback file, the trace store, recordings.

The commands read the same ini file pytest reads (``pyproject.toml``'s
``[tool.pytest.ini_options]``, ``pytest.ini``, ``tox.ini`` or ``setup.cfg``,
the first found from the current folder upwards) for ``agentloop_feedback``,
``agentloop_traces`` and the judge's endpoint settings, so that ``agentloop``
and ``pytest`` look in the same places.
"""

from __future__ import annotations

import configparser
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pytest_agentloop.config import DEFAULT_JUDGE_MODEL, DEFAULT_KEY_ENV, DEFAULT_TRACES_DIRNAME, JudgeApi, Settings
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.judge.endpoint import JudgeEndpoint
from pytest_agentloop.ratelimit import RateLimit, parse_rate
from pytest_agentloop.traces.store import TraceStore, find_store_root

RECORDINGS_FILE = "recordings.jsonl"
INI_FILES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")


@dataclass(frozen=True)
class Ini:
    """The pytest ini values the authoring commands use, and the folder paths are relative to."""

    root: Path
    values: dict[str, str | list[str]]

    def text(self, name: str) -> str | None:
        """A single value, or None when unset."""
        value = self.values.get(name)
        if isinstance(value, list):
            value = " ".join(value)
        return value or None

    def paths(self, name: str) -> list[Path]:
        """A list of paths, relative to the ini file's folder."""
        value = self.values.get(name) or []
        items = value.split() if isinstance(value, str) else value
        return [self.root / item for item in items]


def _section(path: Path) -> dict[str, str | list[str]] | None:
    if path.name == "pyproject.toml":
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        found = data.get("tool", {}).get("pytest", {}).get("ini_options")
        return None if found is None else {k: v if isinstance(v, list) else str(v) for k, v in found.items()}
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path, encoding="utf-8")
    for name in ("tool:pytest", "pytest") if path.name == "setup.cfg" else ("pytest",):
        if parser.has_section(name):
            return dict(parser.items(name))
    return {} if path.name in ("pytest.ini", ".pytest.ini") else None


def read_ini(start: Path) -> Ini:
    """The first pytest ini file from ``start`` upwards (an empty one when there is none)."""
    for folder in (start, *start.parents):
        for name in INI_FILES:
            path = folder / name
            if path.is_file():
                try:
                    values = _section(path)
                except (OSError, ValueError, configparser.Error) as exc:
                    raise AgentloopError(f"cannot read the ini file: {exc}", path=path) from None
                if values is not None:
                    return Ini(folder, values)
    return Ini(start, {})


def feedback_path(ini: Ini, explicit: str | None) -> Path:
    """``--file``, else the first ``agentloop_feedback`` entry."""
    if explicit:
        return Path(explicit)
    found = ini.paths("agentloop_feedback")
    if not found:
        raise AgentloopError(
            "no feedback file: pass --file PATH, or set agentloop_feedback in the pytest ini "
            "(e.g. evals/<suite>/feedback/human_feedback.jsonl)"
        )
    return found[0]


def trace_store(ini: Ini, near: Path, explicit: str | None) -> TraceStore:
    """``--traces``, else the nearest ``agentloop_traces`` folder (default ``traces``) from ``near`` upwards."""
    if explicit:
        return TraceStore(Path(explicit))
    dirname = ini.text("agentloop_traces") or DEFAULT_TRACES_DIRNAME
    start = near if near.is_dir() else near.parent
    root = find_store_root(start.resolve(), dirname, Path(start.resolve().anchor))
    if root is None:
        raise AgentloopError(
            f"no trace store found: no {dirname}/runs/ folder at or above {start}; pass --traces DIR", path=near
        )
    return TraceStore(root)


def recordings_path(store: TraceStore, explicit: str | None) -> Path:
    """``--recordings``, else ``recordings.jsonl`` in the folder holding the trace store (the suite's folder)."""
    return Path(explicit) if explicit else store.root.parent / RECORDINGS_FILE


def endpoint(ini: Ini, overrides: dict[str, str | None]) -> tuple[JudgeEndpoint, str]:
    """The judge's endpoint (command line, then ini, then environment, then default) and the key's variable."""

    def pick(name: str) -> str | None:
        return overrides.get(name) or ini.text(f"agentloop_judge_{name}")

    defaults = Settings()
    key_env = pick("key_env") or DEFAULT_KEY_ENV
    api = pick("api") or defaults.judge_api.value
    if api not in {a.value for a in JudgeApi}:
        raise AgentloopError(f"--api {api!r} is not one of {', '.join(a.value for a in JudgeApi)}")
    found = JudgeEndpoint(
        model=pick("model") or os.environ.get("AGENTLOOP_JUDGE_MODEL") or DEFAULT_JUDGE_MODEL,
        api_key=os.environ.get(key_env) or None,
        base_url=pick("base_url") or os.environ.get("OPENAI_BASE_URL") or None,
        api=JudgeApi(api),
        timeout=float(pick("timeout") or defaults.judge_timeout),
        max_retries=int(pick("retries") or defaults.judge_retries),
        key_env=key_env,
        rate=_rate(overrides.get("rate") or ini.text("agentloop_rate")),
        rate_dir=ini.root / (ini.text("agentloop_artifacts_dir") or defaults.artifacts_dir) / "rate",
    )
    return found, key_env


def _rate(text: str | None) -> RateLimit | None:
    """The endpoint's rate limit (``--rate``, else ini ``agentloop_rate``): the budget pytest's judge shares."""
    if not text:
        return None
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise AgentloopError(f"--rate / agentloop_rate: {exc}") from None
