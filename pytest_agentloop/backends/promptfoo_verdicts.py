"""The backend's two touches of the keyed verdict store: look a rubric up, store Promptfoo's verdicts.

Keys are the native judge's (every input of its prompt, the judge model, the
prompt version: :mod:`pytest_agentloop.judge.keys`), so a verdict Promptfoo's
grader produced replays in a later run without Promptfoo, and a person's
verdict outranks it. Kept to these functions so a change of store touches one
module.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from pytest_agentloop.judge.keys import JudgeInputs, human_key, model_key, subject_key
from pytest_agentloop.judge.planner import RubricOutcome, combine
from pytest_agentloop.judge.rubric import PROMPT_VERSION, ParsedVerdict
from pytest_agentloop.judge.verdicts import Verdict, VerdictIndex, VerdictStore, now


def stored_rubric(
    store_path: Path, inputs: JudgeInputs, model: str, threshold: float, with_model: bool
) -> RubricOutcome | None:
    """A person's verdict on these inputs, else (``with_model``) a stored model verdict."""
    index = VerdictIndex.of(VerdictStore(store_path).read())
    found = index.find(human_key(inputs), model_key(inputs, model, PROMPT_VERSION))
    if found.human is not None:
        return combine([found.human], threshold)
    if with_model and 0 in found.model:
        return combine([found.model[0]], threshold)
    return None


def promptfoo_verdict(
    *,
    eval_file: str,
    eval_id: str,
    inputs: JudgeInputs,
    model: str,
    grader: str,
    parsed: ParsedVerdict,
    tokens: tuple[int | None, int | None],
) -> Verdict:
    """A verdict Promptfoo's grader gave, keyed as the native judge keys its own."""
    return Verdict(
        key=model_key(inputs, model, PROMPT_VERSION),
        subject=subject_key(inputs),
        eval_file=eval_file,
        eval_id=eval_id,
        passed=parsed.passed,
        score=parsed.score,
        reason=parsed.reason,
        source=f"promptfoo:{grader}",
        judge_model=model,
        prompt_version=PROMPT_VERSION,
        created=now(),
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        inputs=tuple(sorted(inputs.digests(model=True).items())),
    )


def store_verdicts(verdicts: list[tuple[Path, Verdict]]) -> None:
    """Append verdicts to their stores (locked, fsynced)."""
    grouped: dict[Path, list[Verdict]] = defaultdict(list)
    for path, verdict in verdicts:
        grouped[path].append(verdict)
    for path, group in grouped.items():
        VerdictStore(path).append(group)
