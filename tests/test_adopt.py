"""``agentloop adopt``: a live run's fresh runs and verdicts into the tracked store, then replayed offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_live_runs import Server, fresh_store, live_env, recorded_steps, scripts

from pytest_agentloop.cli import main
from pytest_agentloop.testing.fake_openai import FakeOpenAI, Reply

__all__ = ["live_env"]  # the fixture, shared with test_live_runs


def _adopt(root: Path, *args: str) -> int:
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        return main(["adopt", *args])


def test_adopted_runs_and_verdicts_replay_offline(
    pytester: pytest.Pytester,
    example_copy: Path,
    fake_openai: FakeOpenAI,
    live_env: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    recorded = example_copy / "diligence" / "traces" / "runs" / "trace-01"
    steps = recorded_steps(recorded)  # the fresh answer differs: only the adopted verdicts grade it in replay
    steps[-1] = Reply(text=(recorded / "answer.md").read_text() + "\n\nChecked again on the fresh run.")
    fake_openai.set_responder(Server(scripts(example_copy, trace_01=steps)))
    pytester.runpytest(*live_env).assert_outcomes(passed=20, deselected=3)
    folder = fresh_store(pytester.path)
    tracked = example_copy / "diligence" / "traces"
    old_id = json.loads((tracked / "runs" / "trace-01" / "record.json").read_text())["trace_id"]
    fresh_id = json.loads((folder / "traces" / "runs" / "trace-01" / "record.json").read_text())["trace_id"]
    before = {p: p.read_bytes() for p in tracked.rglob("*") if p.is_file()}

    assert _adopt(pytester.path, str(folder), "--into", str(tracked)) == 2  # labels taken, no --replace
    assert "already has trace-01, trace-02, trace-03, trace-04, trace-05; pass --replace" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in tracked.rglob("*") if p.is_file()} == before  # nothing moved

    verdicts = example_copy / "diligence" / "verdicts.jsonl"
    kept = verdicts.read_text()
    code = _adopt(pytester.path, str(folder), "--into", str(tracked), "--label", "trace-01", "--replace", "--verdicts")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "adopted 1 runs into" in out and "(1 replaced): trace-01" in out
    record = json.loads((tracked / "runs" / "trace-01" / "record.json").read_text())
    assert record["trace_id"] == fresh_id and record["provenance"]["source"] == "live"
    shared = (tracked / "spans.jsonl").read_text()
    assert old_id not in shared and fresh_id not in shared  # the old run's lines left; the new run keeps its own
    assert (tracked / "runs" / "trace-01" / "spans.jsonl").is_file()
    lines = [json.loads(line) for line in verdicts.read_text().splitlines()]
    made = [v for v in lines if not v["source"].startswith("human:")]
    assert len(lines) == len(kept.splitlines()) + len(made)  # the authors' labels kept, the judge's added
    assert {(v["eval_file"], v["source"]) for v in made} == {
        ("evals/diligence/financing_risk.eval.yaml", "model:judge-1")  # only the evals that check trace-01
    }
    assert not list(tracked.glob("runs/.*"))  # no staging or replaced folder left behind

    requests = len(fake_openai.requests)
    replay = pytester.runpytest(
        *("evals", "-k", "not test_memo", "--agentloop-judge=replay", "--agentloop-judge-model=judge-1"),
        *("-p", "no:cacheprovider"),
    )
    replay.assert_outcomes(passed=20, deselected=3)  # the changed answer graded by the adopted verdict
    replay.stdout.fnmatch_lines(["rubric verdicts (replay mode): 6 human, 1 model"])
    assert len(fake_openai.requests) == requests
