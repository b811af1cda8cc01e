"""Live-mode overlap: 20 questions, each an Agents SDK run of 3 model calls, one judged eval per question.

    uv run python bench/live.py [--questions 20] [--latency 2.0] [--judge-latency 1.0] [--concurrency 20]

One ``pytest --agentloop-live`` session in a subprocess against the fake
OpenAI server: the built-in runner (harness YAML, one tool) makes 3 model
calls per run at ``--latency`` each; every eval's rubric is graded by the
judge at ``--judge-latency``. Prints the session's wall time, the critical
path (the slowest single run, as its record measured it, plus one judge
call), their ratio (target at most 1.3), and the start-up cost that makes
the rest: pytest's own start plus importing the Agents SDK and HALO's span
mapping, measured apart.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_agentloop.testing.fake_openai import AgentScript, FakeOpenAI, Reply, Request, ToolCall

VERDICT = '{"pass": true, "score": 0.9, "reason": "meets the rubric"}'
JUDGE_MODEL = "bench-judge"
TOOL = '''
from agents import function_tool


@function_tool
def lookup(topic: str) -> str:
    """Look a topic up."""
    return f"notes on {topic}"
'''


def make_suite(root: Path, questions: int) -> None:
    """A harness with one tool, a store of ``questions`` recorded runs, one judged eval per run."""
    (root / "benchtools.py").write_text(TOOL)
    (root / "harness.yaml").write_text(
        "version: bench\nname: bench-agent\nsystem_prompt: Answer.\nmodel_settings: {model: gpt-4.1-mini}\n"
        "tools: [benchtools:lookup]\nmax_turns: 5\n"
    )
    body = ""
    for n in range(questions):
        run = root / "suite" / "traces" / "runs" / f"q{n:02d}"
        run.mkdir(parents=True)
        record = {
            "trace_id": f"{n:02d}" + "cd" * 15,
            "label": f"q{n:02d}",
            "question": f"question number {n}?",
            "harness_version": "v0",
            "model": None,
            "created": "2026-01-01T00:00:00Z",
        }
        (run / "record.json").write_text(json.dumps(record))
        (run / "answer.md").write_text("old answer")
        rubric = f"PASS if it answers question {n}."
        body += f"  - {{id: e{n:02d}, title: E{n}, trace: q{n:02d}, scoring: llm_judge, rubric: '{rubric}'}}\n"
    (root / "suite" / "judged.eval.yaml").write_text("evals:\n" + body)
    (root / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "agentloop_agent = harness\nagentloop_harness = harness.yaml\n"
    )


def responder(latency: float, judge_latency: float) -> AgentScript | object:
    """Agent requests: lookup, lookup, answer (3 calls); judge requests: a verdict."""
    steps = [
        Reply(tool_calls=(ToolCall("lookup", {"topic": "a"}),), delay=latency),
        Reply(tool_calls=(ToolCall("lookup", {"topic": "b"}),), delay=latency),
        Reply(text="the answer", delay=latency),
    ]
    agent = AgentScript({}, default=steps)

    def answer(request: Request) -> Reply:
        if request.body.get("model") == JUDGE_MODEL:
            return Reply(text=VERDICT, delay=judge_latency)
        return agent(request)

    return answer


def timed(command: list[str], root: Path, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Seconds a subprocess takes, and its result."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, done


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--judge-latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(responder(args.latency, args.judge_latency)) as fake:  # type: ignore[arg-type]
        root = Path(tmp)
        make_suite(root, args.questions)
        env = {**os.environ, "OPENAI_API_KEY": "bench-key", "OPENAI_BASE_URL": fake.base_url}
        imports, _ = timed([sys.executable, "-c", "import agents, engine.telemetry.local_processor"], root, env)
        plain, _ = timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "suite", "--co"], root, env)
        command = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "suite", "--agentloop-live",
            f"--agentloop-live-concurrency={args.concurrency}", "--agentloop-judge=record",
            f"--agentloop-judge-base-url={fake.base_url}", f"--agentloop-judge-model={JUDGE_MODEL}",
            f"--agentloop-concurrency={args.concurrency}",
        ]  # fmt: skip
        wall, done = timed(command, root, env)
        if done.returncode != 0:
            raise SystemExit(f"pytest failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
        records = [json.loads(p.read_text()) for p in root.glob(".agentloop/runs/*/traces/runs/*/record.json")]
    slowest = max(float(r["wall_seconds"]) for r in records)
    critical = slowest + args.judge_latency
    agent_calls = sum(1 for r in fake.requests if r.body.get("model") != JUDGE_MODEL)
    print(
        f"questions: {args.questions}; runs: {len(records)}; model calls: {agent_calls} at {args.latency:g}s; "
        f"judge calls: {len(fake.requests) - agent_calls} at {args.judge_latency:g}s; concurrency {args.concurrency}"
    )
    print(f"session wall time:                 {wall:.2f}s")
    print(f"critical path (slowest run {slowest:.2f}s + one judge call): {critical:.2f}s")
    print(f"wall / critical path:              {wall / critical:.2f}  (target <= 1.3)")
    print(f"start-up: pytest collecting the suite {plain:.2f}s; importing the Agents SDK and HALO {imports:.2f}s")
    print(f"(wall - start-up) / critical path: {(wall - plain - imports) / critical:.2f}")


if __name__ == "__main__":
    main()
