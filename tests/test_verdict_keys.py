"""The verdict key: every input of the judge's prompt asks anew; labels survive what a person did not judge."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest

from pytest_agentloop.cli import main
from pytest_agentloop.config import JudgeApi, JudgeMode
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.judge.endpoint import JudgeEndpoint, JudgeError
from pytest_agentloop.judge.keys import JudgeInputs, human_key, legacy_human_key, legacy_subject_key, model_key
from pytest_agentloop.judge.planner import GradeRequest, JudgePlanner, MissingVerdict
from pytest_agentloop.judge.rubric import JudgeAnswerError
from pytest_agentloop.spec import EvalSpec
from pytest_agentloop.testing.fake_openai import FakeOpenAI

from conftest import verdict_reply

EVAL = """
    evals:
      - id: judged
        title: Judged
        trace: trace-01
        scoring: llm_judge
        expected: Names the runway.
        rubric: PASS if the runway is named.
"""
NODE = "suite.eval.yaml::judged"


def _label(pytester: pytest.Pytester, *args: str) -> int:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(pytester.path)
        return main(list(args))


def _question(store: Path, text: str) -> None:
    record = store / "runs" / "trace-01" / "record.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "question": text}))


CHANGES = {
    "rubric": lambda p, s: (p.path / "suite.eval.yaml").write_text(EVAL.replace("runway is named", "burn is named")),
    "expected": lambda p, s: (p.path / "suite.eval.yaml").write_text(EVAL.replace("Names the runway", "Says 11")),
    "output": lambda p, s: (s / "runs" / "trace-01" / "answer.md").write_text("Runway: 11 months, burn $2.9M."),
    "question": lambda p, s: _question(s, "How long is the runway, in months?"),
}


@pytest.mark.parametrize("change", [*CHANGES, "model"])
def test_each_input_of_the_prompt_asks_for_a_new_judgement(
    pytester, eval_file, store, judge_env, fake_openai: FakeOpenAI, change: str
) -> None:
    eval_file(EVAL)
    fake_openai.set_responder(lambda request: verdict_reply())
    pytester.runpytest(*judge_env).assert_outcomes(passed=1)
    pytester.runpytest(*judge_env).assert_outcomes(passed=1)
    assert len(fake_openai.requests) == 1  # unchanged inputs: replayed
    extra = ["--agentloop-judge-model=judge-2"] if change == "model" else []
    if change != "model":
        CHANGES[change](pytester, store)
    pytester.runpytest(*judge_env, *extra).assert_outcomes(passed=1)
    assert len(fake_openai.requests) == 2


def test_prompt_version_and_model_change_a_model_key_but_not_a_label() -> None:
    inputs = JudgeInputs("R", "E", "O", "Q", (("ticket.json", "{}"),))
    keys = {model_key(inputs, m, v) for m in ("a", "b") for v in ("1", "2")}
    assert len(keys) == 4
    assert model_key(inputs, "a", "2") != model_key(
        JudgeInputs("R", "E", "O", "Q", (("ticket.json", "{ }"),)), "a", "2"
    )
    assert human_key(inputs) == human_key(JudgeInputs("R", "E", "O", "another question", ()))
    assert human_key(inputs) != human_key(JudgeInputs("R", "E2", "O"))


@pytest.mark.parametrize("change", ["question", "model"])
def test_a_label_survives_what_the_person_did_not_judge(
    pytester, eval_file, store, judge_env, fake_openai, change: str
) -> None:
    eval_file(EVAL)
    assert _label(pytester, "label", NODE, "--pass", "--reason", "names it", "--by", "ana") == 0
    extra = ["--agentloop-judge-model=judge-2"] if change == "model" else []
    if change == "question":
        _question(store, "Another question?")
    result = pytester.runpytest(*judge_env, *extra, "--agentloop-judge=replay")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["rubric verdicts (replay mode): 1 human"])


def test_a_stale_label_is_reported_with_the_old_label(pytester, eval_file, judge_env, fake_openai) -> None:
    eval_file(EVAL)
    assert _label(pytester, "label", NODE, "--fail", "--reason", "misses it", "--by", "ana") == 0
    CHANGES["expected"](pytester, None)
    result = pytester.runpytest(*judge_env, "--agentloop-judge=replay")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*a person's label is stale (the expected changed since): fail (score 0) by human:ana on *: 'misses it'*"]
    )
    fake_openai.push(verdict_reply())
    result = pytester.runpytest(*judge_env)
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*StaleLabelWarning: eval judged: a person's label is stale*"])
    assert len(fake_openai.requests) == 1


def test_replay_names_the_judge_models_verdicts_exist_under(pytester, eval_file, judge_env, fake_openai) -> None:
    eval_file(EVAL)
    fake_openai.push(verdict_reply())
    pytester.runpytest(*judge_env).assert_outcomes(passed=1)
    result = pytester.runpytest(*judge_env, "--agentloop-judge-model=judge-2", "--agentloop-judge=replay")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*under judge model judge-1: choose one with --agentloop-judge-model=judge-1 (or agentloop_judge_model*"]
    )


def test_the_missing_verdict_message_names_the_configured_key_variable(pytester, eval_file, fake_openai) -> None:
    eval_file(EVAL)
    result = pytester.runpytest(
        "--agentloop-judge-key-env=SUPPORT_JUDGE_KEY", f"--agentloop-judge-base-url={fake_openai.base_url}"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*set SUPPORT_JUDGE_KEY and run `pytest {NODE} --agentloop-judge=record`*"])
    assert "OPENAI_API_KEY" not in result.stdout.str() and fake_openai.requests == []


def test_judge_errors_are_agentloop_errors() -> None:
    assert issubclass(JudgeError, AgentloopError) and issubclass(JudgeAnswerError, JudgeError)
    assert issubclass(MissingVerdict, AgentloopError)


def _legacy_line(eval_id: str, rubric: str, output: str, **extra: object) -> str:
    data = {
        "key": legacy_human_key(rubric, output),
        "subject": legacy_subject_key(rubric, output),
        "eval_file": "suite.eval.yaml",
        "eval_id": eval_id,
        "pass": True,
        "score": 1.0,
        "reason": "old label",
        "source": "human:ana",
        "judge_model": "human",
        "prompt_version": "-",
        "created": "2026-01-01T00:00:00Z",
        "sample": 0,
        **extra,
    }
    return json.dumps(data, sort_keys=True)


def test_migrate_rekeys_unchanged_verdicts_and_leaves_stale_ones(pytester, store, judge_env, capsys) -> None:
    other = EVAL.replace("evals:", "").replace("id: judged", "id: other").replace("runway is", "burn is")
    pytester.makefile(".eval.yaml", suite=EVAL + other)
    answer = (store / "runs" / "trace-01" / "answer.md").read_text()
    path = pytester.path / "verdicts.jsonl"
    path.write_text(
        _legacy_line("judged", "PASS if the runway is named.", answer)
        + "\n"
        + _legacy_line("other", "PASS if the burn is named.", "an older answer")
        + "\n"
    )
    result = pytester.runpytest(*judge_env, "--agentloop-judge=replay")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        ["*the store holds key-version-1 verdicts: re-key them with `agentloop verdicts migrate`*"]
    )
    assert _label(pytester, "verdicts", "migrate", ".") == 0
    assert "re-keyed 1 verdicts to key version 2, 0 already current; 1 left as they were" in capsys.readouterr().out
    result = pytester.runpytest(*judge_env, "--agentloop-judge=replay")
    result.assert_outcomes(passed=1, errors=1)
    after = path.read_bytes()
    assert _label(pytester, "verdicts", "migrate", ".") == 0  # idempotent
    assert path.read_bytes() == after
    assert "re-keyed 0 verdicts to key version 2, 1 already current" in capsys.readouterr().out


def test_migrate_and_prune_refuse_a_path_that_does_not_exist(pytester, capsys) -> None:
    assert _label(pytester, "verdicts", "migrate", "nowhere") == 2  # an input error: the CLI's exit 2
    assert "no such file or folder: nowhere" in capsys.readouterr().err


# -- judge_context --------------------------------------------------------------------------


def _request(tmp_path: Path, names: tuple[str, ...]) -> GradeRequest:
    return GradeRequest(
        nodeid="s.eval.yaml::e",
        eval_file="s.eval.yaml",
        eval_id="e",
        rubric="R",
        output="O",
        store_path=tmp_path / "verdicts.jsonl",
        question="Q?",
        artifacts_dir=tmp_path / "artifacts",
        judge_context=names,
    )


def _planner(server: FakeOpenAI, limit: int = 64_000) -> JudgePlanner:
    endpoint = JudgeEndpoint(model="judge-1", api_key="k", base_url=server.base_url, api=JudgeApi.CHAT)
    return JudgePlanner(endpoint, JudgeMode.RECORD, 2, lambda path, verdicts: None, limit)


def test_judge_context_artifacts_reach_the_judge_and_the_key(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "ticket.json").write_text('{"priority": "P1"}')
    fake_openai.set_responder(lambda request: verdict_reply())
    planner = _planner(fake_openai)
    try:
        first = planner.outcome(_request(tmp_path, ("ticket.json",)))
    finally:
        planner.close()
    user = fake_openai.requests[0].body["messages"][1]["content"]
    assert user.index("<<<ARTIFACT ticket.json ") < user.index('{"priority": "P1"}') < user.index("<<<OUTPUT ")
    (tmp_path / "artifacts" / "ticket.json").write_text('{"priority": "P3"}')
    planner = _planner(fake_openai)
    try:
        second = planner.outcome(_request(tmp_path, ("ticket.json",)))
    finally:
        planner.close()
    assert first.verdicts[0].key != second.verdicts[0].key


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.json", None, "judge_context artifact missing.json is missing"),
        ("../escape.json", None, "is not a plain relative path"),
        (
            "big.txt",
            "x" * 2000,
            "judge_context artifacts come to more than 1 KB at big.txt*--agentloop-judge-context-kb",
        ),
    ],
)
def test_judge_context_problems_are_judge_errors(
    tmp_path: Path, fake_openai: FakeOpenAI, name: str, content: str | None, message: str
) -> None:
    (tmp_path / "artifacts").mkdir()
    if content is not None:
        (tmp_path / "artifacts" / name).write_text(content)
    planner = _planner(fake_openai, limit=1000)
    try:
        with pytest.raises(JudgeError) as info:
            planner.outcome(_request(tmp_path, (name,)))
    finally:
        planner.close()
    assert fake_openai.requests == []
    assert fnmatch.fnmatch(str(info.value), f"*{message}*")


@pytest.mark.skipif(
    not hasattr(EvalSpec, "judge_context"), reason="judge_context lands in the eval schema with `inputs`"
)
def test_judge_context_from_the_eval_file(pytester, eval_file, store, judge_env, fake_openai) -> None:
    eval_file(EVAL.replace("scoring: llm_judge", "scoring: llm_judge\n        judge_context: [risk_register.json]"))
    fake_openai.set_responder(lambda request: verdict_reply())
    pytester.runpytest(*judge_env).assert_outcomes(passed=1)
    assert "<<<ARTIFACT risk_register.json " in fake_openai.requests[0].body["messages"][1]["content"]
    (store / "runs" / "trace-01" / "artifacts" / "risk_register.json").write_text("[]")
    pytester.runpytest(*judge_env).assert_outcomes(passed=1)
    assert len(fake_openai.requests) == 2
