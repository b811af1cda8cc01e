"""One rate budget per endpoint over every model call: the judge (serial and under xdist), insights, the paced client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from authoring_helpers import agentloop, model_args, script, use_example

from pytest_agentloop.handoff.halo import HaloSettings, _paced_base_url
from pytest_agentloop.pacing import paced_client, request_tokens
from pytest_agentloop.ratelimit import RateBudget, RateLimit
from pytest_agentloop.relay import pacing_relay
from pytest_agentloop.testing.fake_openai import FakeOpenAI, Reply

RPM = 240  # the fake server's bucket holds 4 calls: BURST unpaced concurrent calls always meet a 429
BURST = 6  # paced, they wait for the calls past the bucket (1.25 s at 4 a second)
VERDICT = Reply(text=json.dumps({"pass": True, "score": 0.9, "reason": "ok"}))


@pytest.fixture
def limited() -> Iterator[FakeOpenAI]:
    """A fake server enforcing RPM requests a minute (429 past its one-second bucket, x-ratelimit headers)."""
    with FakeOpenAI(lambda request: VERDICT, rpm=RPM) as server:
        yield server


def _rejected(server: FakeOpenAI) -> int:
    return len(server.rate_limited[1])


def test_request_tokens_count_the_body_and_the_output_cap() -> None:
    request = httpx.Request("POST", "http://x/v1/chat/completions", json={"messages": "a" * 400, "max_tokens": 50})
    assert request_tokens(request) == len(request.content) // 4 + 50


def test_the_paced_client_keeps_unpaced_calls_from_a_429(limited: FakeOpenAI, tmp_path: Path) -> None:
    budget = RateBudget(limited.base_url, RateLimit(RPM), tmp_path)

    async def calls(client: httpx.AsyncClient) -> list[int]:
        async with client:
            url = limited.base_url + "/chat/completions"
            answers = await asyncio.gather(
                *(client.post(url, json={"model": "m", "messages": []}) for _ in range(BURST))
            )
        return [a.status_code for a in answers]

    assert asyncio.run(calls(paced_client(budget, timeout=10))) == [200] * BURST
    assert _rejected(limited) == 0
    unpaced = asyncio.run(calls(paced_client(None, timeout=10)))  # the same calls without the budget: refused
    assert 429 in unpaced and _rejected(limited) > 0


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_the_judge_stays_under_the_rate_with_workers_sharing_it(
    pytester: pytest.Pytester, store: Path, limited: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, workers: list[str]
) -> None:
    body = "".join(
        f"  - {{id: e{n}, title: E{n}, trace: trace-01, scoring: llm_judge, rubric: 'PASS if fact {n}.'}}\n"
        for n in range(10)
    )
    pytester.makefile(".eval.yaml", suite="evals:\n" + body)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    result = pytester.runpytest(
        *workers,
        f"--agentloop-judge-base-url={limited.base_url}",
        "--agentloop-judge-model=judge-1",
        "--agentloop-judge=record",
        "--agentloop-concurrency=8",
        f"--agentloop-rate={RPM}",
    )
    result.assert_outcomes(passed=10)
    accepted, rejected = limited.rate_limited
    assert len(accepted) == 10 and rejected == []


def test_insights_draw_on_the_same_budget(
    pytester: pytest.Pytester,
    example_copy: Path,
    limited: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_example(pytester)
    limited.set_responder(script())
    code, out, err = agentloop(capsys, "insights", *model_args(limited, monkeypatch), "--rate", str(RPM))
    assert code == 0, err
    assert "wrote 5 insights" in out
    accepted, rejected = limited.rate_limited
    assert len(accepted) == 5 and rejected == []
    assert list((pytester.path / ".agentloop" / "rate").glob("rate-*.json"))  # the budget pytest's judge shares


def test_a_bad_rate_is_named(
    pytester: pytest.Pytester, example_copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_example(pytester)
    with FakeOpenAI() as server:
        code, _, err = agentloop(capsys, "insights", *model_args(server, monkeypatch), "--rate", "fast")
    assert code != 0 and "--rate / agentloop_rate: expected RPM or RPM,TPM" in err


def test_the_relay_paces_a_client_it_cannot_be_handed_to(limited: FakeOpenAI, tmp_path: Path) -> None:
    """HALO builds its own AsyncOpenAI from a base URL: the relay in front of the endpoint paces it, streams too."""
    budget = RateBudget(limited.base_url, RateLimit(RPM), tmp_path)
    messages: Any = [{"role": "user", "content": "hi"}]

    async def run() -> tuple[list[str | None], str]:
        async with pacing_relay(limited.base_url, budget, timeout=10) as url:
            client = openai.AsyncOpenAI(base_url=url, api_key="k", max_retries=0)  # a 429 would raise here
            answers = await asyncio.gather(
                *(client.chat.completions.create(model="m", messages=messages) for _ in range(BURST - 1))
            )
            stream = await client.chat.completions.create(model="m", messages=messages, stream=True)
            text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
            await client.close()
        return [a.choices[0].message.content for a in answers], text

    contents, streamed = asyncio.run(run())
    assert contents == [VERDICT.text] * (BURST - 1) and streamed == VERDICT.text
    accepted, rejected = limited.rate_limited
    assert len(accepted) == BURST and rejected == []


def test_halo_is_given_the_relay_only_with_a_budget(tmp_path: Path) -> None:
    plain = HaloSettings("m", "m", "m", "m", base_url="http://127.0.0.1:9/v1", api_key="k")
    paced = replace(plain, budget=RateBudget(plain.base_url or "", RateLimit(60), tmp_path))

    async def url_of(settings: HaloSettings) -> str | None:
        async with _paced_base_url(settings) as url:
            return url

    assert asyncio.run(url_of(plain)) == "http://127.0.0.1:9/v1"
    relayed = asyncio.run(url_of(paced))
    assert relayed is not None and relayed.startswith("http://127.0.0.1:") and relayed.endswith("/v1")
    assert relayed != plain.base_url


def test_halo_in_process_draws_on_the_endpoints_budget(
    pytester: pytest.Pytester, example_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_handoff import REPORT, _ini, halo_script, run_with_halo

    _ini(pytester)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with FakeOpenAI(halo_script(REPORT), rpm=RPM) as server:
        result = run_with_halo(
            pytester,
            "evals",
            "--agentloop-handoff=out/handoff.md",
            "--agentloop-judge=off",
            f"--agentloop-judge-base-url={server.base_url}",
            "--agentloop-judge-model=judge-1",
            f"--agentloop-rate={RPM}",
        )
        accepted, rejected = server.rate_limited
    result.stdout.fnmatch_lines(["handoff (HALO): *out/handoff.md"])
    assert len(accepted) == 2 and rejected == []  # HALO's two calls, through the relay
    assert [r.path for r in server.requests] == ["/v1/responses"] * 2
    assert list((pytester.path / ".agentloop" / "rate").glob("rate-*.json"))  # the judge's budget file, no judge ran
