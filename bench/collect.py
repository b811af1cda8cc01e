"""Collection speed: pytest collecting N generated evals vs PyYAML alone loading the same files.

    uv run python bench/collect.py [--evals 10000] [--per-file 100] [--repeats 3]

Prints the median wall time of each over the repeats and their ratio (target:
under 1.5). Both sides use libyaml's C loader where it is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import pytest
import yaml

EVAL = """  - id: eval-{n}
    title: Generated eval number {n}
    trace: trace-01
    tags: [bench, group_{g}]
    scoring: deterministic
    expected: The answer names the runway.
    assert:
      - {{type: icontains, value: runway, weight: 2, metric: facts}}
      - {{type: not-contains, value: "18 months"}}
      - {{type: regex, value: '\\b11 months'}}
"""


def make_suite(root: Path, evals: int, per_file: int) -> list[Path]:
    """Write the eval files and a one-run trace store under ``root``."""
    run = root / "traces" / "runs" / "trace-01"
    run.mkdir(parents=True)
    record = {
        "trace_id": "ab" * 16,
        "label": "trace-01",
        "question": "q",
        "harness_version": "v1",
        "model": None,
        "created": "2026-01-01T00:00:00Z",
    }
    (run / "record.json").write_text(json.dumps(record))
    (run / "answer.md").write_text("runway is 11 months")
    (root / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    files = []
    for index in range(0, evals, per_file):
        body = "".join(EVAL.format(n=n, g=n % 10) for n in range(index, min(evals, index + per_file)))
        path = root / f"suite_{index // per_file:05d}.eval.yaml"
        path.write_text("agentloop: 1\nevals:\n" + body)
        files.append(path)
    return files


def time_yaml(files: list[Path], pause_gc: bool = False) -> float:
    """Seconds PyYAML's safe C loader takes to load every file (optionally with GC paused)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    start = time.perf_counter()
    for path in files:
        if pause_gc:
            gc.disable()
        yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        gc.enable()
    return time.perf_counter() - start


def time_collect(root: Path, expected: int) -> float:
    """Seconds ``pytest --collect-only`` takes in this process, startup excluded as far as it can be."""
    sink = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(sink):
        code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", str(root)])
    elapsed = time.perf_counter() - start
    if code != 0 or f"{expected} tests collected" not in sink.getvalue():
        raise SystemExit(f"collection failed (exit {code}):\n{sink.getvalue()[-2000:]}")
    return elapsed


def main() -> None:
    """Generate, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=10_000)
    parser.add_argument("--per-file", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = make_suite(root, args.evals, args.per_file)
        time_collect(root, args.evals)  # warm imports and the file cache
        baseline = time_collect_empty(root)
        yaml_times = [time_yaml(files) for _ in range(args.repeats)]
        paused_times = [time_yaml(files, pause_gc=True) for _ in range(args.repeats)]
        collect_times = [time_collect(root, args.evals) for _ in range(args.repeats)]
    yaml_median = statistics.median(yaml_times)
    collect_median = statistics.median(collect_times)
    print(f"evals: {args.evals} in {len(files)} files; libyaml: {hasattr(yaml, 'CSafeLoader')}")
    print(f"PyYAML safe load alone:      median {yaml_median:.3f}s over {args.repeats} runs")
    paused_median = statistics.median(paused_times)
    print(f"PyYAML, GC paused per file:  median {paused_median:.3f}s (the plugin parses this way)")
    print(f"pytest --collect-only:       median {collect_median:.3f}s over {args.repeats} runs")
    print(f"  of which pytest start-up with no eval files: {baseline:.3f}s")
    print(f"ratio collection / PyYAML:   {collect_median / yaml_median:.2f}  (target < 1.5)")
    print(f"ratio without start-up:      {(collect_median - baseline) / yaml_median:.2f}")
    print(f"ratio vs GC-paused PyYAML:   {collect_median / paused_median:.2f}")


def time_collect_empty(root: Path) -> float:
    """Seconds pytest takes to start and collect nothing (the fixed cost)."""
    empty = root / "empty"
    empty.mkdir()
    sink = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(sink):
        pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", str(empty)])
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
