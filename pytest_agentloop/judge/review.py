"""People's verdicts and their comparison with the model judge; pruning and migrating verdict stores.

Plain functions over eval files, trace stores and verdict stores, used by the
``agentloop`` command; nothing here imports pytest's item classes. Evals are
identified by their full path and id (two folders may hold files of the same
name), and a store is only ever changed through :class:`VerdictStore`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from pytest_agentloop.config import DEFAULT_ARTIFACTS_DIR, DEFAULT_VERDICTS_FILE, current_settings
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.judge.keys import (
    HUMAN_MODEL,
    KEY_VERSION,
    JudgeInputs,
    human_key,
    legacy_subject_key,
    model_key,
    subject_key,
)
from pytest_agentloop.judge.verdicts import Verdict, VerdictStore, eval_path_of, now
from pytest_agentloop.recordings import default_lock_dir
from pytest_agentloop.spec import EvalSpec, load_suite
from pytest_agentloop.traces.store import TraceStore, find_store_root

INI_FILES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")
EvalRef = tuple[Path, str]


def locks_for(store_path: Path) -> Path:
    """The lock folder pytest uses for this store: ``<rootdir>/.agentloop/locks``.

    The rootdir is taken as the nearest folder above the store holding a pytest
    ini file (pytest's own rule for a run started at the repository root).
    """
    for folder in store_path.resolve().parents:
        if any((folder / name).is_file() for name in INI_FILES):
            return folder / DEFAULT_ARTIFACTS_DIR / "locks"
    return default_lock_dir()


def store(path: Path) -> VerdictStore:
    """The verdict store at ``path``, locking where pytest does."""
    return VerdictStore(path, locks_for(path))


@dataclass(frozen=True)
class Target:
    """An eval resolved from a node id: its spec, the graded output, the store it belongs to."""

    spec: EvalSpec
    eval_file: str
    output: str
    store_path: Path

    @property
    def inputs(self) -> JudgeInputs:
        """What a person labelling it judges."""
        return JudgeInputs(self.spec.rubric or "", self.spec.expected, self.output)


def resolve(nodeid: str, root: Path, verdicts_file: str = DEFAULT_VERDICTS_FILE) -> Target:
    """``path/to/file.eval.yaml::eval-id`` → the eval and its current output."""
    file_part, sep, eval_id = nodeid.partition("::")
    if not sep:
        raise AgentloopError(f"{nodeid!r} is not a node id; expected path/to/file.eval.yaml::<eval id>")
    path = (root / file_part).resolve()
    if not path.is_file():
        raise AgentloopError("no such eval file", path=path)
    suite = load_suite(path, current_settings().max_eval_file_bytes)
    spec = next((e for e in suite.evals if e.id == eval_id), None)
    if spec is None:
        raise AgentloopError(f"no eval {eval_id!r}; it has {', '.join(e.id for e in suite.evals)}", path=path)
    if not spec.rubric:
        raise AgentloopError(f"eval {eval_id!r} has no rubric to label", path=path, line=spec.line)
    output = _trace_store(path, suite.traces_dir).get(spec.trace).answer
    return Target(spec, file_part, output, path.parent / verdicts_file)


def _trace_store(path: Path, explicit: Path | None) -> TraceStore:
    root = explicit or find_store_root(path.parent, current_settings().traces_dirname, Path(path.anchor))
    if root is None:
        raise AgentloopError("no trace store found beside the eval file", path=path)
    return TraceStore(root)


def human_verdict(target: Target, *, passed: bool, score: float | None, reason: str, by: str) -> Verdict:
    """A person's verdict on the eval's current output (keyed on rubric, expected and output)."""
    if score is not None and not 0.0 <= score <= 1.0:
        raise AgentloopError(f"score must be between 0 and 1, got {score}")
    if not by.strip():
        raise AgentloopError("--by must name who is labelling")
    inputs = target.inputs
    return Verdict(
        key=human_key(inputs),
        subject=subject_key(inputs),
        eval_file=target.eval_file,
        eval_id=target.spec.id,
        passed=passed,
        score=(1.0 if passed else 0.0) if score is None else score,
        reason=reason,
        source=f"human:{by}",
        judge_model=HUMAN_MODEL,
        prompt_version="-",
        created=now(),
        inputs=tuple(sorted(inputs.digests(model=False).items())),
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


def evals_beside(store_path: Path) -> dict[EvalRef, JudgeInputs]:
    """(full eval file path, eval id) → current inputs, for every judged eval in the store's folder.

    Every eval file of the folder counts, whichever paths the command was given;
    an eval file that cannot be read is an error (what it uses is unknown).
    """
    current: dict[EvalRef, JudgeInputs] = {}
    folder = store_path.parent
    settings = current_settings()  # inside `agentloop`: the ini pytest reads there
    for path in sorted({p for pattern in settings.eval_patterns for p in folder.glob(pattern)}):
        suite = load_suite(path, settings.max_eval_file_bytes)
        traces = _trace_store(path, suite.traces_dir) if any(e.rubric for e in suite.evals) else None
        for spec in suite.evals:
            if spec.rubric and traces is not None and spec.trace in traces:
                output = traces.get(spec.trace).answer
                current[(path.resolve(), spec.id)] = JudgeInputs(spec.rubric, spec.expected, output)
    return current


def _ref(store_path: Path, verdict: Verdict) -> EvalRef:
    return (eval_path_of(store_path, verdict).resolve(), verdict.eval_id)


def in_use(store_path: Path, verdict: Verdict, current: dict[EvalRef, JudgeInputs]) -> bool:
    """Whether an eval of the folder still grades the subject this verdict is on."""
    inputs = current.get(_ref(store_path, verdict))
    if inputs is None:
        return False
    if verdict.legacy:
        return verdict.subject == legacy_subject_key(inputs.rubric, inputs.output)
    return verdict.subject == subject_key(inputs)


def subjects_beside(store_path: Path) -> dict[EvalRef, set[str]]:
    """(full eval file path, eval id) → the subjects its rubric has over every trace store of the folder.

    A suite may keep more than one store beside its eval files (a candidate harness's runs in
    ``traces-candidate/``, graded with ``--agentloop-traces``): a verdict on any of them is in use.
    """
    subjects: dict[EvalRef, set[str]] = defaultdict(set)
    folder = store_path.parent
    settings = current_settings()
    stores = [TraceStore(runs.parent) for runs in sorted(folder.glob("*/runs")) if runs.is_dir()]
    for path in sorted({p for pattern in settings.eval_patterns for p in folder.glob(pattern)}):
        suite = load_suite(path, settings.max_eval_file_bytes)
        own = [_trace_store(path, suite.traces_dir)] if any(e.rubric for e in suite.evals) else []
        for spec in suite.evals:
            for traces in (own + stores) if spec.rubric else []:
                if spec.trace in traces:
                    inputs = JudgeInputs(spec.rubric or "", spec.expected, traces.get(spec.trace).answer)
                    subjects[(path.resolve(), spec.id)].update(
                        {subject_key(inputs), legacy_subject_key(inputs.rubric, inputs.output)}
                    )
    return subjects


def prune(store_path: Path) -> int:
    """Drop verdicts no eval of the folder uses any more, on any of the folder's trace stores; returns how many."""
    current = subjects_beside(store_path)
    return store(store_path).rewrite(lambda v: v.subject in current.get(_ref(store_path, v), set()))


@dataclass
class Migration:
    """What ``verdicts migrate`` did to one store."""

    migrated: int = 0
    current: int = 0
    stale: int = 0


def rekey(verdict: Verdict, inputs: JudgeInputs) -> Verdict:
    """A key-version-1 verdict under today's key, its inputs unchanged."""
    is_model = not verdict.is_human
    key = model_key(inputs, verdict.judge_model, verdict.prompt_version) if is_model else human_key(inputs)
    digests = tuple(sorted(inputs.digests(model=is_model).items()))
    return replace(verdict, key=key, subject=subject_key(inputs), key_version=KEY_VERSION, inputs=digests)


def migrate(store_path: Path) -> Migration:
    """Re-key the key-version-1 verdicts whose eval still has the rubric and output they were given on."""
    current = evals_beside(store_path)
    verdicts = store(store_path).read()
    done, moved = Migration(), []
    for verdict in verdicts:
        if not verdict.legacy:
            done.current += 1
        elif in_use(store_path, verdict, current):
            moved.append(verdict)
        else:
            done.stale += 1
    if moved:
        target = store(store_path)
        target.append(rekey(v, current[_ref(store_path, v)]) for v in moved)
        gone = {_identity(v) for v in moved}
        target.rewrite(lambda v: _identity(v) not in gone)
    done.migrated = len(moved)
    return done


def _identity(verdict: Verdict) -> tuple[str, int, str, int, str]:
    return (verdict.key, verdict.key_version, verdict.source, verdict.sample, verdict.created)


def stores_in(paths: Iterable[Path], file_name: str) -> list[Path]:
    """Verdict files in the folders of ``paths``."""
    return sorted({p.parent / file_name for p in paths if (p.parent / file_name).is_file()})
