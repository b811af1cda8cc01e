"""The agentloop command: help, validate, traces, and the conventions every subcommand keeps.

Exit 0 ok, 1 checks failed, 2 usage or input error with one line naming the problem; settings from the
same ini as pytest. test_help runs the command as a subprocess, as a user runs it; the rest run it in this
process (conftest.run_cli), which spares each the seconds a fresh process spends on imports.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLE, run_cli


def _one_line_error(code: int, stderr: str, *words: str) -> None:
    """Exit 2, one line on stderr naming the problem, no traceback."""
    assert code == 2, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for word in words:
        assert word in lines[0], lines[0]


def _failed(result: subprocess.CompletedProcess[str], *words: str) -> None:
    _one_line_error(result.returncode, result.stderr, *words)


def test_help() -> None:
    result = subprocess.run([sys.executable, "-m", "pytest_agentloop.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "validate" in result.stdout and "traces" in result.stdout


def test_validate_good_and_bad(tmp_path: Path) -> None:
    bad = tmp_path / "bad.eval.yaml"
    bad.write_text("evals:\n  - id: x\n    title: T\n  - {id: y, title: Y, trace: t, scoring: sometimes}\n")
    result = run_cli("validate", str(EXAMPLE / "diligence" / "concentration.eval.yaml"), str(bad))
    assert result.returncode == 1
    assert "concentration.eval.yaml: 2 evals ok" in result.stdout
    assert f"{bad}:2: eval 'x': missing required field 'trace'" in result.stderr  # every error of the file
    assert f"{bad}:4: eval 'y', field 'scoring': unknown value 'sometimes'" in result.stderr


def test_validate_runs_every_collection_check_and_shows_every_unknown_trace(pytester: pytest.Pytester, store) -> None:
    pytester.makefile(
        ".eval.yaml",
        suite="""
        evals:
          - {id: a, title: A, trace: trace-01, assert: [{type: contains, value: runway}]}
          - {id: b, title: B, trace: trace-07, assert: [{type: contains, value: runway}]}
          - {id: c, title: C, trace: trace-08, assert: [{type: contains, value: runway}]}
        """,
    )
    result = run_cli("validate", ".", cwd=pytester.path)
    assert result.returncode == 1
    assert "suite.eval.yaml:3: eval 'b', field 'trace': no recorded run 'trace-07'" in result.stderr
    assert "suite.eval.yaml:4: eval 'c', field 'trace': no recorded run 'trace-08'" in result.stderr
    assert pytester.runpytest("--continue-on-collection-errors").ret == 1  # pytest agrees


def test_traces_lists_runs() -> None:
    result = run_cli("traces", str(EXAMPLE / "diligence" / "traces"))
    assert result.returncode == 0
    assert result.stdout.count("\n") == 5
    assert result.stdout.startswith("trace-01\t4b1f0c2a9d3e4f5a8b6c7d8e9f0a1b2c\tv001\t")


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    from pytest_agentloop.cli import main

    monkeypatch.chdir(tmp_path)  # in-process: each of these stops before pytest would be asked anything
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"\x00garbage" * 512)
    cases = [
        (("stats", "--since", "garbage"), ("--since", "garbage")),
        (("split", "no/such/folder"), ("no such file or folder: no/such/folder",)),
        (("verdicts", "prune", "no/such/folder"), ("no such file or folder: no/such/folder",)),
        (("validate", "missing.eval.yaml"), ("missing.eval.yaml",)),
        (("traces", "nowhere"), ("nowhere",)),
        (("runs", "--history", str(corrupt)), ("corrupt.sqlite", "cannot be read")),
        (("stats", "--history", str(corrupt)), ("corrupt.sqlite", "cannot be read")),
        (("export", "latest", "--history", str(corrupt)), ("corrupt.sqlite",)),
        (("runs", "--limit", "0"), ("--limit",)),
        (("split", ".", "--holdout", "1.5"), ("--holdout",)),
        (("handoff", "nowhere"), ("nowhere", "not a saved run")),
    ]
    for args, words in cases:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exit:  # argparse's usage errors
            code = int(str(exit.code))
        _one_line_error(code, capsys.readouterr().err, *words)


def test_an_unwritable_output_is_exit_2(pytester: pytest.Pytester, store) -> None:
    pytester.makefile(
        ".eval.yaml", suite="evals: [{id: a, title: A, trace: trace-01, assert: [{type: contains, value: runway}]}]"
    )
    pytester.runpytest().assert_outcomes(passed=1)
    (pytester.path / "a-file").write_text("x")
    _failed(run_cli("export", "latest", "-o", "a-file/out.json", cwd=pytester.path), "a-file")
    ok = run_cli("export", "latest", "--out", "out/run.json", cwd=pytester.path)
    assert ok.returncode == 0 and (pytester.path / "out" / "run.json").is_file()
    (pytester.path / ".agentloop" / "history.sqlite").rename(pytester.path / "moved.sqlite")
    _failed(run_cli("export", "latest", cwd=pytester.path), "no run history")


def test_the_cli_reads_the_ini_pytest_reads(pytester: pytest.Pytester, store) -> None:
    pytester.makefile(
        ".eval.yaml", suite="evals: [{id: a, title: A, trace: trace-01, assert: [{type: contains, value: runway}]}]"
    )
    pytester.makefile(".toml", pyproject='[tool.pytest.ini_options]\nagentloop_history = "elsewhere/h.sqlite"\n')
    (pytester.path / "tox.ini").unlink()  # pyproject.toml is the ini now, as pytest would find it
    pytester.runpytest("-p", "no:asyncio").assert_outcomes(passed=1)
    assert (pytester.path / "elsewhere" / "h.sqlite").is_file()
    sub = pytester.mkdir("sub")
    runs = run_cli("runs", cwd=sub)  # rootdir and ini found upward, as pytest finds them
    assert runs.returncode == 0, runs.stderr
    assert runs.stdout.splitlines()[1].endswith("\t1\t0\t0\t0")
    bad = pytester.path / "pyproject.toml"
    bad.write_text('[tool.pytest.ini_options]\nagentloop_gate = "sometimes"\n')
    _failed(run_cli("runs", cwd=sub), "agentloop_gate", "sometimes")


def test_label_finds_the_trace_store_the_ini_names(pytester: pytest.Pytester) -> None:
    from conftest import INI, write_run

    write_run(pytester.path / "recordings", "trace-01", "Runway is 11 months.")
    pytester.makeini(INI + "agentloop_traces = recordings\n")
    pytester.makefile(".eval.yaml", suite="evals: [{id: j, title: J, trace: trace-01, scoring: llm_judge, rubric: R}]")
    label = run_cli("label", "suite.eval.yaml::j", "--pass", "--reason", "names it", "--by", "ana", cwd=pytester.path)
    assert label.returncode == 0, label.stderr
    pytester.runpytest().assert_outcomes(passed=1)  # pytest reads the person's verdict from the same store
