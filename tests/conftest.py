"""Shared helpers: build trace stores and eval files inside a pytester directory."""

from __future__ import annotations

import contextlib
import gc
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.testing.fake_openai import FakeOpenAI, Reply

# Many tests start pytest again (xdist workers, subprocesses). Each start compiles the plugin's ~130 modules for
# pytest's assertion rewriting, and openai and the Agents SDK when the venv holds no bytecode, unless bytecode
# can be cached: PYTHONDONTWRITEBYTECODE=1 (set on some CI machines) forbids that. The suite caches it outside
# the work tree instead, for every process it starts.
PYCACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pytest-agentloop" / "pycache"
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.setdefault("PYTHONPYCACHEPREFIX", str(PYCACHE))
# pytester's projects are not cached (see _pytester_writes_no_bytecode): each is run once from a fresh folder,
# and a test that rewrites a file within the second, at the same size, would run the stale bytecode.
TEMP_MIRROR = PYCACHE / Path(tempfile.gettempdir()).resolve().relative_to(Path(tempfile.gettempdir()).anchor)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Drop what earlier runs' subprocesses cached for pytester's temporary folders; keep every source tree's."""
    if not hasattr(session.config, "workerinput"):
        shutil.rmtree(TEMP_MIRROR, ignore_errors=True)


# pytester forgets the modules each in-process run imports, so a module the plugin loads lazily is imported
# again by every run: jsonschema (record and span checks) alone costs a third of a second each time. These are
# loaded before the first test, before pytester's snapshots; the openai client imports each API's module lazily,
# and httpx maps httpcore's exception classes once: they must outlive pytester's runs.
PRELOAD = (
    "httpcore",
    "jsonschema",
    "openai.resources.chat",
    "openai.resources.responses",
    "pytest_agentloop.judge.client",
    "pytest_agentloop.judge.review",
)


def pytest_configure(config: pytest.Config) -> None:
    """Load PRELOAD in each process that runs tests; an xdist controller runs none and starts its workers sooner."""
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return
    for name in PRELOAD:
        importlib.import_module(name)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze the heap built so far (pytest, openai, the test modules) out of the garbage collector's reach.

    pytest collects garbage when each in-process session ends (the CLI runs pytest.main in-process); with
    openai's types loaded, a full collection takes half a second, and nothing imported up to here is garbage.
    """
    gc.freeze()


REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "evals"

TRACE_IDS = {f"trace-{i:02d}": f"{i:02d}" + "ab" * 15 for i in range(1, 10)}

CONTRACT_ARTIFACTS = {
    "summary_answer.md": "Runway is 11 months.\n",
    "investment_memo.md": "Memo.\n",
    "risk_register.json": json.dumps([{"id": "R1", "evidence": ["financials/p_and_l.csv"]}]),
    "open_questions.md": "1. Cash balance?\n",
    "citations.json": json.dumps([{"claim_id": "C1", "claim": "Runway", "sources": ["financials/p_and_l.csv"]}]),
    "evidence_table.csv": "claim_id,claim,sources\nC1,Runway,financials/p_and_l.csv\n",
}


def write_run(store: Path, label: str, answer: str, artifacts: dict[str, str] | None = None) -> Path:
    """Write one recorded run into the store at ``store``."""
    run = store / "runs" / label
    run.mkdir(parents=True, exist_ok=True)
    record = {
        "format": 1,
        "trace_id": TRACE_IDS[label],
        "label": label,
        "question": f"question of {label}?",
        "harness_version": "v001",
        "model": None,
        "created": "2026-01-01T00:00:00Z",
        "provenance": {"source": "tests"},
    }
    (run / "record.json").write_text(json.dumps(record))
    (run / "answer.md").write_text(answer, encoding="utf-8")
    if artifacts is not None:
        (run / "artifacts").mkdir(exist_ok=True)
        for name, text in artifacts.items():
            (run / "artifacts" / name).write_text(text, encoding="utf-8")
    return run


def write_dataroom(root: Path, files: tuple[str, ...] = ("financials/p_and_l.csv",)) -> Path:
    """A dataroom with the given files, each holding a line of text."""
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")
    return root


INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


@pytest.fixture(autouse=True)
def _hermetic(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reaches a real model by accident: model variables are cleared unless a test is marked live_model."""
    if request.node.get_closest_marker("live_model") is None:
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTLOOP_JUDGE_MODEL", "GITHUB_STEP_SUMMARY"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _quiet_asyncio(request: pytest.FixtureRequest) -> None:
    """Give every pytester project the ini line pytest-asyncio warns without."""
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester").makeini(INI)


@pytest.fixture(autouse=True)
def _frozen_heap(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a pytester test, collect its garbage and freeze what survives (see pytest_collection_finish).

    pytest collects garbage twice at the end of each in-process run; frozen, the objects earlier tests left
    (modules they imported, caches) are not traversed again by every later run's collections.
    """
    yield
    if "pytester" in request.fixturenames:
        gc.collect()
        gc.freeze()


@pytest.fixture(autouse=True)
def _pytester_writes_no_bytecode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test's in-process pytest runs cache no bytecode for its pytester project (nor what they import anew).

    Everything else is cached: the test modules pytest rewrites while collecting (seconds a worker otherwise)
    and what tests import.
    """
    if "pytester" in request.fixturenames:
        monkeypatch.setattr(sys, "dont_write_bytecode", True)


@pytest.fixture
def store(pytester: pytest.Pytester) -> Path:
    """A trace store with trace-01 (answer about runway, six artifacts) in the pytester dir."""
    root = pytester.path / "traces"
    write_run(root, "trace-01", "Burn is $2.9M a month; runway is 11 months.", dict(CONTRACT_ARTIFACTS))
    write_dataroom(pytester.path / "dataroom")
    return root


EvalWriter = Callable[..., Path]


@pytest.fixture
def eval_file(pytester: pytest.Pytester, store: Path) -> EvalWriter:
    """Write ``<name>.eval.yaml`` with the given text (dedented) beside the store."""

    def write(text: str, name: str = "suite") -> Path:
        return pytester.makefile(".eval.yaml", **{name: text})

    return write


@pytest.fixture
def example_copy(pytester: pytest.Pytester) -> Path:
    """A copy of the bundled example inside the pytester directory."""
    target = pytester.path / "evals"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A real HTTP server on 127.0.0.1 speaking the OpenAI API, scripted per test."""
    with FakeOpenAI() as server:
        yield server


SECRET_KEY = "test-key-agentloop-SECRET-0123456789abcdef"


@pytest.fixture
def judge_env(monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI) -> list[str]:
    """A judge key in the environment and options pointing the judge at the fake server."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("AGENTLOOP_JUDGE_MODEL", raising=False)
    return [f"--agentloop-judge-base-url={fake_openai.base_url}", "--agentloop-judge-model=judge-1"]


def verdict_reply(passed: bool = True, score: float = 1.0, reason: str = "fine", **kwargs: Any) -> Reply:
    """A judge answer as the fake server sends it."""
    return Reply(text=json.dumps({"pass": passed, "score": score, "reason": reason}), **kwargs)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The ``agentloop`` command run in this process from ``cwd``, its exit code and output as a subprocess's.

    A subprocess would spend seconds importing what this process has loaded; tests/test_cli.py::test_help
    runs the command as a process once. Conftest modules the command's pytest session imports from the
    project are dropped after, as pytester drops what its in-process runs import.
    """
    from pytest_agentloop.cli import main

    out, err = io.StringIO(), io.StringIO()
    modules, path, here = dict(sys.modules), list(sys.path), Path.cwd()
    try:
        os.chdir(cwd or here)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exit:  # argparse's usage errors
                code = exit.code if isinstance(exit.code, int) else 2
    finally:
        os.chdir(here)
        _restore_modules(modules, (cwd or here).resolve())
        sys.path[:] = path
    return subprocess.CompletedProcess(["agentloop", *args], code, out.getvalue(), err.getvalue())


def _restore_modules(saved: dict[str, Any], project: Path) -> None:
    """Put back modules the run replaced (a project's ``conftest``) and forget those it loaded from ``project``."""
    for name in [name for name in sys.modules if name not in saved]:
        where = getattr(sys.modules[name], "__file__", None) or ""
        if where and Path(where).resolve().is_relative_to(project):
            del sys.modules[name]
    for name, module in saved.items():
        if sys.modules.get(name) is not module:
            sys.modules[name] = module


# --- The outside project and the system tier -------------------------------------------------------------

# tests/outside/ holds fixture projects (their own evals and conftests); they are copied and run, never collected.
collect_ignore = ["outside"]

OUTSIDE = Path(__file__).resolve().parent / "outside"


@pytest.fixture
def support_project(pytester: pytest.Pytester) -> Path:
    """A copy of the second-domain suite (a customer-support agent) as the pytester project."""
    shutil.copytree(OUTSIDE / "support", pytester.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".agentloop"))
    return pytester.path


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add up the time of tests marked ``system`` (heavy real tools), to print it apart."""
    if "system" in report.keywords:
        _SYSTEM_TIME[report.when] = _SYSTEM_TIME.get(report.when, 0.0) + report.duration
        if report.when == "call":
            _SYSTEM_TIME["count"] = _SYSTEM_TIME.get("count", 0.0) + 1


_SYSTEM_TIME: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line with the system tier's own time (setup, call and teardown of every ``system`` test)."""
    count = int(_SYSTEM_TIME.get("count", 0))
    if count:
        total = sum(v for k, v in _SYSTEM_TIME.items() if k != "count")
        terminalreporter.write_line(
            f"system tier: {count} tests, {total:.1f}s (setup, call and teardown, summed over tests)"
        )


def tool_cache() -> Path:
    """Where system tests keep tools they build or download: ``$AGENTLOOP_CACHE`` or ~/.cache/pytest-agentloop."""
    import os

    root = Path(os.environ.get("AGENTLOOP_CACHE") or Path.home() / ".cache" / "pytest-agentloop")
    root.mkdir(parents=True, exist_ok=True)
    return root
