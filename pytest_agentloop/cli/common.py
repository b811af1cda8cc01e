"""What every subcommand shares: pytest's own view of the settings, the eval files and their assertion types.

The command asks pytest itself, in-process, with a small plugin: the same
rootdir and ini discovery (pyproject ``[tool.pytest.ini_options]``,
``pytest.ini``, ``tox.ini``, ``setup.cfg``), the same environment, the same
conftests at any depth and installed plugins, so it sees exactly what
``pytest`` sees. Reading settings stops before collection; reading eval files
runs ``--collect-only`` and skips every file that is not an eval file.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import pytest

from pytest_agentloop.agent.options import LiveSettings, build_live_settings
from pytest_agentloop.assertions.registry import AssertionRegistry, AssertionTypeClash, using
from pytest_agentloop.collect import EvalItem
from pytest_agentloop.config import Settings, build_settings, current_settings, settings_in_effect, settings_of
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.spec import SuiteSpec
from pytest_agentloop.traces.store import TraceStore


@dataclass
class PytestView:
    """What a pytest session in this folder would use."""

    settings: Settings
    rootpath: Path
    agent: LiveSettings = field(default_factory=LiveSettings)
    """The agent settings (agentloop_agent, key variable, redaction hook, prices) as ``--agentloop-live`` reads them."""
    suites: dict[Path, SuiteSpec] = field(default_factory=dict)
    """Eval files that loaded, with every check passed, by path."""
    registries: dict[Path, AssertionRegistry] = field(default_factory=dict)
    stores: dict[Path, TraceStore] = field(default_factory=dict)
    """Each loaded eval file's trace store, found as pytest finds it (``traces:``, else ``agentloop_traces``)."""
    errors: list[str] = field(default_factory=list)
    """One message per eval file (or folder) that failed to collect."""

    def registry(self) -> AssertionRegistry:
        """Every assertion type any collected eval file may use."""
        merged = AssertionRegistry()
        try:
            for registry in self.registries.values():
                merged = merged.merged(registry)
        except AssertionTypeClash as exc:
            raise AgentloopError(f"{exc} by two folders' conftests; run the command on one folder at a time") from None
        return merged


class _Probe:
    """The plugin that reads pytest's settings (and, when collecting, the eval files) for the command."""

    def __init__(self, collect: bool) -> None:
        self.collect = collect
        self.view: PytestView | None = None
        self.problem: str | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_cmdline_main(self, config: pytest.Config) -> int | None:
        """Settings only: build them from the parsed options and ini, and stop before any session."""
        if self.collect:
            return None
        try:
            self.view = PytestView(build_settings(config), config.rootpath, build_live_settings(config))
        except pytest.UsageError as exc:
            self.problem = str(exc)
            return int(pytest.ExitCode.USAGE_ERROR)
        return 0

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        """Collecting: the settings the plugin built."""
        self.view = PytestView(settings_of(config), config.rootpath, build_live_settings(config))

    def pytest_ignore_collect(self, collection_path: Path, config: pytest.Config) -> bool | None:
        """Only eval files are collected: no test module is imported."""
        if collection_path.is_dir():
            return None
        patterns = settings_of(config).eval_patterns
        return None if any(fnmatch(collection_path.name, p) for p in patterns) else True

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """Each eval file (or folder) that failed to collect, as one message."""
        if report.failed and self.view is not None:
            text = report.longreprtext.strip()
            self.view.errors.append(_last_line(text) if "Traceback" in text else text)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """The loaded eval files and their folders' assertion types."""
        assert self.view is not None
        for item in items:
            if isinstance(item, EvalItem):
                self.view.suites[item.path] = item.suite
                self.view.registries[item.path.parent] = item.registry
                self.view.stores[item.path] = item.store


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else text


def _run(args: list[str], probe: _Probe) -> PytestView:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = pytest.main(args, plugins=[probe])
    if probe.view is None or probe.problem or code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR):
        text = probe.problem or _error_line(err.getvalue() + out.getvalue())
        raise AgentloopError(f"pytest could not start here: {text}")
    return probe.view


def _error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1]


def pytest_settings() -> PytestView:
    """The settings ``pytest`` run from the current folder would use (options from ini, environment, defaults)."""
    return _run(["--noconftest", "-p", "no:cacheprovider"], _Probe(collect=False))


def existing(paths: list[str]) -> list[str]:
    """``paths`` (default: the current folder), each checked to exist."""
    for name in paths:
        if not Path(name).exists():
            raise AgentloopError(f"no such file or folder: {name}")
    return paths or ["."]


def pytest_collection(paths: list[str]) -> PytestView:
    """The eval files under ``paths`` as pytest collects them: every check, conftest types, ini patterns."""
    return _run([*existing(paths), "--collect-only", "-q", "-s"], _Probe(collect=True))


_VIEW: ContextVar[PytestView | None] = ContextVar("agentloop_cli_view", default=None)


@contextlib.contextmanager
def pytest_view(paths: list[str]) -> Iterator[PytestView]:
    """Within the block, eval files are found by the ini's patterns and their assertion types resolve."""
    view = pytest_collection(paths)
    token = _VIEW.set(view)
    try:
        with using(view.registry()), settings_in_effect(view.settings):
            yield view
    finally:
        _VIEW.reset(token)


def active_settings() -> Settings:
    """Inside :func:`pytest_view`, the settings pytest uses there (traces folder, verdicts file...); else defaults."""
    return current_settings()


def eval_files(paths: list[str]) -> list[Path]:
    """Eval files named by ``paths`` (files, or folders searched recursively; default: the current folder)."""
    found: set[Path] = set()
    patterns = active_settings().eval_patterns
    for name in existing(paths):
        path = Path(name)
        if path.is_file():
            found.add(path)
        else:
            found.update(p for pattern in patterns for p in path.rglob(pattern))
    return sorted(found)


def verdict_stores(paths: list[str], file_name: str) -> list[Path]:
    """The verdict files beside the eval files named by ``paths``."""
    return sorted({p.parent / file_name for p in eval_files(paths) if (p.parent / file_name).is_file()})
