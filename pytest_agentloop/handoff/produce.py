"""Producing a handoff: context file, HALO or the evidence-only fallback, checks, files on disk.

The test outcome never depends on this: every failure here ends in a written
evidence-only handoff (or a kept draft) and a line in the terminal summary.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_agentloop.fileio import copy_atomic, open_atomic, write_atomic
from pytest_agentloop.handoff.context import DATASET_CONTEXT, Evidence, write_context
from pytest_agentloop.handoff.halo import HaloSettings, build_prompt, run_halo
from pytest_agentloop.handoff.report import RunInfo, check_report, evidence_handoff, header

Say = Callable[[str], None]


@dataclass
class HandoffOutcome:
    """Where things were written and what happened."""

    handoff: Path | None = None
    draft: Path | None = None
    context: Path | None = None
    run_dir: Path | None = None
    diagnosis: str = ""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> list[tuple[str, str | None]]:
        """Terminal lines, each with a colour name or None."""
        lines: list[tuple[str, str | None]] = [
            (f"handoff ({self.diagnosis}): {self.handoff}", None),
            (f"optimization context: {self.context}", None),
        ]
        if self.draft is not None:
            missing = "; ".join(self.problems)
            lines.append((f"HALO's report was kept as a draft ({self.draft}); missing: {missing}", "yellow"))
        return lines + [(f"note: {note}", None) for note in self.notes]


def holdout_note(evidence: Evidence) -> str:
    """What the prompt says about the holdout set."""
    count = len(evidence.results) - len(evidence.visible_results())
    if not count:
        return "There is no holdout set in this run."
    return (
        f"{count} holdout evals are deliberately left out of the dataset except as counts in GATE_SUMMARY; "
        "do not speculate about them individually."
    )


def write_run_files(run_dir: Path, run: RunInfo, evidence: Evidence, context_text: str | None = None) -> None:
    """Keep what a later `agentloop handoff RUN_DIR` needs: results, the config used (and the context, if given)."""
    if context_text is not None:
        write_atomic(run_dir / "context.jsonl", context_text)
    write_atomic(run_dir / "results.json", json.dumps([r.to_json() for r in evidence.results], indent=2) + "\n")
    meta: dict[str, Any] = {
        "run_id": run.run_id,
        "harness_version": run.harness_version,
        "command": run.command,
        "harness": evidence.harness,
        "feedback": list(evidence.feedback),
        **evidence.extra,
    }
    write_atomic(run_dir / "run.json", json.dumps(meta, indent=2, default=str) + "\n")


def save_context(
    evidence: Evidence, run_dir: Path, target: Path, text: str | None = None, file: Path | None = None
) -> Path:
    """``run_dir/context.jsonl`` (what HALO reads) and its copy beside ``target``; returns the copy."""
    saved = run_dir / "context.jsonl"
    if text is not None:
        write_atomic(saved, text)
    elif file is None:
        with open_atomic(saved) as handle:
            write_context(evidence, handle, spool_dir=run_dir)
    elif file.resolve() != saved.resolve():
        copy_atomic(file, saved)
    copy = target.with_suffix(".context.jsonl")
    return copy if copy.resolve() == saved.resolve() else copy_atomic(saved, copy)


def produce(
    evidence: Evidence,
    run: RunInfo,
    target: Path,
    run_dir: Path,
    halo: HaloSettings | None,
    say: Say,
    why_no_halo: str = "",
    context_text: str | None = None,
    *,
    context_file: Path | None = None,
) -> HandoffOutcome:
    """Write the context beside ``target``, then the HALO handoff, or the evidence-only one.

    The context is ``context_text``, or the file ``context_file`` (a saved
    run's), or else written from ``evidence`` as a stream into
    ``run_dir/context.jsonl``; the copy beside ``target`` is copied from it.
    """
    outcome = HandoffOutcome(run_dir=run_dir)
    outcome.context = save_context(evidence, run_dir, target, context_text, context_file)
    write_run_files(run_dir, run, evidence)
    report = None
    if halo is None:
        why = why_no_halo
    else:
        report, why = _diagnose(outcome, run_dir / "context.jsonl", halo, holdout_note(evidence), say)
    if report is not None:
        outcome.problems = check_report(report)
        document = header(run, evidence, f"HALO ({halo.model if halo else ''})") + "\n" + report.strip() + "\n"
        if not outcome.problems:
            outcome.diagnosis = "HALO"
            outcome.handoff = write_atomic(target, document)
            write_atomic(run_dir / "handoff.md", document)
            return outcome
        outcome.draft = write_atomic(target.with_suffix(".draft.md"), document)
        missing = "; ".join(outcome.problems)
        why = f"HALO's report failed the section checks ({missing}); draft kept at {outcome.draft}"
    outcome.diagnosis = "evidence only"
    document = evidence_handoff(run, evidence, why)
    outcome.handoff = write_atomic(target, document)
    write_atomic(run_dir / "handoff.md", document)
    return outcome


def _diagnose(
    outcome: HandoffOutcome, context: Path, halo: HaloSettings, note: str, say: Say
) -> tuple[str | None, str]:
    started = time.monotonic()
    say(f"agentloop: running HALO ({halo.model}) over {context}; time budget {halo.timeout:g}s")

    def on_step(steps: int) -> None:
        say(f"agentloop: HALO step {steps}, {time.monotonic() - started:.0f}s elapsed")

    result = run_halo(context, halo, build_prompt(note), DATASET_CONTEXT, on_step)
    if result.sandbox_unavailable:
        outcome.notes.append(
            "HALO's optional code sandbox (Deno/Pyodide) is unavailable here; HALO ran without "
            "run_code, which diagnosis does not need"
        )
    return result.report, result.error or ""
