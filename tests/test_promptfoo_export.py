"""Promptfoo export, import, install and grader-answer rules, without running Promptfoo (fast tier)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from promptfoo_cases import ANSWER, every_literal_suite

from pytest_agentloop.assertions.registry import AssertionRegistry, AssertionType, Outcome, using
from pytest_agentloop.backends import promptfoo_install
from pytest_agentloop.backends.promptfoo_backend import judge_answer
from pytest_agentloop.backends.promptfoo_export import (
    CHECK_SCRIPT,
    Grader,
    export_config,
    python_only_regex,
)
from pytest_agentloop.backends.promptfoo_import import import_config
from pytest_agentloop.backends.promptfoo_run import read_results
from pytest_agentloop.backends.promptfoo_tap import GraderTap, prompt_key
from pytest_agentloop.backends.promptfoo_targets import targets_for
from pytest_agentloop.cli import main
from pytest_agentloop.config import JudgeApi
from pytest_agentloop.judge.rubric import ParsedVerdict, build_prompt
from pytest_agentloop.spec import load_suite
from pytest_agentloop.testing.fake_openai import FakeOpenAI, Fault, Reply

from conftest import SECRET_KEY, verdict_reply

GRADER = Grader(model="judge-1", base_url="http://127.0.0.1:9/v1", api=JudgeApi.CHAT, key_env="JUDGE_KEY")


def _export(root: Path) -> dict[str, Any]:
    exported = export_config(targets_for([root / "literals.eval.yaml"], root), GRADER, "t")
    return {"config": exported.config, "notes": exported.notes}


def _tests_by_id(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["metadata"]["eval_id"]: t for t in config["tests"]}


def test_config_grades_the_recorded_outputs_one_test_per_eval(tmp_path: Path) -> None:
    expected = every_literal_suite(tmp_path)
    config = _export(tmp_path)["config"]
    assert config["prompts"] == ["{{output}}"] and config["providers"] == ["echo"]
    tests = _tests_by_id(config)
    assert sorted(tests) == sorted(expected)
    first = tests["contains-pass"]
    assert first["description"] == "contains-pass: contains-pass"
    assert first["vars"] == {"output": ANSWER}
    assert first["metadata"]["nodeid"] == "literals.eval.yaml::contains-pass"
    assert first["metadata"]["tags"] == ["literal"] and first["metadata"]["split"] == "optimization"
    assert first["metadata"]["must_pass"] is False
    assert config["env"] == {"PROMPTFOO_PYTHON": sys.executable}


def test_native_types_keep_type_value_weight_metric_threshold(tmp_path: Path) -> None:
    every_literal_suite(tmp_path)
    tests = _tests_by_id(_export(tmp_path)["config"])
    assert tests["contains-pass"]["assert"] == [{"type": "contains", "value": "$2.9M", "metric": "burn"}]
    assert tests["contains-any-comma"]["assert"] == [{"type": "contains-any", "value": ["nothing", "runway"]}]
    assert tests["regex-js-pass"]["assert"] == [{"type": "regex", "value": r"\d+ months"}]
    assert tests["levenshtein-pass"]["assert"][0]["threshold"] == 2
    assert tests["word-count-pass"]["assert"] == [{"type": "word-count", "value": {"min": 5, "max": 20}}]
    assert tests["equals-json-pass"]["assert"] == [{"type": "equals", "value": {"runway_months": 11, "burn": "$2.9M"}}]
    assert tests["template-marks-pass"]["assert"] == [
        {"type": "not-contains", "value": "{% raw %}{{ output }}{% endraw %}"}
    ]


def test_what_promptfoo_lacks_becomes_a_python_check_and_is_listed(tmp_path: Path) -> None:
    every_literal_suite(tmp_path)
    result = _export(tmp_path)
    tests = _tests_by_id(result["config"])
    via_python = {n.nodeid.split("::")[1] for n in result["notes"] if n.exported}
    assert via_python == {
        "regex-python-pass",
        "not-regex-python-pass",
        "not-regex-python-fail",
        "not-levenshtein-fail",
        "artifacts-exist-pass",
        "artifacts-exist-fail",
        "json-shape-pass",
        "csv-columns-pass",
        "sources-resolve-pass",
        "artifact-text-fail",
    }
    check = tests["artifact-text-fail"]["assert"][0]
    assert check["type"] == "python" and check["value"] == f"file://{CHECK_SCRIPT}"
    assert check["config"]["agentloop"]["artifact"] == "open_questions.md"
    assert check["config"]["agentloop"]["artifacts_dir"].endswith("trace-01/artifacts")
    assert tests["sources-resolve-pass"]["assert"][0]["config"]["agentloop"]["dataroom_dir"] == str(
        (tmp_path / "dataroom").resolve()
    )


def test_scoring_rules_are_kept_weight_zero_and_assertion_threshold(tmp_path: Path) -> None:
    every_literal_suite(tmp_path)
    tests = _tests_by_id(_export(tmp_path)["config"])
    zero = tests["weight-zero-failing-ignored"]["assert"]
    assert zero[0]["type"] == "assert-set" and zero[0]["threshold"] == 1.0
    assert [a.get("weight", 1) for a in zero[0]["assert"]] == [2, 0]
    weighted = tests["weighted-threshold-pass"]["assert"]
    assert weighted[0]["type"] == "assert-set" and weighted[0]["threshold"] == 0.7


def test_python_check_runs_this_package_as_pytest_would(tmp_path: Path) -> None:
    every_literal_suite(tmp_path)
    tests = _tests_by_id(_export(tmp_path)["config"])
    sys.path.insert(0, str(CHECK_SCRIPT.parent))
    try:
        import promptfoo_check  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(CHECK_SCRIPT.parent))
    for eval_id, passed in (("artifact-text-fail", False), ("json-shape-pass", True), ("regex-python-pass", True)):
        check = tests[eval_id]["assert"][0]
        graded = promptfoo_check.get_assert(ANSWER, {"config": check["config"]})
        assert graded["pass"] is passed, (eval_id, graded)


RUBRIC_SUITE = """\
agentloop: 1
evals:
  - id: judged
    title: Judged
    trace: trace-01
    scoring: hybrid
    threshold: 0.7
    expected: mentions {{ runway }}
    rubric: PASS if the answer gives the runway {% if x %}.
    assert: [{type: icontains, value: runway}]
  - id: repeated
    title: Repeated
    trace: trace-01
    scoring: llm_judge
    repeat: 3
    rubric: PASS if it is short.
"""


def _rubric_suite(root: Path, answer: str = ANSWER) -> Path:
    from conftest import write_run

    write_run(root / "traces", "trace-01", answer)
    path = root / "judged.eval.yaml"
    path.write_text(RUBRIC_SUITE)
    return path


def test_rubric_is_llm_rubric_with_threshold_provider_and_the_native_prompt(tmp_path: Path) -> None:
    answer = 'Runway <is> "11 months" & {{ not a template }}'
    path = _rubric_suite(tmp_path, answer)
    exported = export_config(targets_for([path], tmp_path), GRADER, "t")
    test = exported.config["tests"][0]
    rubric = test["assert"][-1]
    assert rubric["type"] == "llm-rubric" and rubric["threshold"] == 0.7
    assert rubric["provider"] == {
        "id": "openai:chat:judge-1",
        "config": {"apiKeyEnvar": "JUDGE_KEY", "apiBaseUrl": "http://127.0.0.1:9/v1"},
    }
    messages = json.loads(test["options"]["rubricPrompt"])
    rendered = [_render(m["content"], answer) for m in messages]
    native = build_prompt(
        "PASS if the answer gives the runway {% if x %}.", answer, "mentions {{ runway }}", "question of trace-01?"
    )
    assert rendered == [native.system, native.user]
    assert SECRET_KEY not in json.dumps(exported.config)


def _render(template: str, output: str) -> str:
    """What Nunjucks makes of the exported template: raw blocks verbatim, ``{{ output }}`` filled in."""
    parts = template.split("{% raw %}")
    text = parts[0].replace("{{ output }}", output)
    for part in parts[1:]:
        literal, rest = part.split("{% endraw %}", 1)
        text += literal + rest.replace("{{ output }}", output)
    return text


def test_nothing_is_dropped_silently(tmp_path: Path) -> None:
    path = _rubric_suite(tmp_path)
    path.write_text(
        RUBRIC_SUITE + "  - {id: custom, title: C, trace: trace-01, assert: [{type: mentions-x, value: a}]}\n"
    )
    plugin_types = AssertionRegistry.with_types(
        [AssertionType("mentions-x", lambda v, g: Outcome(True, "", ""), validate=lambda v: None)]
    )
    with using(plugin_types):  # a plugin's type, for this block only (no process-wide registry)
        exported = export_config(targets_for([path], tmp_path), GRADER, "t")
    lines = [n.line() for n in exported.not_exported]
    assert any("judged.eval.yaml::repeated: repeat: 3: NOT exported" in line for line in lines), lines
    assert any("judged.eval.yaml::custom: assertion mentions-x" in line and "plugin" in line for line in lines), lines


def test_python_only_regex_syntax_is_recognised() -> None:
    assert python_only_regex("(?i)runway") and python_only_regex(r"\Aruns\Z") and python_only_regex("(?P<n>x)")
    assert not python_only_regex(r"(?:a|b)\d+(?=x)(?<!y)")


def test_cli_export_writes_the_config_and_lists_the_python_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    every_literal_suite(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["promptfoo", "export", ".", "-o", "out/promptfooconfig.yaml"]) == 0
    config = yaml.safe_load((tmp_path / "out" / "promptfooconfig.yaml").read_text())
    assert len(config["tests"]) == 33
    out = capsys.readouterr().out
    assert "literals.eval.yaml::artifact-text-fail: assertion icontains (line" in out
    assert "exported as a Python assertion: checks the artifact open_questions.md" in out
    assert main(["promptfoo", "export", "nowhere", "-o", "x.yaml"]) == 2  # an input error: the CLI's exit 2


def test_import_then_export_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    every_literal_suite(tmp_path)
    path = _rubric_suite(tmp_path)
    monkeypatch.chdir(tmp_path)
    first = export_config(targets_for([tmp_path / "literals.eval.yaml", path], tmp_path), GRADER, "t").config
    (tmp_path / "first.yaml").write_text(yaml.safe_dump(first))
    imported = import_config(tmp_path / "first.yaml", out=tmp_path / "imported.eval.yaml")
    (tmp_path / "imported.eval.yaml").write_text(imported.text)
    assert imported.count == len(first["tests"]) and not imported.notes
    again = export_config(targets_for([tmp_path / "imported.eval.yaml"], tmp_path), GRADER, "t").config
    strip = {"nodeid", "eval_file"}

    def comparable(tests: list[dict[str, Any]]) -> str:
        text = json.dumps(
            [{**t, "metadata": {k: v for k, v in t["metadata"].items() if k not in strip}} for t in tests],
            sort_keys=True,
        )
        return re.sub(r'"line": \d+', "", text)  # the imported file's lines differ from the original's

    assert comparable(again["tests"]) == comparable(first["tests"])


FOREIGN = """\
prompts: ["Answer: {{question}}"]
providers: [openai:gpt-4.1-mini]
defaultTest:
  assert: [{type: not-icontains, value: as an AI}]
tests:
  - description: Runway question
    vars: {question: 'How long is the runway?'}
    threshold: 0.5
    assert:
      - {type: icontains, value: months, weight: 2, metric: facts}
      - {type: similar, value: 11 months of runway}
      - {type: javascript, value: output.length < 500}
      - {type: llm-rubric, value: Gives a number of months, threshold: 0.6}
  - description: Nothing we can use
    assert: [{type: cost, threshold: 0.01}]
  - file://more_tests.yaml
"""


def test_import_maps_what_it_can_and_lists_the_rest_with_reasons(tmp_path: Path) -> None:
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text(FOREIGN)
    imported = import_config(config, trace="trace-01")
    target = tmp_path / "imported.eval.yaml"
    target.write_text(imported.text)
    from conftest import write_run

    write_run(tmp_path / "traces", "trace-01", ANSWER)
    suite = load_suite(target, 10_000_000)
    spec, second = suite.evals
    assert [a.type for a in second.assertions] == ["not-icontains"]  # defaultTest's assertions apply to every test
    assert spec.id == "Runway-question" and spec.scoring.value == "hybrid" and spec.threshold == 0.6
    assert [(a.type, a.weight, a.metric) for a in spec.assertions] == [
        ("not-icontains", 1.0, None),
        ("icontains", 2.0, "facts"),
    ]
    assert spec.assertion_threshold == 0.5
    notes = "\n".join(imported.notes)
    for reason in (
        "'similar' has no counterpart",
        "'javascript' has no counterpart",
        "'cost' has no counterpart",
        "averages the rubric",
        "tests loaded from files",
    ):
        assert reason in notes, notes


RESULTS = {
    "results": {
        "results": [
            {
                "success": False,
                "score": 0.5,
                "failureReason": 1,
                "gradingResult": {
                    "reason": "Expected output to contain x",
                    "componentResults": [
                        {"pass": True, "score": 1, "reason": "ok", "assertion": {"type": "contains", "value": "a"}},
                        {"pass": False, "score": 0, "reason": "Could not reach grader"},
                    ],
                },
                "error": "Expected output to contain x",
                "testCase": {"description": "e", "metadata": {"nodeid": "a.eval.yaml::e"}},
            },
            {
                "success": True,
                "score": 1,
                "error": "boom",
                "failureReason": 2,
                "testCase": {"metadata": {"nodeid": "b"}},
            },
        ]
    }
}


def test_results_rows_keep_components_and_expose_errors(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps(RESULTS))
    rows = read_results(tmp_path / "results.json")
    row = rows["a.eval.yaml::e"]
    assert [c.type for c in row.components] == ["contains", None] and row.provider_error is None
    assert rows["b"].provider_error == "boom"


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (Reply(fault=Fault.SERVER_ERROR, text="grader down", retry_after=None), "answered HTTP 500"),
        (Reply(text="I think it passes."), "no JSON object in the answer"),
        (Reply(text='{"score": 0.9, "reason": "fine"}'), "the verdict lacks pass"),
        (Reply(fault=Fault.MALFORMED_JSON), "malformed response"),
    ],
)
def test_grader_answers_are_judged_by_this_projects_rules(reply: Reply, problem: str) -> None:
    prompt = build_prompt("PASS if short.", "Short.")
    with FakeOpenAI() as server, GraderTap(server.base_url) as tap:
        server.push(reply)
        client = openai.OpenAI(base_url=tap.base_url, api_key=SECRET_KEY, max_retries=0)
        messages = [{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}]
        with contextlib.suppress(openai.APIError, json.JSONDecodeError):
            client.chat.completions.create(model="judge-1", messages=messages)  # type: ignore[arg-type]
        found = judge_answer(tap.last(prompt_key(prompt.system, prompt.user)), server.base_url)
    assert isinstance(found, str) and problem in found, found


def test_a_good_grader_answer_passes_through_the_tap_unchanged() -> None:
    prompt = build_prompt("PASS if short.", "Short.")
    with FakeOpenAI() as server, GraderTap(server.base_url) as tap:
        server.push(verdict_reply(True, 0.9, "short"))
        client = openai.OpenAI(base_url=tap.base_url, api_key=SECRET_KEY, max_retries=0)
        answer = client.responses.create(
            model="judge-1",
            input=[{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}],
        )
        exchange = tap.last(prompt_key(prompt.system, prompt.user))
        assert server.requests[0].headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert json.loads(answer.output_text)["reason"] == "short"
    assert judge_answer(exchange, "u") == ParsedVerdict(True, 0.9, "short")
    assert exchange is not None and exchange.usage() == (11, 7)


def _fake_npm(bin_dir: Path, fail_first: bool) -> None:
    """An ``npm`` on PATH that fails like a native-module compile once, then installs a stub promptfoo."""
    script = f"""#!{sys.executable}
import json, os, pathlib, sys
here = pathlib.Path.cwd()
count = here / "attempts"
n = int(count.read_text()) + 1 if count.exists() else 1
count.write_text(str(n))
if {fail_first!r} and n == 1:
    print("gyp ERR! build error", file=sys.stderr)
    print("npm error path node_modules/better-sqlite3", file=sys.stderr)
    sys.exit(1)
pkg = here / "node_modules" / "promptfoo"
pkg.mkdir(parents=True, exist_ok=True)
(pkg / "package.json").write_text(json.dumps({{"version": "{promptfoo_install.PROMPTFOO_VERSION}"}}))
(here / "node_modules" / ".bin").mkdir(exist_ok=True)
(here / "node_modules" / ".bin" / "promptfoo").write_text("#!/bin/sh\\n")
"""
    for name, text in (("npm", script), ("node", "#!/bin/sh\necho v20.1.0\n")):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_install_retries_once_after_a_failed_compile_and_says_what_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_npm(bin_dir, fail_first=True)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("AGENTLOOP_CACHE", str(tmp_path / "cache"))
    said: list[str] = []
    exe = promptfoo_install.ensure_promptfoo(said.append)
    folder = tmp_path / "cache" / f"promptfoo-{promptfoo_install.PROMPTFOO_VERSION}"
    assert exe == folder / "node_modules" / ".bin" / "promptfoo" and (folder / "installed.json").is_file()
    assert (folder / "attempts").read_text() == "2"
    assert any("retrying once" in line and "gyp ERR! build error" in line for line in said), said
    assert promptfoo_install.ensure_promptfoo(said.append) == exe and (folder / "attempts").read_text() == "2"


def test_missing_node_is_one_usage_error_before_anything_runs(
    pytester: pytest.Pytester, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makefile(
        ".eval.yaml", suite="evals:\n  - {id: a, title: A, trace: trace-01, assert: [{type: contains, value: x}]}\n"
    )
    empty = pytester.path / "nobin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("AGENTLOOP_CACHE", str(pytester.path / "cache"))
    result = pytester.runpytest("--agentloop-backend=promptfoo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--agentloop-backend=promptfoo: Promptfoo needs Node.js 20+ and npm, and node is not on PATH*"]
    )


def test_backend_takes_stored_verdicts_first_and_replay_never_grades(
    pytester: pytest.Pytester, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No Promptfoo run is needed when every rubric is stored or cannot be graded (a stub install suffices)."""
    bin_dir = pytester.path / "bin"
    bin_dir.mkdir()
    _fake_npm(bin_dir, fail_first=False)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("AGENTLOOP_CACHE", str(pytester.path / "cache"))
    pytester.makefile(
        ".eval.yaml",
        suite="""
        defaults: {scoring: llm_judge}
        evals:
          - {id: labelled, title: L, trace: trace-01, rubric: PASS if short}
          - {id: unlabelled, title: U, trace: trace-01, rubric: PASS if long}
        """,
    )
    monkeypatch.chdir(pytester.path)
    assert main(["label", "suite.eval.yaml::labelled", "--pass", "--reason", "short enough", "--by", "ana"]) == 0
    result = pytester.runpytest("--agentloop-backend=promptfoo", "--agentloop-judge=replay", "-rA")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*eval unlabelled: no stored verdict for its rubric on the current output (judge mode replay*",
            "*rubric verdicts (replay mode): 1 human*",
        ]
    )
    off = pytester.runpytest("--agentloop-backend=promptfoo", "--agentloop-judge=off")
    off.assert_outcomes(skipped=2)
    assert not list((pytester.path / ".agentloop" / "promptfoo").glob("*/results.json"))
