"""`tool_policy.workdir_seed` and `artifact_ignore`: a coding agent's run starts on a copy of a repository, and
its artifacts are what it added or changed, not the whole copy."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.agent.builtin import build_agent
from pytest_agentloop.agent.capture import CaptureOptions, capture_run
from pytest_agentloop.agent.errors import AgentConfigError
from pytest_agentloop.agent.harness import load_harness
from pytest_agentloop.agent.workdir import ignored, same_bytes
from pytest_agentloop.cli import main
from pytest_agentloop.formats import problem
from pytest_agentloop.testing.fake_openai import AgentScript, FakeOpenAI, Reply, ToolCall
from pytest_agentloop.traces.quickcheck import record_fits
from pytest_agentloop.traces.store import TraceStore

from conftest import SECRET_KEY

CALC = "def add(a, b):\n    return a - b\n"
TOOLS = '''
from agents import RunContextWrapper

from pytest_agentloop.agent.builtin import AgentContext


def replace_in(ctx: RunContextWrapper[AgentContext], path: str, old: str, new: str) -> str:
    """Replace text in a file of the working copy."""
    target = ctx.context.workdir / path
    target.write_text(target.read_text().replace(old, new))
    return "done"
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A harness folder holding a repository snapshot in repo/, with a cache, a symlink and a secret beside it."""
    folder = tmp_path / "agent"
    repo = folder / "repo"
    (repo / "pkg" / "__pycache__").mkdir(parents=True)
    (repo / "calc.py").write_text(CALC)
    (repo / "util.py").write_text("HELP = 1\n")
    (repo / "old.py").write_text("OLD = 1\n")
    (repo / "pkg" / "core.py").write_text("CORE = 1\n")
    (repo / "pkg" / "__pycache__" / "core.cpython-311.pyc").write_bytes(b"\x00cached")
    (tmp_path / "secret.txt").write_text("not for the agent")
    os.symlink(tmp_path / "secret.txt", repo / "secret_link.txt")
    os.symlink(tmp_path, repo / "outside_link")
    (folder / "seedtools_for_test.py").write_text(TOOLS)
    write_harness(folder, "tool_policy: {workdir_seed: repo}\n")
    return folder


def write_harness(folder: Path, policy: str) -> Path:
    path = folder / "harness.yaml"
    path.write_text(
        "version: v1\nmodel_settings: {model: gpt-4.1-mini}\ntools: [seedtools_for_test:replace_in]\n" + policy
    )
    return path


def capture(harness_path: Path, agent: Any, store: Path, label: str = "run") -> Any:
    harness = load_harness(harness_path)
    options = CaptureOptions(harness=harness)
    return asyncio.run(
        capture_run(agent or build_agent(harness), "fix calc", store=store, label=label, options=options)
    )


def artifacts_of(run_dir: Path) -> set[str]:
    root = run_dir / "artifacts"
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_a_seeded_run_keeps_only_what_it_added_or_changed(project: Path, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def coder(question: str, *, workdir: Path, **_: Any) -> str:
        seen["files"] = sorted(p.relative_to(workdir).as_posix() for p in workdir.rglob("*") if p.is_file())
        seen["links"] = [p.name for p in workdir.rglob("*") if p.is_symlink()]
        (workdir / "calc.py").write_text(CALC.replace("a - b", "a + b"))
        (workdir / "util.py").write_text("HELP = 1\n")  # rewritten with the same bytes: not a change
        (workdir / "test_calc.py").write_text("from calc import add\n")
        (workdir / "old.py").unlink()
        (workdir / "__pycache__").mkdir()
        (workdir / "__pycache__" / "x.pyc").write_bytes(b"\x00")
        (workdir / ".pytest_cache" / "v").mkdir(parents=True)
        (workdir / ".pytest_cache" / "v" / "lastfailed").write_text("{}")
        return "fixed add"

    run = capture(project / "harness.yaml", coder, tmp_path / "store")
    assert run.ok, run.error
    assert seen["links"] == []  # the seed's symlinks are neither followed nor copied
    assert seen["files"] == ["calc.py", "old.py", "pkg/__pycache__/core.cpython-311.pyc", "pkg/core.py", "util.py"]
    assert artifacts_of(run.run_dir) == {"calc.py", "test_calc.py"}
    assert (run.run_dir / "artifacts" / "calc.py").read_text() == CALC.replace("a - b", "a + b")
    record = json.loads((run.run_dir / "record.json").read_text())
    assert record["workdir_seed"] == "repo" and record["seed_deleted"] == ["old.py"]
    assert record_fits()(record) and problem("record", record) is None
    assert TraceStore(tmp_path / "store").get("run").answer == "fixed add"


def test_the_builtin_runners_tools_see_the_seed(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    edit = ToolCall("replace_in", {"path": "calc.py", "old": "a - b", "new": "a + b"})
    fake_openai.set_responder(AgentScript({"fix calc": [Reply(tool_calls=(edit,)), Reply(text="add adds now")]}))
    run = capture(project / "harness.yaml", None, tmp_path / "store")
    assert run.ok, run.error
    assert len(fake_openai.requests) == 2
    assert artifacts_of(run.run_dir) == {"calc.py"}  # the tool read the seed's calc.py in ctx.context.workdir
    assert (run.run_dir / "artifacts" / "calc.py").read_text() == CALC.replace("a - b", "a + b")
    record = json.loads((run.run_dir / "record.json").read_text())
    assert record["workdir_seed"] == "repo" and record["seed_deleted"] == []


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("tool_policy: {workdir_seed: ../elsewhere}", r"workdir_seed: '\.\./elsewhere' resolves to .*outside"),
        ("tool_policy: {workdir_seed: repo/outside_link}", r"workdir_seed: 'repo/outside_link' resolves to .*outside"),
        ("tool_policy: {workdir_seed: nosuch}", r"workdir_seed: 'nosuch' does not exist"),
        ("tool_policy: {workdir_seed: repo/calc.py}", r"workdir_seed: 'repo/calc.py' is not a folder"),
        ("tool_policy: {workdir_seed: 3}", r"workdir_seed: expected a folder path, got 3"),
        ("tool_policy: {artifact_ignore: '*.pyc'}", r"artifact_ignore: expected a list of glob patterns"),
    ],
)
def test_a_seed_that_cannot_be_used_is_named_when_the_harness_loads(project: Path, policy: str, message: str) -> None:
    (project.parent / "elsewhere").mkdir()  # it exists: the refusal is for being outside the harness's folder
    path = write_harness(project, policy + "\n")
    with pytest.raises(AgentConfigError, match=message) as info:
        load_harness(path)
    assert info.value.path == path.resolve() and "tool_policy." in str(info.value)
    assert str(info.value).startswith(f"{path.resolve()}: tool_policy.")


def test_record_refuses_a_bad_seed_before_any_run_starts(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI, capsys: Any
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    path = write_harness(project, "tool_policy: {workdir_seed: ../x}\n")
    (tmp_path / "questions.yaml").write_text("- {label: one, question: fix calc}\n")
    store = tmp_path / "store"
    args = ["record", str(tmp_path / "questions.yaml"), "-o", str(store), "--agent", "harness"]
    assert main([*args, "--harness", str(path)]) == 2
    err = capsys.readouterr().err
    assert "harness.yaml" in err and "tool_policy.workdir_seed: '../x'" in err
    assert fake_openai.requests == [] and not (store / "runs" / "one").exists()


def test_artifact_ignore_without_a_seed_and_no_ignoring_by_default(tmp_path: Path) -> None:
    async def writer(question: str, *, workdir: Path, **_: Any) -> str:
        for name in ("out.md", "build/out/a.bin", "src/build/keep.txt", "debug.log", "__pycache__/x.pyc"):
            (workdir / name).parent.mkdir(parents=True, exist_ok=True)
            (workdir / name).write_text(name)
        return "ok"

    folder = tmp_path / "agent"
    folder.mkdir()
    plain = capture(write_harness(folder, ""), writer, tmp_path / "store", "plain")
    assert artifacts_of(plain.run_dir) == {
        "out.md",
        "build/out/a.bin",
        "src/build/keep.txt",
        "debug.log",
        "__pycache__/x.pyc",
    }
    assert "seed_deleted" not in json.loads((plain.run_dir / "record.json").read_text())
    ignoring = write_harness(folder, "tool_policy: {artifact_ignore: ['*.log', /build/]}\n")
    run = capture(ignoring, writer, tmp_path / "store", "ignoring")
    assert artifacts_of(run.run_dir) == {"out.md", "src/build/keep.txt", "__pycache__/x.pyc"}
    record = json.loads((run.run_dir / "record.json").read_text())
    assert "workdir_seed" not in record and "seed_deleted" not in record


@pytest.mark.parametrize(
    ("path", "patterns", "expected"),
    [
        ("a/__pycache__/b/c.pyc", ["__pycache__"], True),
        ("__pycache__", ["__pycache__"], True),
        ("src/mod.pyc", ["*.pyc"], True),
        ("src/mod.py", ["*.pyc"], False),
        ("docs/build/x", ["/build"], False),
        ("build/x", ["/build"], True),
        ("docs/build/x", ["build/"], True),
        ("docs/gen/a.md", ["docs/gen"], True),
        ("docs/general.md", ["docs/gen"], False),
        (".git/objects/ab", [".git"], True),
        ("x.gitignore", [".git"], False),
    ],
)
def test_ignore_patterns_match_as_gitignore_users_expect(path: str, patterns: list[str], expected: bool) -> None:
    assert ignored(path, patterns) is expected


def test_files_are_compared_by_size_then_bytes(tmp_path: Path) -> None:
    one, other = tmp_path / "one", tmp_path / "other"
    one.write_bytes(b"x" * 3_000_000)
    other.write_bytes(b"x" * 3_000_000)
    assert same_bytes(one, other)
    other.write_bytes(b"x" * 2_999_999 + b"y")
    assert not same_bytes(one, other)
    other.write_bytes(b"x" * 2_999_999)
    assert not same_bytes(one, other)


def test_the_seed_fields_of_a_record_are_checked_quickly_and_fully() -> None:
    base = json.loads((Path(__file__).parent.parent / "evals/diligence/traces/runs/trace-01/record.json").read_text())
    good = {**base, "workdir_seed": "repo/", "seed_deleted": ["old.py", "pkg/gone.py"]}
    assert record_fits()(good) and problem("record", good) is None
    for bad in ({"seed_deleted": [1]}, {"seed_deleted": "old.py"}, {"workdir_seed": None}):
        data = {**base, **bad}
        assert not record_fits()(data) and problem("record", data) is not None
