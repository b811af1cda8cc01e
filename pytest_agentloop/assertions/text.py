"""Literal checks on text, following Promptfoo's deterministic assertion family."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import re2  # type: ignore[import-untyped]
from rapidfuzz.distance import Levenshtein

from pytest_agentloop.assertions import jsonscan
from pytest_agentloop.assertions.excerpts import around, closest_miss, head
from pytest_agentloop.assertions.jsonscan import check_schema
from pytest_agentloop.assertions.limits import CheckAborted, can_interrupt
from pytest_agentloop.assertions.registry import AssertionType, CheckInput, Outcome, register

DEFAULT_LEVENSHTEIN_THRESHOLD = 5
MAX_LEVENSHTEIN_THRESHOLD = 100_000
RE2 = "re2"
PYTHON = "python"
ENGINES = (RE2, PYTHON)


@dataclass(frozen=True)
class Pattern:
    """A ``regex`` assertion's pattern and the engine that runs it (RE2 unless the eval says ``engine: python``)."""

    text: str
    engine: str = RE2


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # errors are reported once, by us, not logged to stderr by the C++ library
    return options


@lru_cache(maxsize=512)
def compile_pattern(pattern: str, engine: str = RE2) -> Any:
    """The compiled pattern; ValueError naming the fallback when RE2 rejects it."""
    if engine == PYTHON:
        try:
            return re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression (Python re): {exc}") from None
    try:
        return re2.compile(pattern, _re2_options())
    except re2.error as exc:
        compile_pattern(pattern, PYTHON)  # a pattern no engine reads is reported as plainly invalid
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"RE2 cannot compile this pattern ({reason}); RE2 has no backreferences or lookaround. "
            "Rewrite it, or add `engine: python` to this assertion to use Python's re under a time limit"
        ) from None


# -- value validation -------------------------------------------------------


def _as_text(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a string value, got {type(value).__name__}")
    return str(value)


def _as_text_list(value: object) -> list[str]:
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list):
        items = [_as_text(item) for item in value]
    else:
        raise ValueError(f"expected a list of strings, got {type(value).__name__}")
    if not items or any(item == "" for item in items):
        raise ValueError("expected a non-empty list of non-empty strings")
    return items


def _validate_text(value: object) -> None:
    if _as_text(value) == "":
        raise ValueError("expected a non-empty string")


def _validate_regex(value: object) -> None:
    compile_pattern(_as_text(value), RE2)


def _validate_schema(value: object) -> None:
    if value is not None:
        check_schema(value)


def _word_bounds(value: object) -> tuple[int | None, int | None]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if isinstance(value, dict) and set(value) <= {"min", "max"} and value:
        bounds = (value.get("min"), value.get("max"))
        if all(b is None or (isinstance(b, int) and b >= 0) for b in bounds):
            return bounds
    raise ValueError("expected a word count: an integer, or {min: N, max: M}")


# -- substring checks --------------------------------------------------------


def _fold(text: str, ignore_case: bool) -> str:
    return text.casefold() if ignore_case else text


def _find(text: str, needle: str, ignore_case: bool) -> int:
    return _fold(text, ignore_case).find(_fold(needle, ignore_case))


def _describe_miss(text: str, needle: str, ignore_case: bool) -> str:
    folded_text, folded_needle = _fold(text, ignore_case), _fold(needle, ignore_case)
    miss = closest_miss(folded_text, folded_needle)
    if miss is None or miss[1] < min(len(needle), max(3, len(needle) // 3)):
        return f"no part of {needle!r} occurs in the output: {head(text)}"
    pos, size = miss
    return f"not found; closest: first {size} of {len(needle)} chars at offset {pos}: {around(text, pos, pos + size)}"


def _contains(ignore_case: bool) -> Callable[[object, CheckInput], Outcome]:
    def check(value: object, given: CheckInput) -> Outcome:
        needle = _as_text(value)
        case = " (ignoring case)" if ignore_case else ""
        expected = f"output contains {needle!r}{case}"
        pos = _find(given.text, needle, ignore_case)
        if pos >= 0:
            return Outcome(True, expected, f"found at offset {pos}: {around(given.text, pos, pos + len(needle))}")
        return Outcome(False, expected, _describe_miss(given.text, needle, ignore_case))

    return check


def _contains_many(ignore_case: bool, need_all: bool) -> Callable[[object, CheckInput], Outcome]:
    def check(value: object, given: CheckInput) -> Outcome:
        needles = _as_text_list(value)
        found = [n for n in needles if _find(given.text, n, ignore_case) >= 0]
        missing = [n for n in needles if n not in found]
        quantifier = "all of" if need_all else "any of"
        case = " (ignoring case)" if ignore_case else ""
        expected = f"output contains {quantifier} {needles!r}{case}"
        passed = not missing if need_all else bool(found)
        if passed:
            return Outcome(True, expected, f"found {found!r}")
        details = "; ".join(f"{n!r}: {_describe_miss(given.text, n, ignore_case)}" for n in missing)
        return Outcome(False, expected, f"missing {missing!r} — {details}")

    return check


def _equals(value: object, given: CheckInput) -> Outcome:
    if isinstance(value, dict | list):
        return _equals_json(value, given)
    want = _as_text(value)
    expected = f"output equals {head(want)!r}"
    if given.text == want:
        return Outcome(True, expected, "identical")
    pos = next((i for i, (a, b) in enumerate(zip(given.text, want, strict=False)) if a != b), None)
    pos = min(len(given.text), len(want)) if pos is None else pos
    return Outcome(False, expected, f"first difference at offset {pos}: {around(given.text, pos)}")


def _equals_json(value: object, given: CheckInput) -> Outcome:
    expected = f"output is JSON equal to {head(json.dumps(value))}"
    try:
        parsed = jsonscan.loads(given.text)
    except json.JSONDecodeError as exc:
        return Outcome(False, expected, f"output is not JSON: {exc}")
    if jsonscan.depth(parsed) != jsonscan.depth(value):  # unequal, and no deep recursion comparing them
        return Outcome(False, expected, f"JSON nested {jsonscan.depth(parsed)} levels deep: {head(given.text)}")
    return Outcome(parsed == value, expected, head(json.dumps(parsed)))


def _starts_with(value: object, given: CheckInput) -> Outcome:
    prefix = _as_text(value)
    expected = f"output starts with {prefix!r}"
    return Outcome(given.text.startswith(prefix), expected, f"starts with {head(given.text, len(prefix) + 40)!r}")


def _regex(value: object, given: CheckInput) -> Outcome:
    pattern = value if isinstance(value, Pattern) else Pattern(_as_text(value))
    expected = f"output matches /{pattern.text}/" + (" (Python re)" if pattern.engine == PYTHON else "")
    if pattern.engine == PYTHON and not can_interrupt():
        raise CheckAborted(
            "engine: python needs a time limit, which can only be enforced in the main thread on POSIX; "
            "rewrite the pattern for RE2"
        )
    match = compile_pattern(pattern.text, pattern.engine).search(given.text)
    if match:
        return Outcome(
            True, expected, f"matched at offset {match.start()}: {around(given.text, match.start(), match.end())}"
        )
    return Outcome(False, expected, f"no match in {head(given.text)}")


# -- JSON checks ---------------------------------------------------------------


def _is_json(value: object, given: CheckInput) -> Outcome:
    expected = "output is valid JSON" + (" matching the schema" if value else "")
    try:
        document = jsonscan.loads(given.text)
    except json.JSONDecodeError as exc:
        return Outcome(False, expected, f"not JSON ({exc.msg} at offset {exc.pos}): {around(given.text, exc.pos)}")
    problem = jsonscan.schema_problem(value, document)
    return Outcome(problem is None, expected, problem or head(given.text))


def _contains_json(value: object, given: CheckInput) -> Outcome:
    expected = "output contains a JSON value" + (" matching the schema" if value else "")
    checks, last, schema = 0, None, None if value is None else jsonscan.Schema(value)
    for pos, document in jsonscan.values(given.text):
        for candidate in [document] if value is None else jsonscan.containers(document):
            checks += 1
            if checks > jsonscan.MAX_SCHEMA_CHECKS:
                raise CheckAborted(
                    f"more than {jsonscan.MAX_SCHEMA_CHECKS:,} JSON values to check against the schema; "
                    "check a narrower artifact with is-json instead"
                )
            if schema is None or schema.fits(candidate):
                return Outcome(True, expected, f"JSON at offset {pos}: {around(given.text, pos)}")
            last = pos, candidate
    if last is None or schema is None:
        return Outcome(False, expected, "no JSON object or array found in " + head(given.text))
    return Outcome(False, expected, f"JSON at offset {last[0]} does not fit: {schema.problem(last[1])}")


# -- size and similarity -------------------------------------------------------


def _word_count(value: object, given: CheckInput) -> Outcome:
    low, high = _word_bounds(value)
    count = len(given.text.split())
    if low == high:
        expected = f"output has exactly {low} words"
    else:
        expected = f"output has between {low if low is not None else 0} and {high if high is not None else '∞'} words"
    passed = (low is None or count >= low) and (high is None or count <= high)
    return Outcome(passed, expected, f"{count} words")


def levenshtein(a: str, b: str, limit: int) -> int:
    """Edit distance between ``a`` and ``b``, or ``limit + 1`` once it must exceed ``limit`` (rapidfuzz, C)."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    return int(Levenshtein.distance(a, b, score_cutoff=limit))


def validate_levenshtein_threshold(value: object) -> int:
    """The largest edit distance allowed: a whole number from 0 to :data:`MAX_LEVENSHTEIN_THRESHOLD`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value != int(value)
        or not 0 <= value <= MAX_LEVENSHTEIN_THRESHOLD
    ):
        raise ValueError(f"expected a whole number of edits from 0 to {MAX_LEVENSHTEIN_THRESHOLD:,}, got {value!r}")
    return int(value)


def _levenshtein(value: object, given: CheckInput) -> Outcome:
    want = _as_text(value)
    threshold = given.threshold if given.threshold is not None else DEFAULT_LEVENSHTEIN_THRESHOLD
    limit = validate_levenshtein_threshold(threshold)
    distance = levenshtein(given.text, want, limit)
    shown = f"more than {limit}" if distance > limit else str(distance)
    expected = f"edit distance to {head(want)!r} at most {limit}"
    return Outcome(distance <= limit, expected, f"edit distance {shown}")


THRESHOLD_FREE_TYPES = frozenset(
    {
        "contains",
        "icontains",
        "contains-any",
        "contains-all",
        "icontains-any",
        "icontains-all",
        "equals",
        "starts-with",
        "regex",
        "is-json",
        "contains-json",
        "word-count",
        "artifacts-exist",
        "json-shape",
        "csv-columns",
        "sources-resolve",
    }
)
"""Built-in types that take no ``threshold`` (a threshold on them is an error, not silently ignored)."""


def _register_all() -> None:
    simple = {
        "contains": (_contains(False), _validate_text),
        "icontains": (_contains(True), _validate_text),
        "contains-any": (_contains_many(False, False), _as_text_list),
        "contains-all": (_contains_many(False, True), _as_text_list),
        "icontains-any": (_contains_many(True, False), _as_text_list),
        "icontains-all": (_contains_many(True, True), _as_text_list),
        "equals": (_equals, lambda v: None if isinstance(v, dict | list) else _as_text(v)),
        "starts-with": (_starts_with, _validate_text),
        "regex": (_regex, _validate_regex),
        "is-json": (_is_json, _validate_schema),
        "contains-json": (_contains_json, _validate_schema),
        "word-count": (_word_count, _word_bounds),
        "levenshtein": (_levenshtein, _as_text),
    }
    for name, (check, validate) in simple.items():
        register(AssertionType(name=name, check=check, validate=validate))


_register_all()
