"""The key of a recording: one scheme for verdicts, labels, grades, insights and generated evals.

A recording is keyed by every input that produced it, so a changed input asks
for a new one and an unchanged input replays it offline. The key is the hash
of a canonical JSON object ``{"kind", "key_version", "inputs"}`` (keys sorted,
UTF-8): unambiguous whatever the inputs hold, and versioned, so a later change
of scheme is a new ``key_version`` with a migration, never a silent mismatch.

- A model's verdict keys on every input of its prompt: rubric, expected,
  output, question, the ``judge_context`` artifacts (name and content), the
  judge model and the prompt version.
- A person's label keys on what the person judged: rubric, expected and
  output. A new prompt version or judge model keeps it; a changed rubric,
  expected or output makes it stale.
- The *subject* (rubric, expected, output) is what a person and a model both
  judge; verdicts on the same subject are compared by ``verdicts agreement``.

Other producers (Promptfoo grades, recorded insights and generations) call
:func:`recording_key` with their own ``kind`` and inputs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from pytest_agentloop.recordings import digest

KEY_VERSION = 2
LEGACY_KEY_VERSION = 1
HUMAN_MODEL = "human"


def recording_key(kind: str, inputs: Mapping[str, str]) -> str:
    """The versioned key of a recording of ``kind`` produced from ``inputs``."""
    canonical = json.dumps(
        {"kind": kind, "key_version": KEY_VERSION, "inputs": dict(inputs)}, sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def input_digest(value: str) -> str:
    """A short digest of one input, stored so a stale recording can say which input changed."""
    return hashlib.sha256(value.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class JudgeInputs:
    """What the judge is shown for one eval."""

    rubric: str
    expected: str
    output: str
    question: str = ""
    context: tuple[tuple[str, str], ...] = ()

    def judged(self) -> dict[str, str]:
        """What a person judges: rubric, expected, output."""
        return {"rubric": self.rubric, "expected": self.expected, "output": self.output}

    def prompted(self) -> dict[str, str]:
        """Every input of the judge's prompt except the model and prompt version."""
        context = json.dumps([list(pair) for pair in self.context], ensure_ascii=False)
        return {**self.judged(), "question": self.question, "judge_context": context}

    def digests(self, *, model: bool) -> dict[str, str]:
        """Per-input digests (stored beside the key)."""
        fields = self.prompted() if model else self.judged()
        return {name: input_digest(value) for name, value in fields.items()}


def subject_key(inputs: JudgeInputs) -> str:
    """What is graded, whoever grades it."""
    return recording_key("subject", inputs.judged())


def human_key(inputs: JudgeInputs) -> str:
    """Key of a person's label: survives a new judge model or prompt version."""
    return recording_key("human-verdict", inputs.judged())


def model_key(inputs: JudgeInputs, judge_model: str, prompt_version: str) -> str:
    """Key of a model's verdict: every input of its prompt, the model and the prompt version."""
    return recording_key(
        "model-verdict", {**inputs.prompted(), "judge_model": judge_model, "prompt_version": prompt_version}
    )


def changed_inputs(stored: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """Names of inputs whose digest differs (inputs only one side has are left out)."""
    return sorted(name for name in stored.keys() & current.keys() if stored[name] != current[name])


# -- key version 1 (before 0.x): rubric and output only; kept to migrate old stores ------------


def legacy_subject_key(rubric: str, output: str) -> str:
    """Key version 1's subject."""
    return digest("subject", rubric, output)


def legacy_model_key(rubric: str, output: str, judge_model: str, prompt_version: str) -> str:
    """Key version 1's verdict key."""
    return digest("verdict", rubric, output, judge_model, prompt_version)


def legacy_human_key(rubric: str, output: str) -> str:
    """Key version 1's key of a person's verdict."""
    return legacy_model_key(rubric, output, HUMAN_MODEL, "-")
