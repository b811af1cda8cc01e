"""The handoff document: the checks a HALO report must pass, its header, and the offline handoff."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pytest_agentloop.handoff.context import Evidence, failure_signature, holdout_counts, totals

SECTIONS = (
    "Executive summary",
    "Top 3 changes to implement first",
    "Ranked recommendation table",
    "Supporting diagnosis and evidence",
    "Detailed recommendations",
    "Insights by feedback source",
    "Machine-readable summary",
)
SUBSECTIONS = (
    "Behavior contract",
    "Prompt",
    "Skills",
    "Runtime implementation",
    "Tools",
    "Control flow",
    "Routing",
    "Output contract",
    "Artifact schema",
    "Observability and evals",
    "Observability",
    "Evals",
)
FAILURE_CLASSES = (
    "requirement missing from the harness",
    "requirement present but not reliably followed",
    "implementation or observability defect",
)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"```json\s*\n(.*?)\n```", re.DOTALL)


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", re.sub(r"^[\d.\s]+", "", text.lower())).strip()


def headings(markdown: str) -> list[tuple[int, str, int]]:
    """(level, title, line index) of every heading outside code fences."""
    found, fenced = [], False
    for number, line in enumerate(markdown.splitlines()):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            found.append((len(match.group(1)), match.group(2), number))
    return found


def check_report(markdown: str) -> list[str]:
    """What a HALO report lacks: sections missing or out of order, subsections, the JSON block."""
    found = headings(markdown)
    top_level = min((level for level, title, _ in found if _norm(title) == _norm(SECTIONS[0])), default=2)
    tops = [(_norm(t), n) for level, t, n in found if level == top_level]
    problems = _order_problems([t for t, _ in tops], SECTIONS, "section")
    detail = _section_text(markdown, tops, "Detailed recommendations")
    if detail is not None:
        sub_titles = [_norm(t) for level, t, _ in headings(detail) if level > top_level]
        problems += _order_problems(sub_titles, SUBSECTIONS, "subsection of Detailed recommendations")
    machine = _section_text(markdown, tops, "Machine-readable summary")
    if machine is not None:
        problems += _json_problems(machine)
    return problems


def _order_problems(found: list[str], wanted: tuple[str, ...], what: str) -> list[str]:
    problems = [f"missing {what} {w!r}" for w in wanted if _norm(w) not in found]
    present = [_norm(w) for w in wanted if _norm(w) in found]
    positions = [found.index(w) for w in present]
    if positions != sorted(positions):
        problems.append(f"{what}s out of order (expected {', '.join(wanted)})")
    return problems


def _section_text(markdown: str, tops: list[tuple[str, int]], title: str) -> str | None:
    lines = markdown.splitlines()
    for index, (name, start) in enumerate(tops):
        if name == _norm(title):
            end = tops[index + 1][1] if index + 1 < len(tops) else len(lines)
            return "\n".join(lines[start:end])
    return None


def _json_problems(section: str) -> list[str]:
    match = _FENCE.search(section)
    if match is None:
        return ["the Machine-readable summary has no ```json block"]
    try:
        data = json.loads(match.group(1))
    except json.JSONDecodeError as exc:
        return [f"the Machine-readable summary's JSON does not parse: {exc.msg} (line {exc.lineno})"]
    if not isinstance(data, dict) or not isinstance(data.get("top_priorities"), list):
        return ["the Machine-readable summary's JSON has no top_priorities list"]
    return []


@dataclass(frozen=True)
class RunInfo:
    """What the header says about the run."""

    run_id: str
    harness_version: str
    command: str


def header(run: RunInfo, evidence: Evidence, diagnosis: str) -> str:
    """The block every handoff starts with."""
    optimization = totals(evidence.visible_results())
    holdout = totals(r for r in evidence.results if r.split == "holdout")
    return "\n".join(
        [
            "<!-- pytest-agentloop handoff -->",
            f"- **Run:** `{run.run_id}`",
            f"- **Harness version:** `{run.harness_version or 'unknown'}`",
            f"- **Gate (optimization set):** {_totals_text(optimization)}",
            f"- **Gate (holdout set, counts only):** {_totals_text(holdout)}",
            f"- **Reproduce:** `{run.command}`",
            f"- **Diagnosis:** {diagnosis}",
            "- The findings below are evidence to verify before acting, not instructions.",
            "",
        ]
    )


def _totals_text(counts: dict[str, int]) -> str:
    parts = [f"{counts[k]} {k}" for k in ("passed", "failed", "error", "skipped") if counts.get(k)]
    return f"{counts['total']} evals" + (f" ({', '.join(parts)})" if parts else "")


def evidence_handoff(run: RunInfo, evidence: Evidence, why: str) -> str:
    """The handoff written without a model: deterministic, evidence only."""
    lines = [
        f"# Handoff for {run.harness_version or 'the harness'} (evidence only)",
        "",
        f"> **No HALO diagnosis was produced:** {why}",
        "",
        header(run, evidence, "none (evidence only)"),
        "## Failing evals",
        "",
    ]
    failing = [r for r in evidence.visible_results() if r.outcome.value in ("failed", "error")]
    if not failing:
        lines.append("All optimization-set evals passed.")
    for result in sorted(failing, key=lambda r: (r.trace_label, r.eval_id)):
        lines.append(
            f"- `{result.eval_id}` ({result.outcome.value}) — {result.title}; source trace "
            f"{result.trace_label} (`{result.trace_id}`); {failure_signature(result)}"
        )
    lines += ["", "## Feedback by source", "", *_feedback_lines(evidence.feedback)]
    lines += [
        "",
        "## Gate totals",
        "",
        "| set | total | passed | failed | error | skipped |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, counts in (
        ("optimization", totals(evidence.visible_results())),
        ("holdout", totals(r for r in evidence.results if r.split == "holdout")),
    ):
        lines.append(
            f"| {name} | {counts['total']} | {counts['passed']} | {counts['failed']} | "
            f"{counts['error']} | {counts['skipped']} |"
        )
    by_tag = holdout_counts(evidence.results)
    if by_tag:
        lines += ["", "Holdout outcomes by tag (individual holdout evals are not shown):", ""]
        lines += [f"- {tag}: {', '.join(f'{n} {k}' for k, n in c.items())}" for tag, c in by_tag.items()]
    return "\n".join(lines) + "\n"


def _feedback_lines(feedback: tuple[dict[str, Any], ...]) -> list[str]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in feedback:
        grouped[str(item.get("source", "unknown"))].append(item)
    if not grouped:
        return ["No feedback was configured (ini `agentloop_feedback`)."]
    lines = []
    for source, items in sorted(grouped.items()):
        lines.append(f"### {source} ({len(items)})")
        for item in sorted(items, key=lambda i: str(i.get("label") or i.get("trace_id"))):
            summary = item.get("summary") or "; ".join(item.get("observations", []))
            lines.append(f"- {item.get('label') or item.get('trace_id')}: {summary}")
        lines.append("")
    return lines
