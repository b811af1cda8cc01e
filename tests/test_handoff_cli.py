"""`agentloop handoff RUN_DIR` says precisely which run folders it takes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_agentloop.cli import main


def test_a_run_folder_without_a_saved_handoff_is_named_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    live = tmp_path / ".agentloop" / "runs" / "20261202-101904-9fa7d4"
    (live / "traces").mkdir(parents=True)  # a live run's folder: traces and verdicts, no handoff inputs
    (live / "verdicts.jsonl").write_text("")
    assert main(["handoff", ".agentloop/runs/20261202-101904-9fa7d4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("agentloop handoff: error: .agentloop/runs/20261202-101904-9fa7d4: not a saved run for a")
    assert "has no run.json" in err and "--agentloop-handoff" in err and "runs live under" not in err
    saved = tmp_path / ".agentloop" / "runs" / "20261202-100000-aaaaaa"
    saved.mkdir()
    (saved / "run.json").write_text("{}")
    assert main(["handoff", ".agentloop/runs/20261202-101904-9fa7d4"]) == 2
    assert "the latest run here that has one: .agentloop/runs/20261202-100000-aaaaaa" in capsys.readouterr().err
    assert main(["handoff", ".agentloop/runs/nosuch"]) == 2
    assert "not a saved run: no such folder; give a run folder pytest wrote with --agentloop-handoff" in (
        capsys.readouterr().err
    )
