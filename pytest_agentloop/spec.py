"""The eval-file schema: loading with line numbers, defaults and validation.

Format version 1 (the ``agentloop: 1`` key)::

    agentloop: 1
    traces: traces          # trace store, relative to this file (optional)
    sources_root: dataroom  # root that cited sources must resolve under (optional; `dataroom:` is an alias)
    citations: {citations.json: sources}   # which artifacts cite sources, in which field (optional)
    defaults: {tags: [...], scoring: hybrid, threshold: 0.8, split: optimization}
    evals:
      - id: runway-named
        title: ...
        trace: trace-01
        assert: [{type: icontains, value: 11 months}]

Everything a file gets wrong is a :class:`SpecError` naming the file, the line
and the field.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from pytest_agentloop.assertions import lookup, names
from pytest_agentloop.assertions.artifacts import validate_citations, validate_relative
from pytest_agentloop.assertions.limits import DEFAULT_CHECK_SECONDS, MAX_CHECK_SECONDS
from pytest_agentloop.assertions.text import (
    ENGINES,
    PYTHON,
    RE2,
    THRESHOLD_FREE_TYPES,
    compile_pattern,
    validate_levenshtein_threshold,
)
from pytest_agentloop.errors import SpecError, SpecErrors
from pytest_agentloop.yamlload import MAX_EXPANDED_VALUES, LineMap, expanded_size, load_yaml_of

FORMAT_VERSION = 1
DEFAULT_THRESHOLD = 0.8
MAX_REPEAT = 100
MAX_JUDGE_CONTEXT = 10
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TAG_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
T = TypeVar("T")


class Scoring(enum.StrEnum):
    """How an eval is scored."""

    DETERMINISTIC = "deterministic"
    LLM_JUDGE = "llm_judge"
    HYBRID = "hybrid"

    @property
    def needs_judge(self) -> bool:
        """Whether a rubric verdict is part of the outcome."""
        return self is not Scoring.DETERMINISTIC


class Split(enum.StrEnum):
    """Which set an eval belongs to: tuned on, or held out."""

    OPTIMIZATION = "optimization"
    HOLDOUT = "holdout"


@dataclass(frozen=True)
class AssertionSpec:
    """One literal assertion as written in the file."""

    type: str
    value: object
    line: int
    weight: float = 1.0
    metric: str | None = None
    threshold: float | None = None
    artifact: str | None = None
    engine: str | None = None
    timeout: float = DEFAULT_CHECK_SECONDS


@dataclass(frozen=True)
class EvalSpec:
    """One eval definition, defaults applied and validated."""

    id: str
    title: str
    trace: str
    path: Path
    line: int
    scoring: Scoring = Scoring.DETERMINISTIC
    tags: tuple[str, ...] = ()
    expected: str = ""
    rubric: str | None = None
    assertions: tuple[AssertionSpec, ...] = ()
    examples: Mapping[str, str] = field(default_factory=dict)
    threshold: float = DEFAULT_THRESHOLD
    assertion_threshold: float | None = None
    must_pass: bool = False
    split: Split = Split.OPTIMIZATION
    repeat: int = 1
    metadata: Mapping[str, Any] = field(default_factory=dict)
    judge_context: tuple[str, ...] = ()
    citations: Mapping[str, str] | None = None
    field_lines: Mapping[str, int] = field(default_factory=dict, compare=False)

    def line_of(self, key: str) -> int:
        """Line where ``key`` is written for this eval (the eval's line if not)."""
        return self.field_lines.get(key, self.line)


@dataclass(frozen=True)
class SuiteSpec:
    """A whole eval file: where its traces and cited sources are, its artifact contract, and its evals."""

    path: Path
    evals: tuple[EvalSpec, ...]
    traces_dir: Path | None = None
    dataroom_dir: Path | None = None
    citations: Mapping[str, str] | None = None

    @property
    def sources_root(self) -> Path | None:
        """The folder cited sources must resolve under (``sources_root:``, alias ``dataroom:``)."""
        return self.dataroom_dir


SUITE_KEYS = {"agentloop", "traces", "sources_root", "dataroom", "citations", "defaults", "evals"}
DEFAULT_KEYS = {"tags", "scoring", "threshold", "assertion_threshold", "split", "must_pass", "repeat", "judge_context"}
EVAL_KEYS = DEFAULT_KEYS | {"id", "title", "trace", "expected", "rubric", "assert", "examples", "metadata"}
ASSERTION_KEYS = {"type", "value", "weight", "metric", "threshold", "artifact", "engine", "timeout"}


class _Reader:
    """Reads fields out of one mapping, raising errors that point at the line."""

    def __init__(self, path: Path, data: LineMap, what: str) -> None:
        self.path, self.data, self.what = path, data, what

    def fail(self, key: str | None, message: str) -> SpecError:
        line = self.data.line_of(key) if key else self.data.line
        prefix = f"{self.what}, field {key!r}" if key else self.what
        return SpecError(f"{prefix}: {message}", path=self.path, line=line)

    def reject_unknown(self, allowed: set[str]) -> None:
        for key in self.data:
            if key not in allowed:
                raise self.fail(key, f"unknown field; expected one of {', '.join(sorted(allowed))}")

    def get(self, key: str, kind: type[T] | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                raise self.fail(None, f"missing required field {key!r}")
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.fail(key, f"expected {_kind_name(kind)}, got a boolean")
        if not isinstance(value, kind):
            raise self.fail(key, f"expected {_kind_name(kind)}, got {_type_name(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(key, f"expected a finite number, got {value}")
        return value

    def convert(self, key: str, value: Any, convert: Callable[[Any], T]) -> T:
        try:
            return convert(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    words = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "a mapping",
    }
    return " or ".join(words.get(k, k.__name__) for k in kinds)


def _type_name(value: object) -> str:
    names = {str: "a string", int: "an integer", float: "a number", list: "a list", LineMap: "a mapping"}
    return names.get(type(value), type(value).__name__)


def _unit_interval(value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"must be between 0 and 1, got {value}")
    return float(value)


def _tags(value: list[Any]) -> tuple[str, ...]:
    for tag in value:
        if not isinstance(tag, str) or not TAG_PATTERN.match(tag):
            raise ValueError(f"tag {tag!r} is not a valid marker name (letters, digits, underscores)")
    return tuple(dict.fromkeys(value))


def _repeat(value: int) -> int:
    if not 1 <= value <= MAX_REPEAT:
        raise ValueError(f"must be a whole number from 1 to {MAX_REPEAT}, got {value}")
    return value


def _timeout(value: float) -> float:
    if not 0 < value <= MAX_CHECK_SECONDS:
        raise ValueError(f"must be more than 0 and at most {MAX_CHECK_SECONDS:g} seconds, got {value}")
    return float(value)


def _judge_context(value: list[Any]) -> tuple[str, ...]:
    if not value or len(value) > MAX_JUDGE_CONTEXT:
        raise ValueError(f"expected a list of 1 to {MAX_JUDGE_CONTEXT} artifact file names")
    return tuple(dict.fromkeys(validate_relative(v) for v in value))


def _enum(kind: type[enum.StrEnum]) -> Callable[[str], Any]:
    def convert(value: str) -> Any:
        try:
            return kind(value)
        except ValueError:
            choices = ", ".join(m.value for m in kind)
            raise ValueError(f"unknown value {value!r}; expected one of {choices}") from None

    return convert


def _read_assertion(path: Path, raw: object, where: str, line: int) -> AssertionSpec:
    if not isinstance(raw, LineMap):
        raise SpecError(f"{where}: each assertion must be a mapping with a 'type'", path=path, line=line)
    reader = _Reader(path, raw, where)
    reader.reject_unknown(ASSERTION_KEYS)
    kind_name = reader.get("type", str, required=True)
    found = lookup(kind_name)
    if found is None:
        raise reader.fail("type", f"unknown assertion type {kind_name!r}; known types: {', '.join(names())}")
    kind, _ = found
    engine = _engine(reader, kind.name)
    if engine == PYTHON:
        reader.convert("value", raw.get("value"), lambda v: compile_pattern(str(v), PYTHON))
    else:
        reader.convert("value", raw.get("value"), kind.validate)
    artifact = _artifact(reader, kind_name, kind.target, kind.needs_artifact)
    weight = reader.get("weight", (int, float), 1.0)
    if weight < 0:
        raise reader.fail("weight", f"must not be negative, got {weight}")
    return AssertionSpec(
        type=kind_name,
        value=raw.get("value"),
        line=raw.line,
        weight=float(weight),
        metric=reader.get("metric", str),
        threshold=_threshold(reader, kind.name),
        artifact=artifact,
        engine=engine,
        timeout=reader.convert("timeout", reader.get("timeout", (int, float), DEFAULT_CHECK_SECONDS), _timeout),
    )


def _engine(reader: _Reader, kind_name: str) -> str | None:
    engine = reader.get("engine", str)
    if engine is None:
        return None
    if kind_name != "regex":
        raise reader.fail("engine", "only a regex assertion takes an 'engine'")
    if engine not in ENGINES:
        raise reader.fail("engine", f"unknown value {engine!r}; expected one of {', '.join(ENGINES)}")
    return None if engine == RE2 else engine


def _artifact(reader: _Reader, kind_name: str, target: str, needs_artifact: bool) -> str | None:
    artifact: str | None = reader.get("artifact", str)
    if artifact is not None:
        reader.convert("artifact", artifact, validate_relative)
        if target == "artifacts" and not needs_artifact:
            raise reader.fail("artifact", f"{kind_name} does not take an 'artifact'")
    elif needs_artifact:
        raise reader.fail(None, f"{kind_name} needs an 'artifact' naming the file to check")
    return artifact


def _threshold(reader: _Reader, kind_name: str) -> float | None:
    threshold = reader.get("threshold", (int, float))
    if threshold is None:
        return None
    if kind_name in THRESHOLD_FREE_TYPES:
        raise reader.fail("threshold", f"{kind_name} does not use a 'threshold' (levenshtein does)")
    if kind_name == "levenshtein":
        return float(reader.convert("threshold", threshold, validate_levenshtein_threshold))
    return float(threshold)


def _read_eval(path: Path, raw: LineMap, defaults: LineMap) -> EvalSpec:
    reader = _Reader(path, raw, f"eval {raw.get('id', '#?')!r}")
    reader.reject_unknown(EVAL_KEYS)
    eval_id = reader.get("id", str, required=True)
    if not ID_PATTERN.match(eval_id):
        raise reader.fail("id", "use letters, digits, '.', '_' or '-' (it becomes part of the node id)")
    title = reader.get("title", str, required=True)
    trace = str(reader.get("trace", (str, int), required=True))
    merged = _Reader(path, _merge(defaults, raw), reader.what)
    scoring = merged.convert("scoring", merged.get("scoring", str, "deterministic"), _enum(Scoring))
    rubric = reader.get("rubric", str)
    if scoring.needs_judge and not (rubric or "").strip():
        raise reader.fail(None, f"scoring {scoring.value!r} needs a 'rubric' for the judge")
    assertions = _assertions(path, reader, raw)
    if scoring is Scoring.LLM_JUDGE and assertions:
        raise reader.fail("assert", "llm_judge evals are graded by the rubric alone; use 'hybrid' to add assertions")
    if scoring is Scoring.DETERMINISTIC and not assertions:
        raise reader.fail(None, "a deterministic eval needs at least one assertion under 'assert'")
    examples = reader.get("examples", dict, {})
    if not set(examples) <= {"pass", "fail"} or not all(isinstance(v, str) for v in examples.values()):
        raise reader.fail("examples", "expected {pass: <text>, fail: <text>}")
    tags = _tags(list(defaults.get("tags") or [])) + reader.convert("tags", reader.get("tags", list, []), _tags)
    assertion_threshold = merged.get("assertion_threshold", (int, float))
    judge_context = merged.get("judge_context", list)
    return EvalSpec(
        id=eval_id,
        title=title,
        trace=trace,
        path=path,
        line=raw.line,
        scoring=scoring,
        tags=tuple(dict.fromkeys(tags)),
        expected=reader.get("expected", str, ""),
        rubric=rubric,
        assertions=assertions,
        examples=dict(examples),
        threshold=merged.convert("threshold", merged.get("threshold", (int, float), DEFAULT_THRESHOLD), _unit_interval),
        assertion_threshold=None
        if assertion_threshold is None
        else merged.convert("assertion_threshold", assertion_threshold, _unit_interval),
        must_pass=merged.get("must_pass", bool, False),
        split=merged.convert("split", merged.get("split", str, "optimization"), _enum(Split)),
        repeat=merged.convert("repeat", merged.get("repeat", int, 1), _repeat),
        metadata=dict(reader.get("metadata", dict, {})),
        judge_context=() if judge_context is None else merged.convert("judge_context", judge_context, _judge_context),
        field_lines=dict(raw.key_lines),
    )


def _assertions(path: Path, reader: _Reader, raw: LineMap) -> tuple[AssertionSpec, ...]:
    raw_assertions = reader.get("assert", list, [])
    return tuple(
        _read_assertion(path, a, f"{reader.what}, assertion {i + 1}", raw.line_of("assert"))
        for i, a in enumerate(raw_assertions)
    )


def _merge(defaults: LineMap, raw: LineMap) -> LineMap:
    """Eval fields over suite defaults (tags are joined separately), keeping lines."""
    merged = LineMap({k: v for k, v in defaults.items() if k != "tags"})
    merged.update(raw)
    merged.line = raw.line
    merged.key_lines = {**defaults.key_lines, **raw.key_lines}
    return merged


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SpecError(f"not UTF-8 text (byte {exc.start}); save the file as UTF-8", path=path, line=line) from None


def _parse(path: Path, text: str) -> object:
    return load_yaml_of(path, text, "malformed YAML", SpecError)


def _read_suite(path: Path, document: object) -> SuiteSpec:
    if document is None:
        raise SpecError("empty eval file; it needs an 'evals:' list", path=path, line=1)
    if not isinstance(document, LineMap):
        raise SpecError("an eval file is a mapping with an 'evals:' list", path=path, line=1)
    reader = _Reader(path, document, "eval file")
    reader.reject_unknown(SUITE_KEYS)
    version = reader.get("agentloop", int, FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise reader.fail(
            "agentloop", f"format version {version} is not supported (this plugin reads {FORMAT_VERSION})"
        )
    defaults = _defaults(path, reader)
    raw_evals = reader.get("evals", list, required=True)
    if not raw_evals:
        raise reader.fail("evals", "the list is empty; add at least one eval")
    citations = _citations(reader)
    evals, problems = [], []
    for raw in raw_evals:  # every eval is read, so one run names every error of the file
        try:
            evals.append(_read_one(path, raw, defaults, document.line_of("evals")))
        except SpecError as exc:
            problems.append(exc)
    if problems:
        raise SpecErrors(problems)
    if citations is not None:
        evals = [replace(spec, citations=citations) for spec in evals]
    _reject_duplicates(path, evals)
    return SuiteSpec(
        path=path,
        evals=tuple(evals),
        traces_dir=_relative_dir(path, reader.get("traces", str)),
        dataroom_dir=_relative_dir(path, _sources_root(reader)),
        citations=citations,
    )


def _defaults(path: Path, reader: _Reader) -> LineMap:
    defaults: LineMap = reader.get("defaults", dict, LineMap())
    checked = _Reader(path, defaults, "defaults")
    checked.reject_unknown(DEFAULT_KEYS)
    checked.convert("tags", checked.get("tags", list, []), _tags)
    return defaults


def _sources_root(reader: _Reader) -> str | None:
    root, alias = reader.get("sources_root", str), reader.get("dataroom", str)
    if root is not None and alias is not None:
        raise reader.fail("dataroom", "'dataroom' is the old name of 'sources_root'; give only one of them")
    value = root if root is not None else alias
    if value is not None and (value.strip() == "" or "\0" in value):
        raise reader.fail("sources_root" if root is not None else "dataroom", "expected a folder path")
    return value


def _citations(reader: _Reader) -> dict[str, str] | None:
    value = reader.get("citations", dict)
    return None if value is None else reader.convert("citations", value, validate_citations)


def _read_one(path: Path, raw: object, defaults: LineMap, line: int) -> EvalSpec:
    if not isinstance(raw, LineMap):
        raise SpecError("each item under 'evals' must be a mapping", path=path, line=line)
    return _read_eval(path, raw, defaults)


def _reject_duplicates(path: Path, evals: list[EvalSpec]) -> None:
    seen: dict[str, int] = {}
    for spec in evals:
        if spec.id in seen:
            raise SpecError(
                f"duplicate eval id {spec.id!r} (first defined on line {seen[spec.id]})", path=path, line=spec.line
            )
        seen[spec.id] = spec.line


def _relative_dir(path: Path, value: str | None) -> Path | None:
    return None if value is None else (path.parent / value)


def load_suite(path: Path, max_bytes: int) -> SuiteSpec:
    """Load and validate one eval file; raises :class:`SpecError` for anything wrong."""
    size = path.stat().st_size
    if size > max_bytes:
        raise SpecError(
            f"file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit for eval files; "
            "split it into several files or raise the ini option agentloop_max_eval_file_mb",
            path=path,
        )
    text = _decode(path, path.read_bytes())
    document = _parse(path, text)
    if "*" in text and expanded_size(document) > MAX_EXPANDED_VALUES:
        raise SpecError(
            f"YAML aliases expand to more than {MAX_EXPANDED_VALUES:,} values (or refer to themselves); "
            "write the values out or use fewer aliases",
            path=path,
        )
    return _read_suite(path, document)
