"""Live-mode overlap: 20 questions, each an Agents SDK run of 3 model calls, one judged eval per question.

    uv run python bench/live.py [--questions 20] [--latency 2.0] [--judge-latency 1.0] [--concurrency 20]

One ``pytest --agentloop-live`` session in a subprocess against the fake
OpenAI server: the built-in runner (harness YAML, one tool) makes 3 model
calls per run at ``--latency`` each; every eval's rubric is graded by the
judge at ``--judge-latency``. Prints the session's wall time, the critical
path (the slowest single run, as its record measured it, plus one judge
call), their ratio (target at most 1.3), and what start-up consists of: when
the session's first run started (from the runs' span lines), and, measured
apart in fresh processes, pytest collecting the suite and importing the
Agents SDK and HALO's span mapping (the SDK import is CPU-bound: a thread
started at configure time cannot hide it behind pytest's own start under
the GIL). It also says whether the SDK loads from cached bytecode.

Inside the session, a conftest written beside the suite notes when pytest's
hooks ran and reads the live pool's warm-up timings (when the SDK import
began and ended, its CPU seconds, when the dry run ran); the fake server
notes when each request arrived. From these the start-up and the tail (last
run's end to the process's exit) are broken down step by step. The number
of connections the kernel refused for a full listen backlog is read from
``/proc/net/netstat`` (the whole machine's count): each such connect is
retried after 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
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


TIMELINE_CONFTEST = '''
"""Notes when pytest's hooks ran (epoch seconds) into $BENCH_TIMELINE, for bench/live.py."""
import atexit, json, os, time

import pytest

NOTES = {"conftest imported": time.time()}


def _write():
    NOTES["atexit"] = time.time()
    with open(os.environ["BENCH_TIMELINE"], "w") as handle:
        json.dump(NOTES, handle)


atexit.register(_write)  # registered early, so run late: just before the interpreter's own finalization


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    NOTES["configure"] = time.time()


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    NOTES["collected"] = time.time()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    NOTES["sessionfinish"] = time.time()
    live = session.config.pluginmanager.get_plugin("agentloop-live")
    NOTES.update(getattr(getattr(live, "pool", None), "timings", {}))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    NOTES["unconfigured"] = time.time()
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
    (root / "conftest.py").write_text(TIMELINE_CONFTEST)
    (root / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "agentloop_agent = harness\nagentloop_harness = harness.yaml\n"
    )


def responder(latency: float, judge_latency: float, arrivals: list[tuple[float, bool]]) -> AgentScript | object:
    """Agent requests: lookup, lookup, answer (3 calls); judge requests: a verdict. Notes (time, is judge)."""
    steps = [
        Reply(tool_calls=(ToolCall("lookup", {"topic": "a"}),), delay=latency),
        Reply(tool_calls=(ToolCall("lookup", {"topic": "b"}),), delay=latency),
        Reply(text="the answer", delay=latency),
    ]
    agent = AgentScript({}, default=steps)

    def answer(request: Request) -> Reply:
        arrivals.append((time.time(), request.body.get("model") == JUDGE_MODEL))
        if request.body.get("model") == JUDGE_MODEL:
            return Reply(text=VERDICT, delay=judge_latency)
        return agent(request)

    return answer


def timed(command: list[str], root: Path, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Seconds a subprocess takes, and its result."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, done


def run_window(run_dir: Path) -> tuple[float, float]:
    """When a run's first span started and its last ended (epoch seconds), from its span lines."""
    lines = [json.loads(line) for line in (run_dir / "spans.jsonl").read_text().splitlines() if line.strip()]
    starts = [_epoch(line["start_time"]) for line in lines]
    ends = [_epoch(line["end_time"]) for line in lines]
    return min(starts), max(ends)


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp[:26] + "+00:00").timestamp()


def listen_overflows() -> int | None:
    """Connections the kernel refused so far because a listen backlog was full (the whole machine's count)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            row = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(row.get("ListenOverflows", 0))
    return None


def breakdown(notes: dict[str, float], began: float, first_start: float, first_request: float) -> list[str]:
    """Start-up, step by step, in seconds from the session's launch (the in-session timeline)."""

    def at(key: str) -> str:
        return f"{notes[key] - began:.2f}s" if key in notes else "?"

    return [
        f"  python, pytest and its plugins (this one included) loaded:  {at('conftest imported')}",
        f"  configured (the live pool's thread starts the SDK import):   {at('configure')} "
        f"(import began {at('sdk import began')})",
        f"  suite collected (main thread, beside the import):            {at('collected')}",
        f"  Agents SDK, openai client, HALO's span mapping imported:     {at('sdk imported')} "
        f"({notes.get('sdk import cpu', float('nan')):.2f}s of CPU on the live thread)",
        f"  first run started:                                          {first_start:.2f}s; "
        f"its first model request reached the server at {first_request:.2f}s",
        f"  dry run (warm-up, while the first requests are on the wire): {at('dry run began')} "
        f"to {at('dry run ended')}",
    ]


def tail(notes: dict[str, float], began: float, last_end: float, judge_answered: float, wall: float) -> str:
    """From the last run's end to the process's exit."""

    def at(key: str) -> str:
        return f"{notes[key] - began:.2f}s" if key in notes else "?"

    return (
        f"tail: last run ended {last_end:.2f}s; last judge answer {judge_answered:.2f}s; "
        f"pytest's session finished {at('sessionfinish')}; unconfigured {at('unconfigured')}; "
        f"atexit {at('atexit')}; process gone {wall:.2f}s"
    )


def judge_lag(run_ends: list[float], judge_arrivals: list[float]) -> str:
    """How soon after the k-th run ended the k-th judge request reached the server."""
    lags = sorted(judged - ended for ended, judged in zip(run_ends, judge_arrivals, strict=False))
    if not lags:
        return "judge: no requests"
    return f"judge requests after the runs' ends: median {lags[len(lags) // 2]:.2f}s, at most {lags[-1]:.2f}s"


def bytecode_note() -> str:
    """Whether the SDK's modules load from cached bytecode (a process that compiles them pays seconds more)."""
    import agents

    cached = (Path(agents.__file__).parent / "__pycache__").is_dir()
    if cached:
        return "the SDK loads from cached bytecode"
    why = " (PYTHONDONTWRITEBYTECODE is set)" if sys.flags.dont_write_bytecode else ""
    return f"no cached bytecode for the SDK{why}: every process compiles it (python -m compileall fixes that)"


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--judge-latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    arrivals: list[tuple[float, bool]] = []
    answers = responder(args.latency, args.judge_latency, arrivals)
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(answers) as fake:  # type: ignore[arg-type]
        root = Path(tmp)
        make_suite(root, args.questions)
        env = {**os.environ, "OPENAI_API_KEY": "bench-key", "OPENAI_BASE_URL": fake.base_url}
        bare, _ = timed([sys.executable, "-c", "import pytest_agentloop.plugin"], root, env)
        imports, _ = timed([sys.executable, "-c", "import agents, engine.telemetry.local_processor"], root, env)
        plain, _ = timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "suite", "--co"], root, env)
        command = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "suite", "--agentloop-live",
            f"--agentloop-live-concurrency={args.concurrency}", "--agentloop-judge=record",
            f"--agentloop-judge-base-url={fake.base_url}", f"--agentloop-judge-model={JUDGE_MODEL}",
            f"--agentloop-concurrency={args.concurrency}",
        ]  # fmt: skip
        env["BENCH_TIMELINE"] = str(root / "timeline.json")
        arrivals.clear()
        overflows = listen_overflows()
        began = time.time()
        wall, done = timed(command, root, env)
        refused = None if overflows is None else (listen_overflows() or 0) - overflows
        if done.returncode != 0:
            raise SystemExit(f"pytest failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
        run_dirs = [p.parent for p in root.glob(".agentloop/runs/*/traces/runs/*/record.json")]
        records = [json.loads((d / "record.json").read_text()) for d in run_dirs]
        windows = [run_window(d) for d in run_dirs]
        notes = json.loads((root / "timeline.json").read_text())
    slowest = max(float(r["wall_seconds"]) for r in records)
    critical = slowest + args.judge_latency
    agent_calls = sum(1 for r in fake.requests if r.body.get("model") != JUDGE_MODEL)
    first_start = min(w[0] for w in windows) - began
    last_end = max(w[1] for w in windows) - began
    print(
        f"questions: {args.questions}; runs: {len(records)}; model calls: {agent_calls} at {args.latency:g}s; "
        f"judge calls: {len(fake.requests) - agent_calls} at {args.judge_latency:g}s; concurrency {args.concurrency}"
    )
    print(f"session wall time:                 {wall:.2f}s")
    print(f"critical path (slowest run {slowest:.2f}s + one judge call): {critical:.2f}s")
    print(f"wall / critical path:              {wall / critical:.2f}  (target <= 1.3)")
    print(
        f"in the session: first run started at {first_start:.2f}s (start-up), last run ended at {last_end:.2f}s, "
        f"session over at {wall:.2f}s"
    )
    print(
        f"start-up, measured apart: python + importing the plugin {bare:.2f}s; python + pytest collecting the suite "
        f"{plain:.2f}s; python + importing the Agents SDK and HALO's span mapping {imports:.2f}s"
    )
    print(f"  ({bytecode_note()}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores)")
    print(f"(wall - start-up) / critical path: {(wall - first_start) / critical:.2f}")
    first_request = min(t for t, judge in arrivals if not judge) - began
    judge_answered = max((t for t, judge in arrivals if judge), default=began) - began + args.judge_latency
    print("start-up inside the session, seconds from launch:")
    print("\n".join(breakdown(notes, began, first_start, first_request)))
    print(tail(notes, began, last_end, judge_answered, wall))
    print(judge_lag(sorted(w[1] for w in windows), sorted(t for t, judge in arrivals if judge)))
    if refused:
        print(
            f"connections refused for a full listen backlog during the session (whole machine): {refused}; "
            "each waited 1 s to retry (the fake server listens with a backlog of 128; another process may be to blame)"
        )


if __name__ == "__main__":
    main()
