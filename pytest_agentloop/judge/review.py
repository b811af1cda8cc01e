"""People's verdicts and their comparison with the model judge; pruning stale verdicts.

Plain functions over eval files, trace stores and verdict stores, used by the
``agentloop`` command; nothing here imports pytest's item classes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from pytest_agentloop.config import DEFAULT_TRACES_DIRNAME, DEFAULT_VERDICTS_FILE
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.judge.verdicts import HUMAN_MODEL, Verdict, VerdictStore, human_key, now, subject_key
from pytest_agentloop.spec import EvalSpec, load_suite
from pytest_agentloop.traces.store import TraceStore, find_store_root

MAX_BYTES = 10_000_000


@dataclass(frozen=True)
class Target:
    """An eval resolved from a node id: its spec, the graded output, the store it belongs to."""

    spec: EvalSpec
    eval_file: str
    output: str
    store_path: Path


def resolve(nodeid: str, root: Path, verdicts_file: str = DEFAULT_VERDICTS_FILE) -> Target:
    """``path/to/file.eval.yaml::eval-id`` → the eval and its current output."""
    file_part, sep, eval_id = nodeid.partition("::")
    if not sep:
        raise AgentloopError(f"{nodeid!r} is not a node id; expected path/to/file.eval.yaml::<eval id>")
    path = (root / file_part).resolve()
    suite = load_suite(path, MAX_BYTES)
    spec = next((e for e in suite.evals if e.id == eval_id), None)
    if spec is None:
        raise AgentloopError(f"no eval {eval_id!r}; it has {', '.join(e.id for e in suite.evals)}", path=path)
    if not spec.rubric:
        raise AgentloopError(f"eval {eval_id!r} has no rubric to label", path=path, line=spec.line)
    store_root = suite.traces_dir or find_store_root(path.parent, DEFAULT_TRACES_DIRNAME, Path(path.anchor))
    if store_root is None:
        raise AgentloopError("no trace store found beside the eval file", path=path)
    output = TraceStore(store_root).get(spec.trace).answer
    return Target(spec, file_part, output, path.parent / verdicts_file)


def human_verdict(target: Target, *, passed: bool, score: float | None, reason: str, by: str) -> Verdict:
    """A person's verdict on the eval's current output."""
    rubric = target.spec.rubric or ""
    if score is not None and not 0.0 <= score <= 1.0:
        raise AgentloopError(f"score must be between 0 and 1, got {score}")
    return Verdict(
        key=human_key(rubric, target.output),
        subject=subject_key(rubric, target.output),
        eval_file=target.eval_file,
        eval_id=target.spec.id,
        passed=passed,
        score=(1.0 if passed else 0.0) if score is None else score,
        reason=reason,
        source=f"human:{by}",
        judge_model=HUMAN_MODEL,
        prompt_version="-",
        created=now(),
    )


@dataclass(frozen=True)
class Agreement:
    """How often the model judge agreed with people on one eval."""

    eval_id: str
    eval_file: str
    compared: int
    agreed: int


def agreement(stores: list[Path]) -> list[Agreement]:
    """Per eval, outputs graded by both a person and the model, and how many verdicts matched."""
    rows: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for path in stores:
        by_subject: dict[tuple[str, str, str], list[Verdict]] = defaultdict(list)
        for verdict in VerdictStore(path).read():
            by_subject[(verdict.eval_file, verdict.eval_id, verdict.subject)].append(verdict)
        for (eval_file, eval_id, _), verdicts in by_subject.items():
            people = [v for v in verdicts if v.is_human]
            models = [v for v in verdicts if not v.is_human]
            if people and models:
                latest = {v.sample: v for v in sorted(models, key=lambda v: v.created)}.values()
                model_pass = sum(v.passed for v in latest) * 2 > len(latest)
                row = rows[(eval_file, eval_id)]
                row[0] += 1
                row[1] += model_pass == people[-1].passed
    return [Agreement(i, f, c, a) for (f, i), (c, a) in sorted(rows.items())]


def current_subjects(eval_files: list[Path]) -> dict[tuple[str, str], str]:
    """(eval file name, eval id) → subject of the eval's current output, for every judged eval."""
    current = {}
    for path in eval_files:
        suite = load_suite(path, MAX_BYTES)
        root = suite.traces_dir or find_store_root(path.parent, DEFAULT_TRACES_DIRNAME, Path(path.anchor))
        if root is None:
            continue
        store = TraceStore(root)
        for spec in suite.evals:
            if spec.rubric and spec.trace in store:
                current[(path.name, spec.id)] = subject_key(spec.rubric, store.get(spec.trace).answer)
    return current


def prune(store_path: Path, current: dict[tuple[str, str], str]) -> int:
    """Drop verdicts whose eval or output no longer exists; returns how many went."""

    def keep(verdict: Verdict) -> bool:
        return current.get((Path(verdict.eval_file).name, verdict.eval_id)) == verdict.subject

    return VerdictStore(store_path).rewrite(keep)
