"""``--agentloop-live`` usage errors that name what to do: a missing extra, a judge that defaulted to replay."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_live_runs import LIVE_INI

from pytest_agentloop.testing.fake_openai import FakeOpenAI


@pytest.mark.parametrize("hidden", ["agents", "engine"])
def test_a_missing_extra_is_a_usage_error_naming_it(
    pytester: pytest.Pytester,
    example_copy: Path,
    judge_env: list[str],
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    hidden: str,
) -> None:
    """The module is hidden, not faked: ``sys.modules[name] = None`` is how Python marks a module not importable."""
    monkeypatch.setitem(sys.modules, hidden, None)
    pytester.makeini(LIVE_INI)
    result = pytester.runpytest("evals", "--agentloop-live", *judge_env)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--agentloop-live needs the extra pytest-agentloop[[]halo[]]*pip install 'pytest-agentloop[[]halo[]]'*"]
    )
    assert fake_openai.requests == []


def test_a_judge_without_its_key_says_so_not_replay(pytester: pytest.Pytester, example_copy: Path) -> None:
    pytester.makeini(LIVE_INI + "agentloop_agent_key_env = none\n")
    result = pytester.runpytest("evals", "--agentloop-live")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*the judge defaulted to replay because its key ($OPENAI_API_KEY) is not set; set it, or pass --agentloop-judge=off*"
        ]
    )
