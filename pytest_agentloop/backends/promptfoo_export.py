"""Eval definitions as a Promptfoo config that grades the recorded outputs.

The config follows Promptfoo's "standalone assertions" pattern: the prompt is
``{{output}}``, the provider is ``echo`` and each test carries its eval's
recorded answer in the ``output`` variable, so Promptfoo grades exactly what
``pytest`` grades. Literal assertions Promptfoo has natively keep their type,
value, weight and metric; the rest (artifact checks, checks on an artifact's
text, regexes in Python-only syntax, ``not-levenshtein``) become a Python
assertion that runs this package's own check (``promptfoo_check.py``).
Anything else is listed as not exported, never dropped silently.

Rubrics become ``llm-rubric`` with the eval's threshold, the judge's provider
settings, and a per-test ``rubricPrompt`` carrying this project's judge prompt,
so Promptfoo's grader sees the same messages as the native judge.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pytest_agentloop.assertions import lookup
from pytest_agentloop.config import JudgeApi
from pytest_agentloop.judge.keys import JudgeInputs
from pytest_agentloop.judge.rubric import build_prompt, delimiter_tag
from pytest_agentloop.spec import AssertionSpec, EvalSpec

CHECK_SCRIPT = Path(__file__).with_name("promptfoo_check.py")
NATIVE_TYPES = frozenset(
    {
        "contains",
        "icontains",
        "contains-any",
        "icontains-any",
        "contains-all",
        "icontains-all",
        "equals",
        "starts-with",
        "regex",
        "is-json",
        "contains-json",
        "levenshtein",
        "word-count",
    }
)
NO_NATIVE_NEGATION = frozenset({"levenshtein"})  # Promptfoo's levenshtein ignores the not- prefix
LIST_TYPES = frozenset({"contains-any", "icontains-any", "contains-all", "icontains-all"})
TEMPLATE_MARKS = ("{{", "{%", "{#")
# Python-only regex syntax: inline flags, named groups (?P...), comments, atomic groups, possessive
# quantifiers, \A \Z; JavaScript's RegExp rejects or reads them differently.
PYTHON_ONLY_REGEX = re.compile(r"\(\?[aiLmsux-]|\(\?P|\(\?#|\(\?>|\\[AZ]|[*+?}]\+")


@dataclass(frozen=True)
class Grader:
    """The judge's provider settings, as Promptfoo's OpenAI provider takes them (the key stays in the env)."""

    model: str
    base_url: str | None = None
    api: JudgeApi = JudgeApi.RESPONSES
    key_env: str = "OPENAI_API_KEY"

    @property
    def provider_id(self) -> str:
        """``openai:responses:<model>`` or ``openai:chat:<model>``."""
        kind = "responses" if self.api is JudgeApi.RESPONSES else "chat"
        return f"openai:{kind}:{self.model}"

    def provider(self) -> dict[str, Any]:
        """The ``provider`` block of an ``llm-rubric`` assertion."""
        config: dict[str, Any] = {"apiKeyEnvar": self.key_env}
        if self.base_url:
            config["apiBaseUrl"] = self.base_url
        return {"id": self.provider_id, "config": config}


@dataclass(frozen=True)
class ExportTarget:
    """One eval to export, with the recorded run it grades."""

    spec: EvalSpec
    nodeid: str
    eval_file: str
    output: str
    trace_label: str = ""
    artifacts_dir: Path | None = None
    dataroom_dir: Path | None = None
    with_rubric: bool = True
    question: str = ""
    context: tuple[tuple[str, str], ...] = ()

    def judge_inputs(self) -> JudgeInputs:
        """What the native judge is shown for this eval (its verdicts are keyed on these)."""
        spec = self.spec
        return JudgeInputs(spec.rubric or "", spec.expected, self.output, self.question, self.context)


@dataclass(frozen=True)
class Note:
    """Something Promptfoo does not grade natively: exported through Python, or not exported."""

    nodeid: str
    what: str
    reason: str
    exported: bool

    def line(self) -> str:
        """One line for the terminal."""
        how = "exported as a Python assertion" if self.exported else "NOT exported"
        return f"{self.nodeid}: {self.what}: {how}: {self.reason}"


@dataclass
class Export:
    """The config and what it could not express natively."""

    config: dict[str, Any]
    notes: list[Note] = field(default_factory=list)

    @property
    def not_exported(self) -> list[Note]:
        """What the config leaves out."""
        return [n for n in self.notes if not n.exported]


def raw(text: str) -> str:
    """``text`` protected from Promptfoo's Nunjucks rendering when it holds template syntax."""
    if not any(mark in text for mark in TEMPLATE_MARKS):
        return text
    return "{% raw %}" + text + "{% endraw %}"


def rubric_prompt(inputs: JudgeInputs) -> str:
    """This project's judge messages as a Promptfoo ``rubricPrompt`` (JSON messages, ``{{output}}`` in its slot)."""
    prompt = build_prompt(inputs.rubric, inputs.output, inputs.expected, inputs.question, inputs.context)
    tag = delimiter_tag(inputs.output, inputs.question, *(part for pair in inputs.context for part in pair))
    opening = f"<<<OUTPUT {tag}>>>\n"
    start = prompt.user.index(opening) + len(opening)
    before, after = prompt.user[:start], prompt.user[start + len(inputs.output) :]
    user = raw(before) + "{{ output }}" + raw(after)
    messages = [{"role": "system", "content": raw(prompt.system)}, {"role": "user", "content": user}]
    return json.dumps(messages, ensure_ascii=False)


def python_only_regex(pattern: str) -> bool:
    """Whether ``pattern`` uses syntax JavaScript's RegExp lacks or reads differently."""
    return PYTHON_ONLY_REGEX.search(pattern) is not None


def _native_value(assertion: AssertionSpec, base: str) -> Any:
    value = assertion.value
    if base in LIST_TYPES:
        items = [p.strip() for p in value.split(",")] if isinstance(value, str) else list(value)  # type: ignore[call-overload]
        return [raw(str(v)) for v in items]
    if isinstance(value, str):
        return raw(value)
    if base in {"contains", "icontains", "equals", "starts-with", "levenshtein"} and isinstance(value, int | float):
        return raw(str(value))  # compared as Python's text of the number, as the native check does
    return value


def _why_python(assertion: AssertionSpec, base: str, negated: bool) -> str | None:
    """Why this assertion cannot be a native Promptfoo one (None: it can)."""
    if base not in NATIVE_TYPES:
        return f"Promptfoo has no {base!r} assertion"
    if assertion.artifact:
        return f"checks the artifact {assertion.artifact}, which Promptfoo does not see"
    if negated and base in NO_NATIVE_NEGATION:
        return f"Promptfoo's {base} ignores the not- prefix"
    if base == "regex" and python_only_regex(str(assertion.value)):
        return "Python-only regex syntax (such as (?i)) is invalid in Promptfoo's JavaScript RegExp"
    return None


def _assertion(target: ExportTarget, assertion: AssertionSpec, notes: list[Note]) -> dict[str, Any] | None:
    found = lookup(assertion.type)
    what = f"assertion {assertion.type} (line {assertion.line})"
    if found is None:
        notes.append(Note(target.nodeid, what, "unknown assertion type", exported=False))
        return None
    kind, negated = found
    why = _why_python(assertion, kind.name, negated)
    if why is not None and not kind.check.__module__.startswith("pytest_agentloop."):
        notes.append(Note(target.nodeid, what, f"{why}; it comes from a plugin this export cannot load", False))
        return None
    out: dict[str, Any]
    if why is None:
        out = {"type": assertion.type, "value": _native_value(assertion, kind.name)}
        if assertion.threshold is not None:
            out["threshold"] = assertion.threshold
    else:
        notes.append(Note(target.nodeid, what, why, exported=True))
        out = {
            "type": "python",
            "value": f"file://{CHECK_SCRIPT}",
            "config": {"agentloop": _check_config(target, assertion)},
        }
    if assertion.weight != 1.0:
        out["weight"] = assertion.weight
    if assertion.metric:
        out["metric"] = assertion.metric
    return out


def _check_config(target: ExportTarget, assertion: AssertionSpec) -> dict[str, Any]:
    """What ``promptfoo_check.py`` needs to run the assertion as ``pytest`` would."""
    return {
        "type": assertion.type,
        "value": assertion.value,
        "artifact": assertion.artifact,
        "threshold": assertion.threshold,
        "line": assertion.line,
        "artifacts_dir": str(target.artifacts_dir) if target.artifacts_dir else None,
        "dataroom_dir": str(target.dataroom_dir) if target.dataroom_dir else None,
    }


def _literals(target: ExportTarget, notes: list[Note]) -> list[dict[str, Any]]:
    """The literal assertions, combined as the eval's scoring rule says."""
    spec = target.spec
    mapped = [m for m in (_assertion(target, a, notes) for a in spec.assertions) if m is not None]
    if not mapped:
        return []
    weights = [float(m.get("weight", 1.0)) for m in mapped]
    if spec.assertion_threshold is not None:
        return [{"type": "assert-set", "threshold": spec.assertion_threshold, "assert": mapped}]
    if all(w == 0 for w in weights):
        notes.append(
            Note(
                target.nodeid,
                "weight-0 assertions",
                "report-only assertions cannot be expressed: Promptfoo fails a test on any failed assertion",
                exported=False,
            )
        )
        return []
    if any(w == 0 for w in weights):
        # Promptfoo fails a test on any failed assertion, weight 0 included; every check scores 0 or 1,
        # so "every counted assertion passes" is "the weighted score is 1".
        return [{"type": "assert-set", "threshold": 1.0, "assert": mapped}]
    return mapped


def _metadata(target: ExportTarget) -> dict[str, Any]:
    spec = target.spec
    data: dict[str, Any] = {
        "nodeid": target.nodeid,
        "eval_id": spec.id,
        "eval_file": target.eval_file,
        "title": spec.title,
        "trace": spec.trace,
        "tags": list(spec.tags),
        "split": spec.split.value,
        "must_pass": spec.must_pass,
        "scoring": spec.scoring.value,
        "threshold": spec.threshold,
    }
    optional = {
        "expected": spec.expected,
        "assertion_threshold": spec.assertion_threshold,
        "examples": dict(spec.examples),
        "repeat": spec.repeat if spec.repeat != 1 else None,
        "eval_metadata": dict(spec.metadata),
    }
    data.update({k: v for k, v in optional.items() if v})
    return data


def export_test(target: ExportTarget, grader: Grader, notes: list[Note]) -> dict[str, Any]:
    """One Promptfoo test for one eval."""
    spec = target.spec
    asserts = _literals(target, notes)
    test: dict[str, Any] = {
        "description": f"{spec.id}: {spec.title}",
        "vars": {"output": target.output},
        "metadata": _metadata(target),
    }
    if spec.scoring.needs_judge and spec.rubric and target.with_rubric:
        asserts.append(
            {
                "type": "llm-rubric",
                "value": raw(spec.rubric),
                "threshold": spec.threshold,
                "provider": grader.provider(),
            }
        )
        test["options"] = {"rubricPrompt": rubric_prompt(target.judge_inputs())}
    if spec.repeat > 1:
        notes.append(
            Note(target.nodeid, f"repeat: {spec.repeat}", "Promptfoo repeats whole runs, not one test", exported=False)
        )
    test["assert"] = asserts
    return test


def export_config(targets: list[ExportTarget], grader: Grader, description: str) -> Export:
    """A Promptfoo config grading ``targets``' recorded outputs."""
    notes: list[Note] = []
    tests = [export_test(t, grader, notes) for t in targets]
    config: dict[str, Any] = {
        "description": description,
        "prompts": ["{{output}}"],
        "providers": ["echo"],
        "tests": tests,
    }
    if any(n.exported for n in notes):
        config["env"] = {"PROMPTFOO_PYTHON": sys.executable}
    return Export(json.loads(json.dumps(config)), notes)  # YAML mappings that remember lines become plain dicts


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as ``|`` blocks where YAML allows it, so configs read and diff well."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockDumper.add_representer(str, _represent_str)


def dump_config(config: dict[str, Any]) -> str:
    """The config as YAML text."""
    header = "# Written by `agentloop promptfoo export`: grades the recorded outputs of pytest-agentloop evals.\n"
    plain = json.loads(json.dumps(config))  # YAML mappings that remember their lines become plain dicts
    return header + yaml.dump(plain, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=10_000)
