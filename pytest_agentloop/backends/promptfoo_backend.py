"""One Promptfoo run over a session's selected evals, turned into one outcome per eval.

Stored verdicts come first, as for the native judge: a person's verdict always,
a stored model verdict in record mode; replay mode never grades. The rest goes
to ``promptfoo eval`` with the grader behind :class:`GraderTap`, and each
answer is judged by this project's rules: an HTTP error, an unreachable
endpoint, a non-JSON answer or one without ``pass``/``score``/``reason`` is an
**error** naming the eval, whatever Promptfoo made of it. Good verdicts are
stored with source ``promptfoo:<grader>``. A ``hybrid`` eval whose assertions fail
(checked here first, with the built-in types) needs no rubric: it is not sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pytest_agentloop.assertions.registry import BUILTIN
from pytest_agentloop.backends.promptfoo_export import ExportTarget, Grader, dump_config, export_config
from pytest_agentloop.backends.promptfoo_run import Component, Row, promptfoo_env, read_results, run_eval
from pytest_agentloop.backends.promptfoo_tap import Exchange, GraderTap, prompt_key
from pytest_agentloop.backends.promptfoo_verdicts import promptfoo_verdict, store_verdicts, stored_rubric
from pytest_agentloop.collect import NOT_ASKED
from pytest_agentloop.config import JudgeMode
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.evaluate import evaluate_literals
from pytest_agentloop.judge.endpoint import DEFAULT_BASE_URL
from pytest_agentloop.judge.planner import RubricOutcome
from pytest_agentloop.judge.rubric import JudgeAnswerError, ParsedVerdict, build_prompt, parse_verdict
from pytest_agentloop.judge.verdicts import Verdict
from pytest_agentloop.spec import Scoring

Say = Callable[[str], None]


@dataclass(frozen=True)
class Job:
    """One selected eval: what to export and where its verdicts live."""

    target: ExportTarget
    store_path: Path

    @property
    def nodeid(self) -> str:
        """The eval's node id."""
        return self.target.nodeid


@dataclass(frozen=True)
class Rubric:
    """The rubric part of an outcome (JSON-safe)."""

    passed: bool
    score: float
    reason: str
    source: str
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class Outcome:
    """How one eval ended under the backend (JSON-safe, shared with xdist workers)."""

    nodeid: str
    status: str  # passed, failed, error, skipped
    message: str = ""
    score: float | None = None
    components: tuple[Component, ...] = field(default_factory=tuple)
    rubric: Rubric | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        """Inverse of ``asdict``."""
        rubric = Rubric(**data["rubric"]) if data.get("rubric") else None
        return cls(**{**data, "components": tuple(Component(**c) for c in data["components"]), "rubric": rubric})


@dataclass(frozen=True)
class Settings:
    """What the run needs from the session's settings."""

    mode: JudgeMode
    model: str
    base_url: str | None
    grader: Grader
    concurrency: int


def _from_store(job: Job, settings: Settings) -> RubricOutcome | None:
    spec = job.target.spec
    if not (spec.scoring.needs_judge and spec.rubric) or settings.mode is JudgeMode.OFF:
        return None
    with_model = settings.mode is not JudgeMode.REFRESH
    return stored_rubric(job.store_path, job.target.judge_inputs(), settings.model, spec.threshold, with_model)


def _assertions_fail(target: ExportTarget) -> bool:
    """Whether a ``hybrid`` eval's assertions fail, so its rubric need not be graded (False when unsure).

    Runs on the backend's thread, where no time limit can stop a check and no conftest's types are active:
    only evals whose assertions are all built-in types are checked; one that cannot be is graded as before.
    """
    spec = target.spec
    if spec.scoring is not Scoring.HYBRID or not spec.assertions:
        return False
    if not all(BUILTIN.lookup(a.type) for a in spec.assertions):
        return False
    try:
        verdict = evaluate_literals(spec, target.output, target.artifacts_dir, target.dataroom_dir)
    except AgentloopError:
        return False
    return not verdict.passed


def _rubric(outcome: RubricOutcome) -> Rubric:
    return Rubric(outcome.passed, outcome.score, outcome.reason, outcome.source)


def _key(target: ExportTarget) -> str:
    """The tap's key of this eval's grading prompt."""
    i = target.judge_inputs()
    prompt = build_prompt(i.rubric, i.output, i.expected, i.question, i.context)
    return prompt_key(prompt.system, prompt.user)


def judge_answer(exchange: Exchange | None, url: str) -> ParsedVerdict | str:
    """The grader's verdict, or what was wrong with its answer (this project's rules, not Promptfoo's)."""
    if exchange is None:
        return "Promptfoo's grader made no request for this rubric"
    if exchange.error is not None:
        return f"could not reach judge endpoint {url}: {exchange.error}"
    if exchange.status is None or exchange.status >= 400:
        return f"judge endpoint {url} answered HTTP {exchange.status}: {exchange.body[:300]}"
    text = exchange.answer_text()
    if text is None:
        return f"judge endpoint {url} sent a malformed response: {exchange.body[:300]!r}"
    try:
        return parse_verdict(text, strict=False)
    except JudgeAnswerError as exc:
        return str(exc)


class BackendRun:
    """Plans, runs Promptfoo once, and decides every job's outcome."""

    def __init__(self, jobs: list[Job], settings: Settings, work: Path, executable: Path, say: Say) -> None:
        self.jobs, self.settings, self.work, self.executable, self.say = jobs, settings, work, executable, say
        self.stored: dict[str, RubricOutcome | None] = {j.nodeid: _from_store(j, settings) for j in jobs}
        self.new_verdicts: list[tuple[Path, Verdict]] = []
        self.not_asked: set[str] = set()
        """Hybrid evals whose assertions failed here first: their rubric is not sent to Promptfoo."""

    def _grades_rubric(self, job: Job) -> bool:
        spec = job.target.spec
        if not (spec.scoring.needs_judge and spec.rubric) or self.settings.mode is JudgeMode.OFF:
            return False
        if self.stored[job.nodeid] is not None or self.settings.mode is JudgeMode.REPLAY:
            return False
        if _assertions_fail(job.target):
            self.not_asked.add(job.nodeid)
            return False
        return True

    def run(self) -> dict[str, Outcome]:
        """Run Promptfoo (if anything needs it) and return each job's outcome."""
        targets = [self._target(j) for j in self.jobs]
        exported = [t for t in targets if t.spec.assertions or t.with_rubric]
        rows: dict[str, Row] = {}
        upstream = self.settings.base_url or DEFAULT_BASE_URL
        with GraderTap(upstream) as tap:
            if exported:
                rows = self._promptfoo(exported, tap)
            outcomes = {
                t.nodeid: self._outcome(j, t, rows.get(t.nodeid), tap, upstream)
                for j, t in zip(self.jobs, targets, strict=True)
            }
        store_verdicts(self.new_verdicts)
        return outcomes

    def _target(self, job: Job) -> ExportTarget:
        t = job.target
        return ExportTarget(
            t.spec,
            t.nodeid,
            t.eval_file,
            t.output,
            t.trace_label,
            t.artifacts_dir,
            t.dataroom_dir,
            self._grades_rubric(job),
            t.question,
            t.context,
        )

    def _promptfoo(self, targets: list[ExportTarget], tap: GraderTap) -> dict[str, Row]:
        grader = Grader(self.settings.model, tap.base_url, self.settings.grader.api, self.settings.grader.key_env)
        exported = export_config(targets, grader, "pytest-agentloop --agentloop-backend=promptfoo")
        config, results = self.work / "promptfooconfig.yaml", self.work / "results.json"
        config.write_text(dump_config(exported.config), encoding="utf-8")
        for note in exported.not_exported:
            self.say(f"agentloop: promptfoo: {note.line()}")
        self.say(f"agentloop: running Promptfoo over {len(targets)} evals (concurrency {self.settings.concurrency})")
        run_eval(self.executable, config, results, self.settings.concurrency, promptfoo_env(self.work))
        return read_results(results)

    def _outcome(self, job: Job, target: ExportTarget, row: Row | None, tap: GraderTap, url: str) -> Outcome:
        """As the native item decides: literals first; then the rubric, stored or graded."""
        spec, stored = target.spec, self.stored[job.nodeid]
        if (spec.assertions or target.with_rubric) and row is None:
            return Outcome(job.nodeid, "error", f"eval {spec.id}: Promptfoo returned no result for it")
        problem = self._problem(row, target, tap, url) if row is not None else None
        if problem is not None:
            return Outcome(job.nodeid, "error", f"eval {spec.id}: {problem}", components=row.components if row else ())
        components = row.components if row else ()
        literals_pass = row is None or row.success
        if spec.scoring.needs_judge and stored is None and not target.with_rubric and literals_pass:
            if self.settings.mode is JudgeMode.OFF:
                return Outcome(job.nodeid, "skipped", "judge off", components=components)
            if job.nodeid in self.not_asked:
                message = f"eval {spec.id}: Promptfoo passed the assertions this plugin failed, so no rubric was sent"
                return Outcome(job.nodeid, "error", message, components=components)
            return Outcome(job.nodeid, "error", self._missing(spec.id), components=components)
        rubric = self._rubric(job, target, stored, tap)
        passed = (row is None or row.success) and (stored is None or stored.passed)
        score = rubric.score if rubric is not None else (row.score if row else None)
        reason = row.reason if row else (stored.reason if stored else "")
        if rubric is None and not literals_pass and spec.scoring is Scoring.HYBRID:
            reason += "" if self.settings.mode is JudgeMode.OFF else f"\n  {NOT_ASKED}"
        return Outcome(job.nodeid, "passed" if passed else "failed", reason, score, components, rubric)

    def _missing(self, eval_id: str) -> str:
        return (
            f"eval {eval_id}: no stored verdict for its rubric on the current output (judge mode "
            f"{self.settings.mode.value}, judge model {self.settings.model}); run with "
            "--agentloop-judge=record to have Promptfoo grade it"
        )

    def _problem(self, row: Row, target: ExportTarget, tap: GraderTap, url: str) -> str | None:
        """A grader or provider error hidden in Promptfoo's result, or None."""
        if row.provider_error:
            return f"Promptfoo error: {row.provider_error}"
        if target.with_rubric:
            verdict = self._answer(target, tap, url)
            if isinstance(verdict, str):
                return f"judge error: {verdict}"
        orphans = [c for c in row.components if c.type is None]
        if orphans:
            return f"Promptfoo reported a grading failure: {orphans[0].reason}"
        return None

    def _answer(self, target: ExportTarget, tap: GraderTap, url: str) -> ParsedVerdict | str:
        return judge_answer(tap.last(_key(target)), url)

    def _rubric(self, job: Job, target: ExportTarget, stored: RubricOutcome | None, tap: GraderTap) -> Rubric | None:
        if stored is not None:
            return _rubric(stored)
        if not target.with_rubric:
            return None
        spec = target.spec
        exchange = tap.last(_key(target))
        parsed = parse_verdict(exchange.answer_text() or "", strict=False) if exchange else None
        if parsed is None or exchange is None:
            return None
        verdict = promptfoo_verdict(
            eval_file=target.eval_file,
            eval_id=spec.id,
            inputs=target.judge_inputs(),
            model=self.settings.model,
            grader=self.settings.grader.provider_id,
            parsed=parsed,
            tokens=exchange.usage(),
        )
        self.new_verdicts.append((job.store_path, verdict))
        return Rubric(
            parsed.passed and parsed.score >= spec.threshold,
            parsed.score,
            parsed.reason,
            verdict.source,
            *exchange.usage(),
        )


def save_outcomes(path: Path, outcomes: dict[str, Outcome]) -> None:
    """Write outcomes for other xdist workers (atomically)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: asdict(v) for k, v in outcomes.items()}), encoding="utf-8")
    tmp.replace(path)


def load_outcomes(path: Path) -> dict[str, Outcome]:
    """Outcomes another worker wrote."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return {k: Outcome.from_json(v) for k, v in data.items()}
