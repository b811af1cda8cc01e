"""Real Promptfoo (pinned, installed into the cache on first use) against the fake OpenAI server.

System tier: ``pytest tests/test_promptfoo_system.py -m system``. The first run
installs Promptfoo from the npm registry (minutes); if node is missing it is
installed from Debian when this runs as root, else the tests fail saying so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from promptfoo_cases import ANSWER, every_literal_suite

from pytest_agentloop.backends.promptfoo_install import cache_root, ensure_promptfoo
from pytest_agentloop.backends.promptfoo_run import promptfoo_env, read_results, run_eval
from pytest_agentloop.cli import main
from pytest_agentloop.judge.verdicts import VerdictStore
from pytest_agentloop.testing.fake_openai import FakeOpenAI, Fault, Reply, Request

from conftest import write_run

pytestmark = pytest.mark.system
OUTCOME = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED) (\S+::\S+)")


def _install_node() -> None:
    """Node.js and npm from Debian, the one way this machine gets them."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail("Promptfoo needs node and npm; install them (Debian: apt-get install -y nodejs npm)")
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "nodejs", "npm"]):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"node is missing and `{' '.join(command)}` failed: {done.stderr[-500:]}")


@pytest.fixture(scope="module")
def installed() -> tuple[Path, Path]:
    """The pinned ``promptfoo`` executable and the cache it is in (found before pytester moves HOME)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _install_node()
    return ensure_promptfoo(print), cache_root()


@pytest.fixture
def promptfoo(installed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The executable; sessions run by pytester (which sets HOME) find the same cache."""
    monkeypatch.setenv("AGENTLOOP_CACHE", str(installed[1]))
    return installed[0]


@pytest.fixture
def grader() -> Iterator[FakeOpenAI]:
    """The fake OpenAI server as the grader; each test sets its responder."""
    with FakeOpenAI() as server:
        yield server


def _pytest_outcomes(result: pytest.RunResult) -> dict[str, str]:
    found = {}
    for line in result.stdout.lines:
        match = OUTCOME.match(line)
        if match and ".eval.yaml::" in match.group(2):
            found[match.group(2)] = "passed" if match.group(1) == "PASSED" else match.group(1).lower()
    return found


def _promptfoo_outcomes(promptfoo: Path, root: Path, paths: list[str], base_url: str) -> dict[str, str]:
    """``agentloop promptfoo export`` then ``promptfoo eval``; pass/fail per node id."""
    config = root / "pf" / "promptfooconfig.yaml"
    assert (
        main(
            [
                "promptfoo",
                "export",
                *paths,
                "-o",
                str(config),
                "--judge-base-url",
                base_url,
                "--judge-model",
                "judge-1",
                "--judge-api",
                "chat",
            ]
        )
        == 0
    )
    results = config.with_name("results.json")
    run_eval(promptfoo, config, results, 8, promptfoo_env(config.parent))
    return {nodeid: "passed" if row.success else "failed" for nodeid, row in read_results(results).items()}


def test_export_then_promptfoo_agrees_with_pytest_on_every_literal_type(
    pytester: pytest.Pytester, promptfoo: Path, grader: FakeOpenAI
) -> None:
    expected = every_literal_suite(pytester.path)
    ours = _pytest_outcomes(pytester.runpytest("-rA", "-p", "no:cacheprovider"))
    assert ours == {f"literals.eval.yaml::{k}": v for k, v in expected.items()}
    theirs = _promptfoo_outcomes(promptfoo, pytester.path, ["literals.eval.yaml"], grader.base_url)
    assert theirs == ours


def _human_verdicts(example: Path) -> dict[str, bool]:
    """Rubric text -> the person's verdict stored for it in the bundled example."""
    verdicts: dict[str, bool] = {}
    # The oldest label per eval is on the default store's run; later ones are on the candidate store's runs.
    for verdict in sorted(VerdictStore(example / "diligence" / "verdicts.jsonl").read(), key=lambda v: v.created):
        verdicts.setdefault(verdict.eval_id, verdict.passed)
    import yaml

    rubrics = {}
    for path in (example / "diligence").glob("*.eval.yaml"):
        for item in yaml.safe_load(path.read_text())["evals"]:
            if item.get("rubric") and item["id"] in verdicts:
                rubrics[item["rubric"].strip()] = verdicts[item["id"]]
    return rubrics


def test_export_then_promptfoo_agrees_with_pytest_on_the_bundled_example(
    pytester: pytest.Pytester, example_copy: Path, promptfoo: Path, grader: FakeOpenAI, judge_env: list[str]
) -> None:
    rubrics = _human_verdicts(example_copy)

    def as_the_reviewer_said(request: Request) -> Reply:
        text = request.text()
        passed = next(v for rubric, v in rubrics.items() if rubric in text)
        return Reply(text=json.dumps({"pass": passed, "score": 1.0 if passed else 0.0, "reason": "as reviewed"}))

    grader.set_responder(as_the_reviewer_said)
    ours = _pytest_outcomes(pytester.runpytest("evals", "-rA", "-p", "no:cacheprovider", "--agentloop-judge=replay"))
    assert len(ours) == 20
    theirs = _promptfoo_outcomes(promptfoo, pytester.path, ["evals"], grader.base_url)
    assert theirs == ours
    assert len(grader.requests) == len(rubrics)


ERRORS_SUITE = """\
agentloop: 1
defaults: {scoring: llm_judge, threshold: 0.5}
evals:
  - {id: good, title: G, trace: trace-01, rubric: RUBRIC-GOOD}
  - {id: low, title: L, trace: trace-01, rubric: RUBRIC-LOW}
  - {id: down, title: D, trace: trace-01, rubric: RUBRIC-500}
  - {id: prose, title: P, trace: trace-01, rubric: RUBRIC-PROSE}
  - {id: nopass, title: N, trace: trace-01, rubric: RUBRIC-NOPASS}
  - {id: literal, title: X, trace: trace-01, scoring: hybrid, rubric: RUBRIC-GOOD-2,
     assert: [{type: contains, value: zebra}]}
"""


def _by_rubric(request: Request) -> Reply:
    text = request.text()
    if "RUBRIC-500" in text:
        return Reply(fault=Fault.SERVER_ERROR, text="grader down", retry_after=None)
    if "RUBRIC-PROSE" in text:
        return Reply(text="Looks fine to me.")
    if "RUBRIC-NOPASS" in text:
        return Reply(text='{"score": 1, "reason": "no pass field"}')
    score = 0.2 if "RUBRIC-LOW" in text else 0.9
    return Reply(text=json.dumps({"pass": True, "score": score, "reason": f"graded {score}"}))


def test_backend_maps_grader_errors_to_errors_stores_verdicts_and_replays_them(
    pytester: pytest.Pytester, promptfoo: Path, grader: FakeOpenAI, judge_env: list[str]
) -> None:
    write_run(pytester.path / "traces", "trace-01", ANSWER)
    pytester.makefile(".eval.yaml", suite=ERRORS_SUITE)
    grader.set_responder(_by_rubric)
    options = [
        f"--agentloop-judge-base-url={grader.base_url}",
        "--agentloop-judge-model=judge-1",
        "--agentloop-judge-api=chat",
        "-rA",
        "-p",
        "no:cacheprovider",
    ]
    result = pytester.runpytest("--agentloop-backend=promptfoo", "--agentloop-judge=record", *options)
    outcomes = _pytest_outcomes(result)
    assert outcomes == {
        "suite.eval.yaml::good": "passed",
        "suite.eval.yaml::low": "failed",
        "suite.eval.yaml::down": "error",
        "suite.eval.yaml::prose": "error",
        "suite.eval.yaml::nopass": "error",
        "suite.eval.yaml::literal": "failed",
    }
    result.stdout.fnmatch_lines(
        [
            "*eval down: judge error: judge endpoint * answered HTTP 500*",
            "*eval prose: judge error: no JSON object in the answer*",
            "*eval nopass: judge error: the verdict lacks pass*",
            '*FAILED contains: score 0.00: Expected output to contain "zebra"*',
        ]
    )
    stored = {v.eval_id: v for v in VerdictStore(pytester.path / "verdicts.jsonl").read()}
    assert sorted(stored) == ["good", "low"]  # `literal` is hybrid and its assertion failed: its rubric not asked
    assert stored["good"].source == "promptfoo:openai:chat:judge-1" and stored["low"].score == 0.2
    asked = len(grader.requests)
    replay = pytester.runpytest("--agentloop-judge=replay", *options)
    assert len(grader.requests) == asked
    replayed = _pytest_outcomes(replay)
    assert {k: replayed[f"suite.eval.yaml::{k}"] for k in ("good", "low", "literal")} == {
        "good": "passed",
        "low": "failed",
        "literal": "failed",
    }
    replay.stdout.fnmatch_lines(["*rubric verdicts (replay mode): *promptfoo*"])


def test_backend_runs_promptfoo_once_under_xdist(
    pytester: pytest.Pytester, promptfoo: Path, grader: FakeOpenAI, judge_env: list[str]
) -> None:
    write_run(pytester.path / "traces", "trace-01", ANSWER)
    evals = "".join(f"  - {{id: e{n}, title: E, trace: trace-01, rubric: PASS if fact {n} holds}}\n" for n in range(6))
    pytester.makefile(".eval.yaml", suite="defaults: {scoring: llm_judge}\nevals:\n" + evals)
    grader.set_responder(lambda r: Reply(text='{"pass": true, "score": 0.9, "reason": "ok"}'))
    result = pytester.runpytest_subprocess(
        "--agentloop-backend=promptfoo",
        "--agentloop-judge=record",
        "-n",
        "2",
        "-p",
        "no:cacheprovider",
        f"--agentloop-judge-base-url={grader.base_url}",
        "--agentloop-judge-model=judge-1",
    )
    result.assert_outcomes(passed=6)
    assert len(grader.requests) == 6
    runs = list((pytester.path / ".agentloop" / "promptfoo").iterdir())
    assert len(runs) == 1 and (runs[0] / "results.json").is_file()
