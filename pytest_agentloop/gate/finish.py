"""The end of a session, as the gate sees it: compare, decide, record the run, write CI summaries."""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from pytest_agentloop.config import GateMode, Settings
from pytest_agentloop.gate.baseline import Baseline, GateVerdict, SplitDiff, annotate, compare, decide
from pytest_agentloop.gate.history import History, RunRow
from pytest_agentloop.gate.report import markdown, terminal_lines
from pytest_agentloop.results import EvalResult, Selection


@dataclass
class GateOutcome:
    """What the gate found and did; ``results`` carry their baseline status when there is a baseline."""

    results: list[EvalResult] = field(default_factory=list)
    verdict: GateVerdict | None = None
    diffs: dict[str, SplitDiff] | None = None
    baseline_ref: str | None = None
    lacking: tuple[str, ...] = ()
    exit_status: int | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self, policy: str) -> list[tuple[str, str | None]]:
        """Terminal lines, each with a colour name or None: the comparison, the verdict and why, notes."""
        lines: list[tuple[str, str | None]] = [
            (line, None) for line in terminal_lines(self.baseline_ref, self.diffs, self.lacking)
        ]
        if self.verdict is not None:
            passed = self.verdict.passed
            lines.append((f"gate ({policy}): {'passed' if passed else 'FAILED'}", "green" if passed else "red"))
            lines += [(f"  {reason}", None) for reason in self.verdict.reasons]
            if self.verdict.excused:
                count = len(self.verdict.excused)
                lines.append(
                    (
                        f"{count} failure{'s' if count != 1 else ''} excused: already failing in baseline "
                        f"{self.baseline_ref}",
                        "yellow",
                    )
                )
                lines += [(f"  excused: {n}", None) for n in self.verdict.excused]
        return lines + [(note, None) for note in self.notes]


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def git_head(root: Path) -> tuple[str | None, str | None]:
    """The commit and the branch checked out at ``root`` (None for what git cannot tell), in one git call."""
    found = _git(root, "rev-parse", "HEAD", "--abbrev-ref", "HEAD")
    commit, _, branch = (found or "").partition("\n")
    return commit or None, branch.strip() or None


class GitHead:
    """:func:`git_head`, asked on a thread of its own when the session starts, so the end waits for no git."""

    def __init__(self, root: Path) -> None:
        self._found: tuple[str | None, str | None] = (None, None)
        self._thread = threading.Thread(target=self._ask, args=(root,), name="agentloop-git")
        self._thread.start()

    def _ask(self, root: Path) -> None:
        self._found = git_head(root)

    def result(self) -> tuple[str | None, str | None]:
        """The commit and branch (git's own timeout bounds the wait)."""
        self._thread.join()
        return self._found


def now() -> str:
    """UTC time with microseconds, ``Z`` suffix (runs a second apart still sort in order)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def judge_gate(
    settings: Settings,
    baseline: Baseline | None,
    results: list[EvalResult],
    selection: Selection,
    exit_status: int,
    outside: list[str] | None = None,
) -> GateOutcome:
    """Compare with the baseline and, in ``regressions`` mode, decide the exit status.

    ``outside`` names failures the gate cannot excuse: Python tests and collection errors.
    """
    outcome = GateOutcome(results=results, exit_status=exit_status)
    if baseline is not None:
        outcome.baseline_ref, outcome.lacking = baseline.ref, baseline.lacking
        outcome.diffs = compare(results, baseline, selection)
        outcome.results = annotate(results, outcome.diffs)
    if settings.gate is GateMode.REGRESSIONS:
        verdict = decide(results, outcome.diffs)
        extra = tuple(f"not an eval (always counts): {name}" for name in outside or [])
        outcome.verdict = GateVerdict(verdict.passed and not extra, verdict.reasons + extra, verdict.excused)
        if outcome.verdict.passed and exit_status == 1:
            outcome.exit_status = 0  # only pre-existing failures: reported, not failing
    return outcome


def harness_version(settings: Settings, root: Path) -> str | None:
    """The ``version`` of the configured harness file, if any."""
    if not settings.harness:
        return None
    try:
        data = yaml.safe_load((root / settings.harness).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return str(data.get("version")) if isinstance(data, dict) and data.get("version") else None


def record_run(
    settings: Settings,
    history: History,
    root: Path,
    run: RunInfo,
    results: list[EvalResult],
    selection: Selection,
    exit_status: int,
    head: GitHead | None = None,
) -> None:
    """One transaction: the run, every result and the selection; raises HistoryError.

    ``head``: the commit and branch looked up when the session started (else looked up now).
    """
    commit, branch = head.result() if head is not None else git_head(root)
    row = RunRow(
        run_id=run.run_id,
        started=run.started,
        finished=now(),
        git_commit=commit,
        git_branch=branch,
        harness_version=harness_version(settings, root),
        options=run.options,
        exit_status=exit_status,
        counts={},
        baseline_ref=run.baseline_ref,
    )
    history.record(row, results, selection)


@dataclass(frozen=True)
class RunInfo:
    """What the history keeps about a session besides its results."""

    run_id: str
    started: str
    options: dict[str, object]
    baseline_ref: str | None = None


def write_summaries(
    settings: Settings, root: Path, results: list[EvalResult], outcome: GateOutcome, handoff: Path | None
) -> list[Path]:
    """The markdown summary: appended to $GITHUB_STEP_SUMMARY when set, and written to --agentloop-report."""
    text = markdown(results, outcome.baseline_ref, outcome.diffs, outcome.verdict, handoff)
    written = []
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(text)
        written.append(Path(step_summary))
    if settings.report:
        from pytest_agentloop.fileio import write_atomic

        path = Path(settings.report)
        written.append(write_atomic(path if path.is_absolute() else root / path, text))
    return written
