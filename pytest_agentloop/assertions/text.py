"""Literal checks on text, following Promptfoo's deterministic assertion family."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

from pytest_agentloop.assertions.excerpts import around, closest_miss, head
from pytest_agentloop.assertions.registry import AssertionType, CheckInput, Outcome, register

DEFAULT_LEVENSHTEIN_THRESHOLD = 5


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
    try:
        re.compile(_as_text(value))
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None


def _validate_schema(value: object) -> None:
    if value is None:
        return
    import jsonschema

    if not isinstance(value, dict):
        raise ValueError("expected a JSON Schema object (or no value)")
    try:
        jsonschema.Draft202012Validator.check_schema(value)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"invalid JSON Schema: {exc.message}") from None


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
        parsed = json.loads(given.text)
    except json.JSONDecodeError as exc:
        return Outcome(False, expected, f"output is not JSON: {exc}")
    return Outcome(parsed == value, expected, head(json.dumps(parsed)))


def _starts_with(value: object, given: CheckInput) -> Outcome:
    prefix = _as_text(value)
    expected = f"output starts with {prefix!r}"
    return Outcome(given.text.startswith(prefix), expected, f"starts with {head(given.text, len(prefix) + 40)!r}")


def _regex(value: object, given: CheckInput) -> Outcome:
    pattern = _as_text(value)
    expected = f"output matches /{pattern}/"
    match = re.search(pattern, given.text)
    if match:
        return Outcome(
            True, expected, f"matched at offset {match.start()}: {around(given.text, match.start(), match.end())}"
        )
    return Outcome(False, expected, f"no match in {head(given.text)}")


# -- JSON checks ---------------------------------------------------------------


def _schema_errors(schema: object, document: object) -> str | None:
    if schema is None:
        return None
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)  # type: ignore[arg-type]
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"schema violation at {where}: {error.message}"


def _is_json(value: object, given: CheckInput) -> Outcome:
    expected = "output is valid JSON" + (" matching the schema" if value else "")
    try:
        document = json.loads(given.text)
    except json.JSONDecodeError as exc:
        return Outcome(False, expected, f"not JSON ({exc.msg} at offset {exc.pos}): {around(given.text, exc.pos)}")
    problem = _schema_errors(value, document)
    return Outcome(problem is None, expected, problem or head(given.text))


def _json_candidates(text: str) -> Iterator[tuple[int, object]]:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            document, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        yield match.start(), document


def _contains_json(value: object, given: CheckInput) -> Outcome:
    expected = "output contains a JSON value" + (" matching the schema" if value else "")
    last_problem = "no JSON object or array found in " + head(given.text)
    for pos, document in _json_candidates(given.text):
        problem = _schema_errors(value, document)
        if problem is None:
            return Outcome(True, expected, f"JSON at offset {pos}: {around(given.text, pos)}")
        last_problem = f"JSON at offset {pos} does not fit: {problem}"
    return Outcome(False, expected, last_problem)


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
    """Edit distance between ``a`` and ``b``, or ``limit + 1`` once it must exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def _levenshtein(value: object, given: CheckInput) -> Outcome:
    want = _as_text(value)
    limit = int(given.threshold if given.threshold is not None else DEFAULT_LEVENSHTEIN_THRESHOLD)
    distance = levenshtein(given.text, want, limit)
    shown = f"more than {limit}" if distance > limit else str(distance)
    expected = f"edit distance to {head(want)!r} at most {limit}"
    return Outcome(distance <= limit, expected, f"edit distance {shown}")


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
