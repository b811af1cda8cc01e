"""`agentloop record`: questions in, runs in a trace store out; the evals then run on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from agent_scripts import analyst_steps

from pytest_agentloop.cli import main
from pytest_agentloop.testing.fake_openai import AgentScript, FakeOpenAI, Reply

from conftest import EXAMPLE, INI, SECRET_KEY, run_cli

HARNESS = str(EXAMPLE / "diligence" / "harness.yaml")

QUESTIONS = """\
- label: runway
  question: What do runway and burn say?
- label: chat
  messages:
    - {role: user, content: 'Which customers matter most?'}
  metadata: {topic: concentration}
"""


@pytest.fixture
def agent_env(monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    return fake_openai


def record(tmp_path: Path, *extra: str) -> int:
    return main(
        [
            "record",
            str(tmp_path / "questions.yaml"),
            "-o",
            str(tmp_path / "store"),
            "--agent",
            "harness",
            "--harness",
            HARNESS,
            *extra,
        ]
    )


def test_record_writes_one_run_per_question(
    agent_env: FakeOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "questions.yaml").write_text(QUESTIONS)
    agent_env.set_responder(
        AgentScript({"runway": analyst_steps("runway answer"), "customers": analyst_steps("customer answer")})
    )
    assert record(tmp_path) == 0
    out, err = capsys.readouterr()
    assert "agentloop record: 2/2 runs, 0 failed" in err
    assert "wrote 2 runs" in out
    runs = tmp_path / "store" / "runs"
    assert (runs / "runway" / "answer.md").read_text() == "runway answer"
    chat = json.loads((runs / "chat" / "record.json").read_text())
    assert chat["question"] == "Which customers matter most?" and chat["messages"][0]["role"] == "user"
    assert chat["metadata"] == {"topic": "concentration"}
    assert SECRET_KEY not in "".join(p.read_text() for p in runs.rglob("*") if p.is_file())


def test_a_second_record_needs_replace(
    agent_env: FakeOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "questions.yaml").write_text(QUESTIONS)
    agent_env.set_responder(AgentScript({"runway": analyst_steps("one"), "customers": analyst_steps("two")}))
    assert record(tmp_path) == 0
    assert record(tmp_path) == 2
    assert "runs already recorded: runway, chat; pass --replace" in capsys.readouterr().err
    assert record(tmp_path, "--replace") == 0


def test_a_failed_run_is_kept_and_fails_the_command(
    agent_env: FakeOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "questions.yaml").write_text(QUESTIONS)
    agent_env.set_responder(AgentScript({"runway": analyst_steps("ok"), "customers": [Reply(text="x", delay=1.0)]}))
    assert record(tmp_path, "--timeout", "0.3") == 1
    out = capsys.readouterr().out
    assert "chat" in out and "FAILED: timed out after 0.3s" in out
    failed = json.loads((tmp_path / "store" / "runs" / "chat" / "record.json").read_text())
    assert failed["status"] == "failed" and not (tmp_path / "store" / "runs" / "chat" / "answer.md").exists()


def test_record_without_an_agent_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "questions.yaml").write_text(QUESTIONS)
    (tmp_path / "pytest.ini").write_text("[pytest]\nagentloop_agent_key_env = none\n")
    assert main(["record", "questions.yaml"]) == 2
    assert "agentloop record: error: no agent: pass --agent" in capsys.readouterr().err
    assert main(["record", "questions.yaml", "--agent", "nosuch.module:run"]) == 2
    assert "cannot be loaded" in capsys.readouterr().err


def test_record_without_the_agents_key_is_a_usage_error_and_writes_nothing(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    (tmp_path / "questions.yaml").write_text(QUESTIONS)
    assert record(tmp_path) == 2  # no run starts: none would be written as failed, none would need --replace
    err = capsys.readouterr().err
    assert err.startswith("agentloop record: error: no key for the agent's endpoint in $OPENAI_API_KEY")
    assert "agentloop_agent_key_env = none" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "store").exists() and fake_openai.requests == []
    (tmp_path / "pytest.ini").write_text("[pytest]\nagentloop_agent_key_env = MY_AGENT_KEY\n")
    assert record(tmp_path) == 2
    assert "in $MY_AGENT_KEY" in capsys.readouterr().err


def test_the_evals_run_on_recorded_runs(pytester: pytest.Pytester, agent_env: FakeOpenAI) -> None:
    pytester.makepyfile(
        myagent="""
        async def run(question, *, metadata, workdir, harness):
            (workdir / "summary_answer.md").write_text("Runway is 11 months.")
            return "Runway is 11 months; burn $2.9M."
        """
    )
    pytester.makefile(".yaml", questions="- {label: trace-01, question: 'Runway?'}\n")
    pytester.makefile(
        ".eval.yaml",
        suite="""
        agentloop: 1
        evals:
          - id: runway
            title: Names the runway
            trace: trace-01
            assert:
              - {type: icontains, value: 11 months}
              - {type: artifacts-exist, value: [summary_answer.md]}
        """,
    )
    monkey = pytest.MonkeyPatch()
    monkey.chdir(pytester.path)
    try:
        assert main(["record", "questions.yaml", "--agent", "myagent:run"]) == 0
    finally:
        monkey.undo()
    result = pytester.runpytest("suite.eval.yaml")
    result.assert_outcomes(passed=1)


def test_record_takes_the_questions_of_eval_files(pytester: pytest.Pytester, example_copy: Path) -> None:
    pytester.makepyfile(myagent="async def run(question, **_):\n    return 'fresh: ' + question\n")
    pytester.makeini(INI + "agentloop_agent_key_env = none\n")
    monkey = pytest.MonkeyPatch()
    monkey.chdir(pytester.path)
    try:
        assert main(["record", "evals/diligence", "-o", "fresh", "--agent", "myagent:run"]) == 0
    finally:
        monkey.undo()
    runs = sorted(p.name for p in (pytester.path / "fresh" / "runs").iterdir())
    assert runs == ["trace-01", "trace-02", "trace-03", "trace-04", "trace-05"]  # one per distinct question
    answer = (pytester.path / "fresh" / "runs" / "trace-01" / "answer.md").read_text()
    assert answer == "fresh: What do runway and burn tell us about near-term financing risk?"


def test_record_with_a_rate_stays_under_the_endpoint_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    questions = [f"- label: q{n}\n  question: question {n}?\n" for n in range(6)]
    (tmp_path / "questions.yaml").write_text("".join(questions))
    monkeypatch.chdir(tmp_path)  # the rate budget lives under ./.agentloop/rate, as pytest's does
    with FakeOpenAI(rpm=240) as server:  # a burst of 4 calls, then 4 a second: 6 runs starting at once pass it
        server.set_responder(AgentScript({f"question {n}?": [Reply(text=f"answer {n}")] for n in range(6)}))
        monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        assert record(tmp_path, "--rate", "240") == 0
        admitted, rejected = server.rate_limited
    assert rejected == [] and len(admitted) == 6
    assert (tmp_path / ".agentloop" / "rate").is_dir()
    assert record(tmp_path, "--replace", "--rate", "fast") == 2
    assert "agentloop record: error: --rate: expected RPM or RPM,TPM" in capsys.readouterr().err


PROJECT_AGENT = """\
async def run(question, *, metadata, workdir, harness):
    (workdir / "ticket.txt").write_text("ticket REF-123")
    return "Opened ticket REF-123."
"""


def _project(pytester: pytest.Pytester, ini: str = "") -> None:
    """A project whose agent and redaction hook live in its own package (not installed, no PYTHONPATH)."""
    pkg = pytester.mkpydir("walkpkg")
    (pkg / "agent.py").write_text(PROJECT_AGENT)
    (pkg / "redact.py").write_text("def scrub(text):\n    return text.replace('REF-123', '[REDACTED:ticket]')\n")
    pytester.makeini(INI + "agentloop_agent_key_env = none\n" + ini)
    pytester.makefile(".yaml", questions="- {label: ticket, question: 'Open a ticket'}\n")


def test_a_redaction_hook_in_the_project_loads_as_the_agent_does(pytester: pytest.Pytester) -> None:
    _project(pytester)
    result = run_cli("record", "questions.yaml", "--agent", "walkpkg.agent:run", "--redact", "walkpkg.redact:scrub")
    assert result.returncode == 0, result.stderr
    run = pytester.path / "traces" / "runs" / "ticket"
    assert (run / "answer.md").read_text() == "Opened ticket [REDACTED:ticket]."
    assert (run / "artifacts" / "ticket.txt").read_text() == "ticket [REDACTED:ticket]"
    hook = ["-o", "agentloop_agent=walkpkg.agent:run", "-o", "agentloop_redact=walkpkg.redact:scrub"]
    live = pytester.runpytest("--agentloop-live", "--agentloop-judge=off", "--collect-only", *hook)
    live.stdout.no_fnmatch_line("*cannot be loaded*")  # pytest loads it from the rootdir too
    assert live.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_record_finds_the_ini_upwards_and_imports_from_the_rootdir(pytester: pytest.Pytester) -> None:
    _project(pytester, "agentloop_agent = walkpkg.agent:run\nagentloop_redact = walkpkg.redact:scrub\n")
    evals = pytester.mkdir("evals")
    result = run_cli("record", "../questions.yaml", "-o", "../recorded", cwd=evals)
    assert result.returncode == 0, result.stderr
    answer = pytester.path / "recorded" / "runs" / "ticket" / "answer.md"
    assert answer.read_text() == "Opened ticket [REDACTED:ticket]."


def test_an_eval_on_a_failed_recorded_run_is_an_error_quoting_its_error(pytester: pytest.Pytester) -> None:
    from conftest import write_run

    run = write_run(pytester.path / "traces", "trace-01", "unused")
    (run / "answer.md").unlink()
    record = json.loads((run / "record.json").read_text())
    record.update(status="failed", error="RuntimeError: upstream rejected key [REDACTED:api-key]")
    (run / "record.json").write_text(json.dumps(record))
    pytester.makefile(
        ".eval.yaml", suite="evals: [{id: a, title: A, trace: trace-01, assert: [{type: icontains, value: x}]}]"
    )
    result = pytester.runpytest("--agentloop-judge=off")
    result.assert_outcomes(errors=1)
    failed = (
        "*eval a: traces/runs/trace-01/record.json: run 'trace-01' failed when it was recorded, so it has no answer:"
    )
    result.stdout.fnmatch_lines(
        [f'{failed} "RuntimeError: upstream rejected key [[]REDACTED:api-key]"; record it again*']
    )
    result.stdout.no_fnmatch_line("*no answer.md*")


def _recorded(store: Path, label: str, trace_id: str, metadata: dict[str, str]) -> None:
    run = store / "runs" / label
    run.mkdir(parents=True)
    record = {
        "trace_id": trace_id,
        "label": label,
        "question": "Fix the failing test.",
        "harness_version": "v1",
        "model": None,
        "created": "2026-12-01T10:00:00Z",
        "provenance": "synthetic",
        "metadata": metadata,
    }
    (run / "record.json").write_text(json.dumps(record))
    (run / "answer.md").write_text("fixed")


def test_record_loads_eval_files_as_pytest_does_and_keeps_tasks_apart_by_metadata(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    """The eval files' own assertion types (conftest.py) and the ini's traces folder are honoured; one task asked
    of two repositories (same text, other metadata) is two questions, so two runs."""
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\nagentloop_traces = recorded\n"
        "agentloop_agent_key_env = none\n"
    )
    pytester.makepyfile(myagent="async def run(question, *, metadata, **_):\n    return 'fixed ' + metadata['repo']\n")
    (pytester.path / "evals").mkdir()
    (pytester.path / "evals" / "conftest.py").write_text(
        "from pytest_agentloop.assertions.registry import AssertionType, Outcome\n\n"
        "def pytest_agentloop_assertion_types(config):\n"
        "    return [AssertionType('says-fixed', lambda v, g: Outcome('fixed' in g.text, 'says fixed', g.text),"
        " validate=lambda v: None)]\n"
    )
    (pytester.path / "evals" / "tasks.eval.yaml").write_text(
        "evals:\n"
        "  - {id: calc, title: calc fixed, trace: calc, assert: [{type: says-fixed, value: x}]}\n"
        "  - {id: strings, title: strings fixed, trace: strings, assert: [{type: says-fixed, value: x}]}\n"
    )
    _recorded(pytester.path / "evals" / "recorded", "calc", "a" * 32, {"repo": "calc"})
    _recorded(pytester.path / "evals" / "recorded", "strings", "b" * 32, {"repo": "strings"})
    monkey = pytest.MonkeyPatch()
    monkey.chdir(pytester.path)
    try:
        assert main(["record", "evals", "-o", "fresh", "--agent", "myagent:run"]) == 0, capsys.readouterr().err
    finally:
        monkey.undo()
    fresh = pytester.path / "fresh" / "runs"
    assert {p.name: (p / "answer.md").read_text() for p in fresh.iterdir()} == {
        "calc": "fixed calc",
        "strings": "fixed strings",
    }


def test_the_builtin_redaction_kinds_can_be_chosen(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    """A coding agent's source carries its authors' addresses: ``agentloop_redact_builtin`` may leave e-mail out;
    keys are still replaced and cannot be left out, and a kind that does not exist is an error naming the option."""
    key = SECRET_KEY.replace("test-key", "sk")
    pytester.makepyfile(
        myagent="async def run(question, *, workdir, **_):\n"
        f"    (workdir / 'calc.py').write_text('__author__ = \"dev@example.com\"\\nKEY = \"{key}\"\\n')\n"
        "    return 'done by dev@example.com'\n"
    )
    (pytester.path / "questions.yaml").write_text("- {label: fix, question: Fix it.}\n")
    ini = "[pytest]\nasyncio_default_fixture_loop_scope = function\nagentloop_agent_key_env = none\n"
    monkey = pytest.MonkeyPatch()
    monkey.chdir(pytester.path)
    try:
        pytester.makeini(ini + "agentloop_redact_builtin = api-key bearer\n")
        assert main(["record", "questions.yaml", "-o", "store", "--agent", "myagent:run"]) == 0
        calc = (pytester.path / "store" / "runs" / "fix" / "artifacts" / "calc.py").read_text()
        assert '__author__ = "dev@example.com"' in calc and key not in calc and "[REDACTED:api-key]" in calc
        pytester.makeini(ini + "agentloop_redact_builtin = api-key phone\n")
        assert main(["record", "questions.yaml", "-o", "other", "--agent", "myagent:run"]) == 2
        pytester.makeini(ini + "agentloop_redact_builtin = email\n")
        assert main(["record", "questions.yaml", "-o", "other", "--agent", "myagent:run"]) == 2
    finally:
        monkey.undo()
    err = capsys.readouterr().err
    assert "agentloop_redact_builtin: unknown kind 'phone'; choose from api-key, bearer, email" in err
    assert "API keys and bearer tokens are always redacted" in err
