"""The gate in words: terminal lines and the markdown summary for CI (GitHub step summary, --agentloop-report)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pytest_agentloop.gate.baseline import GateVerdict, SplitDiff
from pytest_agentloop.results import EvalResult

LABELS = {
    "regressions": "newly failing (regressions)",
    "newly_passing": "newly passing",
    "still_failing": "still failing",
    "new": "new evals",
    "removed": "removed evals",
    "flaky": "flaky",
    "not_in_baseline": "not run in baseline",
}


def terminal_lines(
    baseline_ref: str | None, diffs: dict[str, SplitDiff] | None, lacking: tuple[str, ...] = ()
) -> list[str]:
    """The baseline used (and what it lacked), per split the counts, then the regressions and new passes by name."""
    if diffs is None:
        return []
    lines = [f"baseline: {baseline_ref}"]
    if lacking:
        lines.append(f"  the baseline run has no result for {len(lacking)} of the selected evals:")
        lines += [f"    {n}" for n in lacking]
    for split, diff in sorted(diffs.items()):
        counts = diff.counts()
        lines.append(f"{split}: " + ", ".join(f"{counts[k]} {LABELS[k]}" for k in LABELS))
        lines += [f"  regression: {n}" for n in diff.regressions]
        lines += [f"  newly passing: {n}" for n in diff.newly_passing]
    return lines


def markdown(
    results: list[EvalResult],
    baseline_ref: str | None,
    diffs: dict[str, SplitDiff] | None,
    verdict: GateVerdict | None,
    handoff: Path | None,
) -> str:
    """The gate summary as markdown."""
    counts = Counter(r.outcome.value for r in results)
    status = "" if verdict is None else (" — gate **passed**" if verdict.passed else " — gate **failed**")
    lines = [
        f"## agentloop: {len(results)} evals{status}",
        "",
        "| passed | failed | error | skipped |",
        "| --- | --- | --- | --- |",
        f"| {counts['passed']} | {counts['failed']} | {counts['error']} | {counts['skipped']} |",
        "",
    ]
    if diffs is not None:
        lines += [
            f"Compared with baseline `{baseline_ref}`.",
            "",
            "| split | " + " | ".join(LABELS.values()) + " |",
            "| --- " * (len(LABELS) + 1) + "|",
        ]
        for split, diff in sorted(diffs.items()):
            lines.append(f"| {split} | " + " | ".join(str(len(getattr(diff, k))) for k in LABELS) + " |")
        lines.append("")
        for split, diff in sorted(diffs.items()):
            lines += [f"- :x: regression ({split}): `{n}`" for n in diff.regressions]
            lines += [f"- :white_check_mark: newly passing ({split}): `{n}`" for n in diff.newly_passing]
    if verdict is not None and not verdict.passed:
        lines += ["", "Why the gate failed:", *[f"- {reason}" for reason in verdict.reasons]]
    if handoff is not None:
        lines += ["", f"Handoff: `{handoff}`"]
    return "\n".join(lines) + "\n"
