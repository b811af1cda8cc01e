"""A second domain, as an outside project would write it: a customer-support agent's suite (tests/outside/support).

The fast tests run the suite with pytester; the ``system`` tests install the plugin into a fresh project
beside this checkout the way the README's "In your own project" says (uv, and pip), core and core+[halo],
and run the suite and the handoff there.

The artifact contract and custom types from a sub-folder conftest (in pytest and in the CLI) are checked here too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TODAY = ("evals/support/replies.eval.yaml", "evals/support/tickets.eval.yaml")


def _edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_replies_and_tickets_pass_with_the_authors_labels(pytester, support_project, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = pytester.runpytest(*TODAY)
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["6 evals: 6 passed", "rubric verdicts (replay mode): 3 human"])


def test_a_regressed_run_fails_its_literal_and_custom_checks(pytester, support_project, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    run = support_project / "evals" / "support" / "traces" / "runs" / "sup-03"
    (run / "answer.md").write_text("Your address on file is 12 Harbour Road. Try resetting your password.\n")
    _edit_json(run / "artifacts" / "ticket.json", priority="P3", escalated=False)
    result = pytester.runpytest(*TODAY)
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*FAILED evals/support/replies.eval.yaml:*: not-regex",
            '*expected: ticket.json has {"category": "security", "escalated": true, "priority": "P1"}',
            '*seen:     differs: {"priority": "P3", "escalated": false}',
        ]
    )


def test_evidence_handoff_carries_the_support_feedback_and_harness(pytester, support_project, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = pytester.runpytest(*TODAY, "--agentloop-handoff=out/handoff.md")
    assert result.ret == 0
    lines = [json.loads(line) for line in (support_project / "out" / "handoff.context.jsonl").read_text().splitlines()]
    names = {line["name"] for line in lines}
    assert {"HARNESS_CONFIG", "HUMAN_FEEDBACK", "EVAL_RESULT", "agent.support-agent"} <= names
    assert "**Harness version:** `v003`" in (support_project / "out" / "handoff.md").read_text()


def test_the_core_imports_neither_halo_nor_the_agents_sdk() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", IMPORTS_NOTHING_HEAVY], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "heavy modules at import: []" in done.stdout


def test_custom_type_resolves_from_the_project_root(pytester, support_project, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (support_project / "evals" / "support" / "contract.eval.yaml").unlink()
    result = pytester.runpytest("evals/")
    result.assert_outcomes(passed=6)


def test_cli_validates_files_with_a_custom_type(pytester, support_project, monkeypatch) -> None:
    from pytest_agentloop.cli import main

    monkeypatch.chdir(support_project)
    assert main(["validate", "evals/support/tickets.eval.yaml"]) == 0


def test_declared_artifact_contract_holds(pytester, support_project, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = pytester.runpytest("evals/support/contract.eval.yaml")
    result.assert_outcomes(passed=3)


def test_declared_artifact_contract_names_what_broke(pytester, support_project, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    artifacts = support_project / "evals" / "support" / "traces" / "runs" / "sup-02" / "artifacts"
    (artifacts / "citations.json").write_text(json.dumps({"sources": ["shipping/lost-parcel.md", "../harness.yaml"]}))
    (artifacts / "ticket.json").write_text(json.dumps([{"ticket_id": "T-2210"}]))
    result = pytester.runpytest("evals/support/contract.eval.yaml")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "  FAILED evals/support/contract.eval.yaml:16: json-shape on ticket.json",
            "      seen:     top level is a list, not an object",
            "  FAILED evals/support/contract.eval.yaml:19: sources-resolve",
            "      seen:     citations.json: '../harness.yaml' escapes the sources root (not opened)",
        ]
    )


# --- system tier: install the plugin into a fresh project, the documented ways ---------------------------

HALO_PIP_DEPS = (  # halo-engine 0.3.5's own requirements, less its ripgrep==15.1.0 pin (README: In your own project)
    "deno==2.7.14",
    "inference-catalyst-tracing[openai-agents]==0.1.10",
    "numpy==2.2.6",
    "pandas==2.2.3",
    "rich==15.0.0",
    "typer==0.25.0",
    "openai==2.32.0",
    "pydantic==2.13.3",
)
IMPORTS_NOTHING_HEAVY = (
    "import sys, pytest_agentloop.plugin, pytest_agentloop.cli; "
    "heavy = sorted(m for m in ('engine', 'agents') if m in sys.modules); "
    "print('heavy modules at import:', heavy); sys.exit(1 if heavy else 0)"
)


class Project:
    """A fresh project folder beside the checkout, with its own environment, driven by subprocesses."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env, self.timings = root, env, {}

    def run(self, *cmd: str, label: str = "", timeout: float = 1200) -> str:
        """Run ``cmd`` in the project; its output, or a failure showing it."""
        import subprocess
        import time

        started = time.monotonic()
        done = subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout)
        if label:
            self.timings[label] = time.monotonic() - started
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}:\n{output[-4000:]}"
        return output


def _fresh_project(tmp_path: Path, name: str) -> Project:
    import os
    import shutil

    from conftest import OUTSIDE

    root = tmp_path / name
    shutil.copytree(OUTSIDE / "support", root, ignore=shutil.ignore_patterns(".agentloop", ".venv"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_", "PYTEST_", "OPENAI_"))}
    env.pop("AGENTLOOP_JUDGE_MODEL", None)
    return Project(root, env)


def _uv() -> list[str]:
    import shutil
    import sys

    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def _suite_and_handoff(project: Project, pytest_cmd: list[str], fake_openai, *, halo: bool) -> None:
    """The suite passes; with a key, the handoff is HALO's (with [halo]) or names the missing extra (core)."""
    from test_handoff import REPORT, halo_script

    which = "[halo]" if halo else "core"
    out = project.run(*pytest_cmd, "evals/support/", "-p", "no:cacheprovider", label=f"suite ({which})")
    assert "9 passed" in out
    fake_openai.set_responder(halo_script(REPORT))
    project.env["OPENAI_API_KEY"] = "test-key-outside-project"
    options = [f"--agentloop-judge-base-url={fake_openai.base_url}", "--agentloop-judge-model=judge-1"]
    out = project.run(*pytest_cmd, *TODAY, "--agentloop-handoff=out/handoff.md", *options, label=f"handoff ({which})")
    del project.env["OPENAI_API_KEY"]
    handoff = (project.root / "out" / "handoff.md").read_text()
    if halo:
        assert "handoff (HALO): " in out and "**Diagnosis:** HALO (judge-1)" in handoff
    else:
        expected = "HALO is not installed (the [halo] extra of pytest-agentloop); install it with pip install"
        assert f"note: {expected}" in out and expected in handoff
        assert "handoff (evidence only): " in out


@pytest.mark.system
def test_uv_project_installs_core_then_halo(tmp_path, fake_openai, monkeypatch, record_property) -> None:
    from conftest import REPO

    project = _fresh_project(tmp_path, "support-uv")
    uv = _uv()
    project.run(*uv, "add", "--no-progress", str(REPO), label="uv add (core)")
    python = str(project.root / ".venv" / "bin" / "python")
    project.run(python, "-c", IMPORTS_NOTHING_HEAVY)
    _suite_and_handoff(project, [*uv, "run", "--no-sync", "pytest"], fake_openai, halo=False)
    project.run(*uv, "add", "--no-progress", f"pytest-agentloop[halo] @ {REPO.as_uri()}", label="uv add [halo]")
    _suite_and_handoff(project, [*uv, "run", "--no-sync", "pytest"], fake_openai, halo=True)
    for label, seconds in project.timings.items():
        record_property(label, f"{seconds:.1f}s")
    print("timings:", {k: round(v, 1) for k, v in project.timings.items()})


@pytest.mark.system
def test_pip_project_installs_core_then_halo(tmp_path, fake_openai, record_property) -> None:
    import sys

    from conftest import REPO

    project = _fresh_project(tmp_path, "support-pip")
    base_python = getattr(sys, "_base_executable", sys.executable)
    project.run(base_python, "-m", "venv", "venv", label="venv")
    pip = [str(project.root / "venv" / "bin" / "python"), "-m", "pip", "install", "-q"]
    project.run(*pip, str(REPO), label="pip install (core)")
    project.run(str(project.root / "venv" / "bin" / "python"), "-c", IMPORTS_NOTHING_HEAVY)
    pytest_cmd = [str(project.root / "venv" / "bin" / "pytest")]
    _suite_and_handoff(project, pytest_cmd, fake_openai, halo=False)
    project.run(*pip, f"pytest-agentloop[agents] @ {REPO.as_uri()}", "ripgrep==14.1.0", label="pip [agents]+ripgrep")
    project.run(*pip, "--no-deps", "halo-engine==0.3.5", label="pip halo-engine --no-deps")
    project.run(*pip, *HALO_PIP_DEPS, label="pip halo-engine's deps")
    _suite_and_handoff(project, pytest_cmd, fake_openai, halo=True)
    for label, seconds in project.timings.items():
        record_property(label, f"{seconds:.1f}s")
    print("timings:", {k: round(v, 1) for k, v in project.timings.items()})
