"""pytest-agentloop's native judge against Promptfoo on the same 200-rubric suite, one fake server.

    uv run python bench/promptfoo.py [--evals 200] [--latencies 0.1,1.0] [--concurrency 8] [--repeats 3]

Both tools grade the same ``llm_judge`` evals with the same judge prompt
(Promptfoo through ``agentloop promptfoo export``'s config: ``llm-rubric`` with
this project's ``rubricPrompt``) against one FakeOpenAI server that answers
every call after a fixed latency, at equal concurrency. Each wall time is one
fresh subprocess from start to exit (``pytest ... --agentloop-judge=refresh``;
``promptfoo eval -c ... -j C --no-cache``); runs alternate between the tools,
and the median of ``--repeats`` runs is printed with the ratio
native / Promptfoo and the ideal (calls x latency / concurrency). Promptfoo
0.121.9 is installed into the cache first if needed.

    uv run python bench/promptfoo.py --rate 600     # both on one server enforcing 600 rpm (about a minute)

With ``--rate RPM`` the server enforces that many requests a minute (a bucket
of one second's calls, 429 past it, ``x-ratelimit-*`` headers on every answer,
as bench/judge.py's) and each tool runs once against it, at the same
concurrency: pytest-agentloop with ``--agentloop-rate=RPM``, Promptfoo with its
own adaptive scheduler (it reads the headers and backs off after a 429). Each
line gives the rate the server admitted during that tool's run, against the
limit, and the 429s it sent. Promptfoo's run is stopped after
``--rate-timeout`` seconds (90): its backoff can take minutes, and the line
then reports the calls admitted from its first call to the stop.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_agentloop.backends.promptfoo_export import Grader, dump_config, export_config
from pytest_agentloop.backends.promptfoo_install import ensure_promptfoo
from pytest_agentloop.backends.promptfoo_run import promptfoo_env
from pytest_agentloop.backends.promptfoo_targets import targets_for
from pytest_agentloop.config import JudgeApi
from pytest_agentloop.testing.fake_openai import FakeOpenAI, Reply

sys.path.insert(0, str(Path(__file__).parent))
from judge import VERDICT, make_suite

MODEL = "bench-judge"


def native_wall(root: Path, base_url: str, concurrency: int, api: str, *extra: str) -> float:
    """One ``pytest`` run grading every rubric (refresh mode)."""
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "suite", "--agentloop-judge=refresh",
        f"--agentloop-judge-base-url={base_url}", f"--agentloop-judge-model={MODEL}",
        f"--agentloop-concurrency={concurrency}", f"--agentloop-judge-api={api}", *extra,
    ]  # fmt: skip
    return _timed(command, root, {"OPENAI_API_KEY": "bench-key"}, (0,))


def promptfoo_wall(executable: Path, config: Path, concurrency: int, timeout: float | None = None) -> float:
    """One ``promptfoo eval`` run over the exported config."""
    results = config.with_name("results.json")
    command = [str(executable), "eval", "-c", str(config), "-o", str(results), "--no-cache", "--no-table",
               "--no-progress-bar", "-j", str(concurrency)]  # fmt: skip
    env = {**promptfoo_env(config.parent), "OPENAI_API_KEY": "bench-key"}
    return _timed(command, config.parent, env, (0, 100), replace_env=True, timeout=timeout)


def _timed(
    command: list[str],
    cwd: Path,
    env: dict[str, str],
    ok: tuple[int, ...],
    replace_env: bool = False,
    timeout: float | None = None,
) -> float:
    """Seconds the command took; ``inf`` when it was stopped at ``timeout``."""
    full = env if replace_env else {**os.environ, **env}
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return float("inf")
    elapsed = time.perf_counter() - start
    if done.returncode not in ok:
        raise SystemExit(f"{command[0]} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def export(root: Path, base_url: str, api: JudgeApi) -> Path:
    """The suite as a Promptfoo config pointing at ``base_url``."""
    targets = targets_for([root / "suite" / "judged.eval.yaml"], root)
    exported = export_config(targets, Grader(MODEL, base_url, api, "OPENAI_API_KEY"), "bench")
    config = root / "pf" / "promptfooconfig.yaml"
    config.parent.mkdir(exist_ok=True)
    config.write_text(dump_config(exported.config), encoding="utf-8")
    return config


def measure(args: argparse.Namespace, executable: Path, latency: float) -> None:
    """Print both walls, the ratio and the ideal at one latency."""
    responder = FakeOpenAI(lambda r: Reply(text=VERDICT, delay=latency))
    with tempfile.TemporaryDirectory() as tmp, responder as fake:
        root = Path(tmp)
        make_suite(root, args.evals)
        config = export(root, fake.base_url, JudgeApi(args.api))
        native, promptfoo = [], []
        for _ in range(args.repeats):
            before = len(fake.requests)
            native.append(native_wall(root, fake.base_url, args.concurrency, args.api))
            calls_native = len(fake.requests) - before
            before = len(fake.requests)
            promptfoo.append(promptfoo_wall(executable, config, args.concurrency))
            calls_promptfoo = len(fake.requests) - before
    ideal = args.evals * latency / args.concurrency
    ours, theirs = statistics.median(native), statistics.median(promptfoo)
    print(f"latency {latency * 1000:.0f} ms, {args.evals} rubrics, concurrency {args.concurrency}, "
          f"median of {args.repeats} (calls per run: native {calls_native}, Promptfoo {calls_promptfoo})")  # fmt: skip
    print(f"  pytest-agentloop (native judge): {ours:6.2f}s   runs {', '.join(f'{w:.2f}' for w in native)}")
    print(f"  Promptfoo 0.121.9:               {theirs:6.2f}s   runs {', '.join(f'{w:.2f}' for w in promptfoo)}")
    print(f"  ratio native / Promptfoo:        {ours / theirs:6.2f}   (issue 13 target <= 0.7 at 100 ms)")
    print(f"  ideal (calls x latency / c):     {ideal:6.2f}s")


@dataclass(frozen=True)
class Paced:
    """One tool's run against the rate-limited server: wall, calls admitted, achieved rate, 429s."""

    wall: float
    admitted: int
    rpm: float
    rejected: int
    late: int

    def line(self, name: str, limit: float) -> str:
        """``name: achieved/limit 0.95 (570 of 600 rpm), 0 429s (0 after the first second), wall 25.1s``."""
        wall = f"wall {self.wall:.1f}s" if self.wall != float("inf") else "stopped unfinished at the time limit"
        return (
            f"  {name:<32} achieved/limit {self.rpm / limit:.2f} ({self.rpm:.0f} of {limit:g} rpm), "
            f"{self.rejected} 429s ({self.late} after the first second), {self.admitted} calls, {wall}"
        )


def paced_run(fake: FakeOpenAI, run: Callable[[], float]) -> Paced:
    """Run one tool and read, from the server's own counts, what it achieved during that run only."""
    accepted_before, rejected_before = (len(times) for times in fake.rate_limited)
    wall = run()
    stopped = time.monotonic()  # the server's clock: a run stopped unfinished is measured to here
    accepted, rejected = fake.rate_limited
    mine, refused = accepted[accepted_before:], rejected[rejected_before:]
    end = stopped if wall == float("inf") else (mine[-1] if mine else stopped)
    rpm = (len(mine) - 1) / (end - mine[0]) * 60 if len(mine) > 1 and end > mine[0] else 0.0
    late = sum(1 for t in refused if mine and t > mine[0] + 1.0)
    return Paced(wall, len(mine), rpm, len(refused), late)


def rate_limited(args: argparse.Namespace, executable: Path) -> None:
    """Both tools on one server enforcing ``args.rate`` rpm: each one's achieved rate and 429 count."""
    reply = Reply(text=VERDICT, delay=args.latency_at_rate)
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(lambda r: reply, rpm=args.rate) as fake:
        root = Path(tmp)
        make_suite(root, args.evals)
        config = export(root, fake.base_url, JudgeApi(args.api))
        rate = f"--agentloop-rate={args.rate:g}"
        native = paced_run(fake, lambda: native_wall(root, fake.base_url, args.concurrency, args.api, rate))
        limit = args.rate_timeout
        promptfoo = paced_run(fake, lambda: promptfoo_wall(executable, config, args.concurrency, limit))
    print(
        f"rate-limited server: {args.rate:g} rpm (a bucket of one second's calls, 429 past it, x-ratelimit headers), "
        f"{args.evals} rubrics, concurrency {args.concurrency}, latency {args.latency_at_rate * 1000:.0f} ms"
    )
    print(native.line(f"pytest-agentloop ({rate}):", args.rate))
    print(promptfoo.line("Promptfoo 0.121.9 (adaptive):", args.rate))


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--evals", type=int, default=200)
    parser.add_argument("--latencies", default="0.1,1.0", help="seconds per call, comma-separated")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--api", choices=[a.value for a in JudgeApi], default=JudgeApi.CHAT.value)
    parser.add_argument("--rate", type=float, default=None, help="only the rate-limited comparison, at RPM")
    parser.add_argument("--latency-at-rate", type=float, default=0.1, help="seconds per call in the rate-limited run")
    parser.add_argument(
        "--rate-timeout", type=float, default=90.0, help="seconds Promptfoo may take in the rate-limited run"
    )
    args = parser.parse_args()
    executable = ensure_promptfoo(print)
    if args.rate:
        rate_limited(args, executable)
        return
    for latency in (float(x) for x in args.latencies.split(",")):
        measure(args, executable, latency)


if __name__ == "__main__":
    main()
