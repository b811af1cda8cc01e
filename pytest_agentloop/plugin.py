"""pytest-agentloop's pytest plugin: options, ini settings, hooks and fixtures.

Fixture precedence for the trace a Python eval reads: the ``agentloop_trace``
marker, else an override of the ``agentloop_trace`` fixture in a conftest.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from fnmatch import fnmatch
from pathlib import Path

import pytest

from pytest_agentloop.collect import EvalFile, EvalItem, store_for
from pytest_agentloop.config import (
    DEFAULT_EVAL_PATTERNS,
    DEFAULT_MAX_EVAL_FILE_MB,
    DEFAULT_TRACES_DIRNAME,
    SETTINGS_KEY,
    build_settings,
    settings_of,
)
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.evaluate import run_assertion
from pytest_agentloop.session import AgentloopSession
from pytest_agentloop.spec import AssertionSpec
from pytest_agentloop.traces.store import TraceRecord, TraceStore


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the agentloop option group and ini settings."""
    group = parser.getgroup("agentloop", "LLM-agent evals (pytest-agentloop)")
    group.addoption(
        "--agentloop-traces",
        dest="agentloop_traces",
        default=None,
        metavar="DIR",
        help=f"name of the trace store folder looked up beside eval files (default: {DEFAULT_TRACES_DIRNAME})",
    )
    parser.addini(
        "agentloop_eval_files",
        type="args",
        default=list(DEFAULT_EVAL_PATTERNS),
        help="glob patterns of eval definition files (default: *.eval.yaml *.eval.yml)",
    )
    parser.addini(
        "agentloop_traces",
        default=DEFAULT_TRACES_DIRNAME,
        help="trace store folder name looked up beside eval files and above them",
    )
    parser.addini(
        "agentloop_max_eval_file_mb",
        default=str(DEFAULT_MAX_EVAL_FILE_MB),
        help="largest eval file accepted, in MB (default: 10)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Build the settings once, declare markers, start the session object."""
    config.stash[SETTINGS_KEY] = build_settings(config)
    config.addinivalue_line("markers", "agentloop: an eval collected from an agentloop eval file")
    config.addinivalue_line("markers", "agentloop_trace(ref): the recorded run (label or trace id) a Python eval reads")
    config.pluginmanager.register(AgentloopSession(config), AgentloopSession.name)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Drop the session object."""
    plugin = config.pluginmanager.get_plugin(AgentloopSession.name)
    if plugin is not None:
        config.pluginmanager.unregister(plugin)


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> EvalFile | None:
    """Collect files that match ``agentloop_eval_files``."""
    patterns = settings_of(parent.config).eval_patterns
    if any(fnmatch(file_path.name, pattern) for pattern in patterns):
        return EvalFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Point skips of eval items at the eval's line in its YAML file, not at plugin code."""
    report: pytest.TestReport = yield
    if isinstance(item, EvalItem) and report.skipped and isinstance(report.longrepr, tuple):
        report.longrepr = (str(item.path), item.spec.line, report.longrepr[2])
    return report


@pytest.fixture
def agentloop_store(request: pytest.FixtureRequest) -> TraceStore:
    """The trace store nearest the requesting test file."""
    try:
        return store_for(request.config, request.path, None, settings_of(request.config))
    except AgentloopError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def agentloop_trace(request: pytest.FixtureRequest, agentloop_store: TraceStore) -> TraceRecord:
    """The recorded run named by the test's ``agentloop_trace`` marker."""
    marker = request.node.get_closest_marker("agentloop_trace")
    if marker is None or not marker.args:
        pytest.fail(
            f"{request.node.nodeid}: mark the test with @pytest.mark.agentloop_trace('<label or trace id>') "
            "or override the agentloop_trace fixture",
            pytrace=False,
        )
    try:
        return agentloop_store.get(str(marker.args[0]))
    except AgentloopError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def agentloop_output(agentloop_trace: TraceRecord) -> str:
    """The final answer text of the current trace."""
    try:
        return agentloop_trace.answer
    except AgentloopError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def agentloop_artifacts(agentloop_trace: TraceRecord) -> Path:
    """The artifact folder of the current trace."""
    try:
        return agentloop_trace.require_artifacts()
    except AgentloopError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def agentloop_assert(request: pytest.FixtureRequest, agentloop_trace: TraceRecord) -> Callable[..., None]:
    """Run a registered assertion type against the current trace, as a YAML eval would."""

    def check(
        kind: str,
        value: object = None,
        *,
        artifact: str | None = None,
        threshold: float | None = None,
        dataroom: Path | None = None,
    ) -> None:
        spec = AssertionSpec(type=kind, value=value, line=0, artifact=artifact, threshold=threshold)
        artifacts = agentloop_trace.artifacts_dir if agentloop_trace.artifacts_dir.is_dir() else None
        result = run_assertion(spec, agentloop_trace.answer, artifacts, dataroom)
        if not result.passed:
            raise AssertionError(f"{kind}: expected {result.expected}\n  seen: {result.seen}")

    return check
