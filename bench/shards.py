"""Shard balance: how close the slowest of N shards comes to the ideal (total / N).

    uv run python bench/shards.py [--evals 300] [--shards 4] [--seed 1]

A suite whose evals have recorded durations of very different lengths (judge-only
evals of a fraction of a second, live runs of seconds to minutes; three evals
share each live question, so they must land together; a tenth have no recorded
duration and count as the mean). Prints the planned seconds per shard, the
ideal, and the ratio slowest/ideal (goal: under 1.1 at N=4), for several seeds.
"""

from __future__ import annotations

import argparse
import random
import statistics

from pytest_agentloop.gate.shards import plan, units

KINDS = ((0.3, 0.5), (2.0, 0.25), (20.0, 0.15), (90.0, 0.10))  # seconds, share of evals


def suite(evals: int, seed: int) -> tuple[dict[str, str], dict[str, float]]:
    """Node id -> question key, and recorded durations (some missing)."""
    rng = random.Random(seed)
    groups = {f"evals/suite.eval.yaml::e{n:04d}": f"question-{n // 3:04d}" for n in range(evals)}
    durations: dict[str, float] = {}
    for nodeid in groups:
        if rng.random() < 0.1:
            continue
        base = rng.choices([k for k, _ in KINDS], weights=[w for _, w in KINDS])[0]
        durations[nodeid] = base * rng.uniform(0.5, 1.5)
    return groups, durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=300)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    ratios = []
    for seed in range(1, args.seeds + 1):
        groups, durations = suite(args.evals, seed)
        result = plan(units(groups, durations), args.shards)
        ideal = sum(result.loads) / args.shards
        loads = ", ".join(f"{load:.0f}" for load in result.loads)
        print(f"seed {seed}: shards [{loads}] s, ideal {ideal:.0f} s, slowest/ideal {result.balance:.3f}")
        ratios.append(result.balance)
    print(f"median slowest/ideal at N={args.shards}: {statistics.median(ratios):.3f} (goal < 1.1)")


if __name__ == "__main__":
    main()
