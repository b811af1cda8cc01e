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

from pytest_agentloop.agent.live import register_live
from pytest_agentloop.agent.options import add_options as add_live_options
from pytest_agentloop.agent.source import RUN_SOURCE_KEY
from pytest_agentloop.assertions.registry import lookup, register, unregister
from pytest_agentloop.collect import EvalFile, EvalItem, store_for
from pytest_agentloop.config import (
    DEFAULT_ARTIFACTS_DIR,
    DEFAULT_EVAL_PATTERNS,
    DEFAULT_JUDGE_CONTEXT_KB,
    DEFAULT_JUDGE_MAX_TOKENS,
    DEFAULT_JUDGE_MODEL,
    DEFAULT_KEY_ENV,
    DEFAULT_MAX_EVAL_FILE_MB,
    DEFAULT_TRACES_DIRNAME,
    DEFAULT_VERDICTS_FILE,
    SETTINGS_KEY,
    Backend,
    GateMode,
    JudgeApi,
    JudgeMode,
    JudgeSchema,
    build_settings,
    enum_value,
    non_negative_int,
    positive_float,
    positive_int,
    settings_of,
)
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.evaluate import run_assertion
from pytest_agentloop.gate.sharding import ShardSelector
from pytest_agentloop.gate.shards import parse_shard
from pytest_agentloop.report.plugin import HtmlReportPlugin
from pytest_agentloop.session import AgentloopSession, XdistHooks
from pytest_agentloop.spec import AssertionSpec, Split
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
    _judge_options(group, parser)
    _handoff_options(group, parser)
    _gate_options(group, parser)
    add_live_options(group, parser, _add_settings)
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


Row = tuple[str, str, "Callable[[str], object] | None", str]


def _add_settings(group: pytest.OptionGroup, parser: pytest.Parser, rows: list[Row]) -> None:
    """Each row becomes ``--agentloop-NAME`` and the ini value ``agentloop_NAME``; the option wins."""
    for name, metavar, kind, text in rows:
        dest = "agentloop_" + name.replace("-", "_")
        group.addoption(f"--agentloop-{name}", dest=dest, default=None, metavar=metavar, type=kind, help=text)
        parser.addini(dest, default="", help=text)


def _judge_options(group: pytest.OptionGroup, parser: pytest.Parser) -> None:
    """Judge settings: each an option and an ini value; the option wins."""
    rows: list[Row] = [
        (
            "judge",
            "MODE",
            enum_value(JudgeMode),
            "where rubric verdicts come from: replay, record, refresh or off "
            "(default: record with a judge key in the environment, else replay)",
        ),
        ("judge-model", "MODEL", None, f"judge model (default: $AGENTLOOP_JUDGE_MODEL or {DEFAULT_JUDGE_MODEL})"),
        ("judge-base-url", "URL", None, "OpenAI-compatible base URL of the judge (default: $OPENAI_BASE_URL)"),
        (
            "judge-api",
            "API",
            enum_value(JudgeApi),
            "auto (default: responses on api.openai.com, chat elsewhere), responses or chat",
        ),
        (
            "judge-max-tokens",
            "N",
            non_negative_int,
            f"cap on the judge's output tokens per call, 0 for none (default: {DEFAULT_JUDGE_MAX_TOKENS})",
        ),
        (
            "judge-schema",
            "ON_OFF",
            enum_value(JudgeSchema),
            "on (default): send the verdict's JSON schema; off: ask in words, for endpoints that ignore schemas",
        ),
        (
            "judge-context-kb",
            "KB",
            positive_float,
            f"most judge_context artifact text one eval shows the judge, in KB (default: {DEFAULT_JUDGE_CONTEXT_KB})",
        ),
        (
            "judge-key-env",
            "NAME",
            None,
            f"variable holding the judge's API key (default: {DEFAULT_KEY_ENV})",
        ),
        ("judge-timeout", "SECONDS", positive_float, "timeout of one judge call (default: 60)"),
        (
            "judge-retries",
            "N",
            non_negative_int,
            "retries of 429, 5xx, timeouts, dropped connections (default: 4)",
        ),
        ("concurrency", "N", positive_int, "judge calls in flight at once (default: 8)"),
        ("repeat", "N", positive_int, "grade every rubric N times (overrides each eval's repeat)"),
        ("verdicts", "FILE", None, f"verdict store file name beside the eval files (default: {DEFAULT_VERDICTS_FILE})"),
        ("backend", "NAME", enum_value(Backend), "native (default) or promptfoo (one Promptfoo run grades the evals)"),
    ]
    _add_settings(group, parser, rows)


def _handoff_options(group: pytest.OptionGroup, parser: pytest.Parser) -> None:
    """The handoff: HALO's models and limits, where files go."""
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
    rows: list[Row] = [
        ("handoff-timeout", "SECONDS", positive_float, "time budget of the HALO run (default: 900)"),
        ("halo-model", "MODEL", None, "HALO root agent model (default: the judge model)"),
        ("halo-subagent-model", "MODEL", None, "HALO subagent model (default: the HALO model)"),
        ("halo-synthesis-model", "MODEL", None, "HALO synthesis model (default: the HALO model)"),
        ("halo-compaction-model", "MODEL", None, "HALO compaction model (default: the HALO model)"),
        ("halo-depth", "N", non_negative_int, "HALO subagent depth (default: 1)"),
        ("halo-parallel", "N", positive_int, "HALO parallel subagents (default: 2)"),
        ("halo-turns", "N", positive_int, "HALO turns per agent (default: 30)"),
    ]
    _add_settings(group, parser, rows)
    parser.addini(
        "agentloop_artifacts_dir",
        default=DEFAULT_ARTIFACTS_DIR,
        help="folder for handoffs and saved runs, relative to the rootdir (default: .agentloop)",
    )
    parser.addini("agentloop_harness", default="", help="the harness config YAML the handoff describes")
    parser.addini(
        "agentloop_feedback",
        type="paths",
        default=[],
        help="JSONL files of human feedback and model insights for the handoff",
    )


def _gate_options(group: pytest.OptionGroup, parser: pytest.Parser) -> None:
    """The gate: history, baseline, policy, split selection, reports."""
    rows: list[Row] = [
        ("history", "FILE", None, "run history database (default: <agentloop_artifacts_dir>/history.sqlite)"),
        ("baseline", "REF", None, "compare with a run id, an exported results file, or 'latest'"),
        (
            "gate",
            "POLICY",
            enum_value(GateMode),
            "all (any failure fails, as plain pytest; default) or regressions (older failures are reported only)",
        ),
        ("split", "SPLIT", enum_value(Split), "run only the optimization or the holdout evals"),
        ("report", "PATH", None, "also write the gate summary (markdown) to PATH"),
        ("shard", "K/N", shard_value, "run shard K of N (balanced by recorded durations; see agentloop merge)"),
        ("durations", "FILE", None, "per-eval seconds for sharding: a results export or a {nodeid: seconds} file"),
        ("html", "PATH", None, "write a self-contained HTML report of the run to PATH"),
    ]
    _add_settings(group, parser, rows)


def shard_value(text: str) -> str:
    """``type=`` callable for ``--agentloop-shard``: K/N with 1 <= K <= N."""
    try:
        parse_shard(text)
    except ValueError as exc:
        raise pytest.UsageError(f"--agentloop-shard: {exc}") from None
    return text


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Add pytest-agentloop's extension points."""
    from pytest_agentloop import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    """Build the settings once, declare markers, register plugin assertion types, start the session object."""
    config.stash[SETTINGS_KEY] = build_settings(config)
    _register_plugin_assertions(config)
    config.addinivalue_line("markers", "agentloop: an eval collected from an agentloop eval file")
    config.addinivalue_line("markers", "agentloop_trace(ref): the recorded run (label or trace id) a Python eval reads")
    session = AgentloopSession(config)
    config.pluginmanager.register(session, AgentloopSession.name)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(session), "agentloop-xdist")
    settings = settings_of(config)
    if settings.shard:
        durations = Path(settings.durations) if settings.durations else None
        try:
            selector = ShardSelector(parse_shard(settings.shard), durations)
        except AgentloopError as exc:
            raise pytest.UsageError(f"--agentloop-durations: {exc}") from None
        config.pluginmanager.register(selector, ShardSelector.name)
    register_live(config)
    if settings.backend is Backend.PROMPTFOO:
        from pytest_agentloop.backends.promptfoo_plugin import PromptfooPlugin

        config.pluginmanager.register(PromptfooPlugin(config), PromptfooPlugin.name)
    if settings.html and not hasattr(config, "workerinput"):
        config.pluginmanager.register(HtmlReportPlugin(config), HtmlReportPlugin.name)


PLUGIN_TYPES_KEY = pytest.StashKey[list[str]]()


def _register_plugin_assertions(config: pytest.Config) -> None:
    """Register the types plugins offer, for this session only."""
    added = config.stash.setdefault(PLUGIN_TYPES_KEY, [])
    for kinds in config.hook.pytest_agentloop_assertion_types(config=config):
        for kind in kinds:
            if lookup(kind.name) is not None:
                raise pytest.UsageError(f"assertion type {kind.name!r} is already registered")
            register(kind)
            added.append(kind.name)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Drop the session object and the assertion types plugins registered."""
    for name in config.stash.get(PLUGIN_TYPES_KEY, []):
        unregister(name)
    for name in (
        AgentloopSession.name,
        "agentloop-xdist",
        ShardSelector.name,
        "agentloop-promptfoo",
        HtmlReportPlugin.name,
    ):
        plugin = config.pluginmanager.get_plugin(name)
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
