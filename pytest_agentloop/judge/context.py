"""What the judge sees beside the rubric and the output: the run's question and opted-in artifacts.

An eval opts artifacts in with ``judge_context: [ticket.json]``; each is read
from the run's artifacts folder (a path that escapes it is refused), must be
UTF-8 text, and all of them together must fit the size limit
(``--agentloop-judge-context-kb``). Anything else is an error naming the eval
and the artifact, never a silently shortened prompt.
"""

from __future__ import annotations

from pathlib import Path

from pytest_agentloop.assertions.artifacts import UnsafePath, safe_join
from pytest_agentloop.judge.endpoint import JudgeError


class JudgeContextError(JudgeError):
    """An artifact an eval shows the judge is missing, unsafe, not text, or too large."""


def read_context(
    eval_id: str, artifacts_dir: Path | None, names: tuple[str, ...], limit: int
) -> tuple[tuple[str, str], ...]:
    """``(name, text)`` for each artifact in ``names``, in the order the eval lists them."""
    if not names:
        return ()
    if artifacts_dir is None or not artifacts_dir.is_dir():
        raise JudgeContextError(f"eval {eval_id}: judge_context names {', '.join(names)} but the run has no artifacts")
    found, budget = [], limit
    for name in names:
        text = _read_one(eval_id, artifacts_dir, name, budget, limit)
        budget -= len(text.encode())
        found.append((name, text))
    return tuple(found)


def _too_large(eval_id: str, name: str, limit: int) -> JudgeContextError:
    return JudgeContextError(
        f"eval {eval_id}: judge_context artifacts come to more than {limit / 1000:g} KB at {name} "
        "(raise --agentloop-judge-context-kb, or show the judge less)"
    )


def _read_one(eval_id: str, artifacts_dir: Path, name: str, budget: int, limit: int) -> str:
    try:
        path = safe_join(artifacts_dir, name)
    except (UnsafePath, ValueError) as exc:
        raise JudgeContextError(f"eval {eval_id}: judge_context {name!r}: {exc}") from None
    if not path.is_file():
        raise JudgeContextError(f"eval {eval_id}: judge_context artifact {name} is missing in {artifacts_dir}")
    if path.stat().st_size > budget:
        raise _too_large(eval_id, name, limit)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise JudgeContextError(
            f"eval {eval_id}: judge_context artifact {name} is not UTF-8 (byte {exc.start})"
        ) from None
    except OSError as exc:
        raise JudgeContextError(f"eval {eval_id}: judge_context artifact {name}: {exc.strerror}") from None
