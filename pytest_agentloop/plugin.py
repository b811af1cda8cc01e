"""pytest-agentloop's pytest plugin: options, ini settings, hooks and fixtures.

Fixture precedence for the trace a Python eval reads: the ``agentloop_trace``
marker, else an override of the ``agentloop_trace`` fixture in a conftest.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from fnmatch import fnmatch
from pathlib import Path
from typing import TypeVar

import pytest

from pytest_agentloop.agent.options import add_options as add_live_options
from pytest_agentloop.agent.options import build_live_settings
from pytest_agentloop.agent.source import RUN_SOURCE_KEY
from pytest_agentloop.assertions.registry import AssertionRegistry, AssertionTypeClash, using
from pytest_agentloop.collect import EvalFile, EvalItem, registry_for, store_for
from pytest_agentloop.config import SETTINGS_KEY, Backend, Settings, add_settings, build_settings, settings_of
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.evaluate import run_assertion
from pytest_agentloop.gate.shards import parse_shard
from pytest_agentloop.pyevals import MUST_PASS_MARKER, is_python_eval, tags_of
from pytest_agentloop.results import PYTHON_SCORING
from pytest_agentloop.session import AgentloopSession, XdistHooks
from pytest_agentloop.spec import AssertionSpec
from pytest_agentloop.traces.store import TraceRecord, TraceStore


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the agentloop option group and ini settings (one table, in config.py)."""
    group = add_settings(parser)
    group.addoption(
        "--agentloop-handoff",
        dest="agentloop_handoff",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="after the run, send results, feedback and traces to HALO and write a handoff "
        "(default PATH: <agentloop_artifacts_dir>/handoff.md)",
    )
    add_live_options(group, parser, _add_rows)


Row = tuple[str, str, "Callable[[str], object] | None", str]


def _add_rows(group: pytest.OptionGroup, parser: pytest.Parser, rows: list[Row]) -> None:
    """Options a capability plugin declares itself (live runs): ``--agentloop-NAME`` and ini ``agentloop_NAME``."""
    for name, metavar, kind, text in rows:
        dest = "agentloop_" + name.replace("-", "_")
        group.addoption(f"--agentloop-{name}", dest=dest, default=None, metavar=metavar, type=kind, help=text)
        parser.addini(dest, default="", help=text)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Add pytest-agentloop's extension points."""
    from pytest_agentloop import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    """Build the settings once, declare markers, check plugin assertion types, start the session object."""
    config.stash[SETTINGS_KEY] = build_settings(config)
    _check_plugin_assertions(config)
    config.addinivalue_line("markers", "agentloop: an eval collected from an agentloop eval file")
    config.addinivalue_line("markers", "agentloop_trace(ref): the recorded run (label or trace id) a Python eval reads")
    config.addinivalue_line("markers", "agentloop_must_pass: a Python eval the gate fails on whenever it fails")
    session = AgentloopSession(config)
    _register(config, session, AgentloopSession.name)
    if config.pluginmanager.hasplugin("xdist"):
        _register(config, XdistHooks(session), "agentloop-xdist")
    settings = settings_of(config)
    _register_shard_selector(config, settings)
    _register_live(config)
    # Capabilities a session does not use are never imported: their modules (the live runner and its pool, the
    # HTML report, shard planning, Promptfoo) weigh on start-up and on every garbage collection pass until exit.
    if settings.backend is Backend.PROMPTFOO:
        from pytest_agentloop.backends.promptfoo_plugin import PromptfooPlugin

        _register(config, PromptfooPlugin(config), PromptfooPlugin.name)
    if settings.html and not hasattr(config, "workerinput"):
        from pytest_agentloop.report.plugin import HtmlReportPlugin

        _register(config, HtmlReportPlugin(config), HtmlReportPlugin.name)


REGISTERED_KEY = pytest.StashKey[list[str]]()


def _register(config: pytest.Config, plugin: object, name: str) -> None:
    """Register one of the plugin's session objects (dropped again in ``pytest_unconfigure``)."""
    config.pluginmanager.register(plugin, name)
    config.stash.setdefault(REGISTERED_KEY, []).append(name)


def _register_live(config: pytest.Config) -> None:
    """The money budget, then live runs, each only when its option is given."""
    live = build_live_settings(config)
    if live.budget is not None:  # before the live runs and the judge, which hold money against it
        from pytest_agentloop.agent.budget import register_budget

        register_budget(config)
    if live.live:
        from pytest_agentloop.agent.live import register_live

        register_live(config)


def _register_shard_selector(config: pytest.Config, settings: Settings) -> None:
    """With ``--agentloop-shard``, keep this runner's share of the selection (and write its shard file)."""
    if not settings.shard:
        if settings.shard_out:
            raise pytest.UsageError("--agentloop-shard-out needs --agentloop-shard=K/N")
        return
    from pytest_agentloop.gate.sharding import ShardSelector, XdistShardHooks

    durations = Path(settings.durations) if settings.durations else None
    out = Path(settings.shard_out) if settings.shard_out else None
    try:
        selector = ShardSelector(parse_shard(settings.shard), durations, out)
    except AgentloopError as exc:
        raise pytest.UsageError(f"--agentloop-durations: {exc}") from None
    _register(config, selector, ShardSelector.name)
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        _register(config, XdistShardHooks(selector), "agentloop-shard-xdist")


def _check_plugin_assertions(config: pytest.Config) -> None:
    """Fail fast on a name clash among the types offered by plugins and root conftests.

    Nothing is registered here: each eval file asks its own folder's hooks when it is collected.
    """
    offered = [kind for kinds in config.hook.pytest_agentloop_assertion_types(config=config) for kind in kinds]
    try:
        AssertionRegistry.with_types(offered)
    except AssertionTypeClash as exc:
        raise pytest.UsageError(f"{exc}; rename it in the plugin or conftest.py that returns it") from None


def pytest_unconfigure(config: pytest.Config) -> None:
    """Drop the session object and the other objects registered at configure time."""
    for name in config.stash.get(REGISTERED_KEY, []):
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            config.pluginmanager.unregister(plugin)


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> EvalFile | None:
    """Collect files that match ``agentloop_eval_files``."""
    patterns = settings_of(parent.config).eval_patterns
    if any(fnmatch(file_path.name, pattern) for pattern in patterns):
        return EvalFile.from_parent(parent, path=file_path)
    return None


def pytest_itemcollected(item: pytest.Item) -> None:
    """Describe a Python eval in its JUnit properties as an eval item is described (its run is named at call)."""
    if is_python_eval(item):
        item.user_properties.extend(
            [
                ("eval_id", item.name),
                ("tags", ",".join(tags_of(item))),
                ("split", "optimization"),
                ("scoring", PYTHON_SCORING),
                ("must_pass", str(item.get_closest_marker(MUST_PASS_MARKER) is not None).lower()),
            ]
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Point skips of eval items at the eval's line in its YAML file, not at plugin code; name a Python eval's run
    in its JUnit properties, as an eval item's are named."""
    record = getattr(item, "funcargs", {}).get("agentloop_trace") if call.when == "call" else None
    if isinstance(record, TraceRecord) and ("trace_id", record.trace_id) not in item.user_properties:
        item.user_properties.extend(
            [("trace_id", record.trace_id), ("trace_label", record.label), ("harness_version", record.harness_version)]
        )
    report: pytest.TestReport = yield
    if isinstance(item, EvalItem) and report.skipped and isinstance(report.longrepr, tuple):
        report.longrepr = (str(item.path), item.spec.line, report.longrepr[2])
    return report


T = TypeVar("T")


def _or_fail(load: Callable[[], T]) -> T:
    """``load()``, turning a user error into a clean fixture error (no chained traceback)."""
    try:
        return load()
    except AgentloopError as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


@pytest.fixture
def agentloop_store(request: pytest.FixtureRequest) -> TraceStore:
    """The trace store nearest the requesting test file."""
    return _or_fail(lambda: store_for(request.config, request.path, None, settings_of(request.config)))


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
    source = request.config.stash.get(RUN_SOURCE_KEY, None)
    if source is not None:  # --agentloop-live: the fresh run of the same question
        return _or_fail(lambda: source.record_for(request.node))
    return _or_fail(lambda: agentloop_store.get(str(marker.args[0])))


@pytest.fixture
def agentloop_output(agentloop_trace: TraceRecord) -> str:
    """The final answer text of the current trace."""
    return _or_fail(lambda: agentloop_trace.answer)


@pytest.fixture
def agentloop_artifacts(agentloop_trace: TraceRecord) -> Path:
    """The artifact folder of the current trace."""
    return _or_fail(agentloop_trace.require_artifacts)


@pytest.fixture
def agentloop_assert(request: pytest.FixtureRequest, agentloop_trace: TraceRecord) -> Callable[..., None]:
    """Run a registered assertion type against the current trace, as a YAML eval would."""

    registry = _or_fail(lambda: registry_for(request.node))

    def check(
        kind: str,
        value: object = None,
        *,
        artifact: str | None = None,
        threshold: float | None = None,
        dataroom: Path | None = None,
    ) -> None:
        __tracebackhide__ = True  # the failure points at the test's own line, not this helper
        with using(registry):
            if registry.lookup(kind) is None:
                pytest.fail(f"unknown assertion type {kind!r}; known types: {', '.join(registry.names())}")
            spec = AssertionSpec(type=kind, value=value, line=0, artifact=artifact, threshold=threshold)
            artifacts = agentloop_trace.artifacts_dir if agentloop_trace.artifacts_dir.is_dir() else None
            result = run_assertion(spec, agentloop_trace.answer, artifacts, dataroom)
        if not result.passed:
            raise AssertionError(f"{kind}: expected {result.expected}\n  seen: {result.seen}")

    return check
