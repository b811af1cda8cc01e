"""Checks on a recorded run's artifact files and the sources they cite.

Paths taken from artifacts are untrusted: a cited path that is absolute, climbs
out with ``..`` or leaves the root through a symlink fails its check and is never
opened.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path, PurePosixPath

from pytest_agentloop.assertions.excerpts import head
from pytest_agentloop.assertions.jsonscan import loads
from pytest_agentloop.assertions.registry import AssertionType, CheckInput, Outcome, register

#: Artifacts read by ``sources-resolve`` when a suite declares no ``citations:`` (those present are checked).
DEFAULT_SOURCE_FIELDS = {
    "citations.json": "sources",
    "risk_register.json": "evidence",
    "evidence_table.csv": "sources",
}
CSV_SOURCE_SEPARATOR = ";"


class UnsafePath(ValueError):
    """A path that would leave its root."""


def safe_join(root: Path, relative: str) -> Path:
    """``root / relative`` if it stays inside ``root`` once symlinks are resolved."""
    pure = PurePosixPath(relative.replace("\\", "/"))
    if _unsafe_chars(relative) or relative.strip() == "" or pure.is_absolute() or ".." in pure.parts:
        raise UnsafePath(f"{relative!r} is not a plain relative path")
    if ":" in pure.parts[0]:
        raise UnsafePath(f"{relative!r} is not a plain relative path")
    candidate = root.joinpath(*pure.parts)
    if not candidate.resolve().is_relative_to(root.resolve()):
        raise UnsafePath(f"{relative!r} resolves outside {root}")
    return candidate


def _unsafe_chars(value: str) -> bool:
    """NUL and other control characters never belong in a path the plugin opens."""
    return any(ord(c) < 32 for c in value)


def validate_relative(value: object) -> str:
    """Value check for an artifact name: a plain relative path."""
    if not isinstance(value, str):
        raise ValueError(f"expected a relative file name, got {type(value).__name__}")
    pure = PurePosixPath(value.replace("\\", "/"))
    if not value.strip() or _unsafe_chars(value) or pure.is_absolute() or ".." in pure.parts or ":" in value:
        raise ValueError(f"{value!r} must be a relative path inside the run's artifacts")
    return value


def _names(value: object) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValueError("expected a non-empty list of artifact file names")
    return [validate_relative(v) for v in value]


def _require_dirs(given: CheckInput) -> Path:
    if given.artifacts_dir is None:
        raise ValueError("this eval's trace has no artifacts folder")
    return given.artifacts_dir


def _read(given: CheckInput, name: str) -> tuple[str | None, str]:
    """Text of artifact ``name`` or (None, why it could not be read)."""
    try:
        path = safe_join(_require_dirs(given), name)
    except (UnsafePath, ValueError) as exc:
        return None, str(exc)
    if not path.is_file():
        return None, f"{name} is missing"
    try:
        return path.read_text(encoding="utf-8"), ""
    except UnicodeDecodeError as exc:
        return None, f"{name} is not UTF-8 text (byte {exc.start})"


# -- artifacts-exist -----------------------------------------------------------


def _artifacts_exist(value: object, given: CheckInput) -> Outcome:
    wanted = _names(value)
    problems = []
    for name in wanted:
        try:
            path = safe_join(_require_dirs(given), name)
        except (UnsafePath, ValueError) as exc:
            problems.append(str(exc))
            continue
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif path.stat().st_size == 0:
            problems.append(f"{name}: empty")
    expected = f"artifacts present and non-empty: {', '.join(wanted)}"
    return Outcome(not problems, expected, "; ".join(problems) or "all present")


# -- json-shape -----------------------------------------------------------------


SHAPE_TYPES = ("list", "object")


def _shape(value: object) -> tuple[list[str], str | None, int]:
    """Keys, required top-level type (None: object or list) and least list length of a json-shape value."""
    if isinstance(value, list):
        return _shape_keys(value), "list", 1
    if not isinstance(value, dict) or "keys" not in value:
        raise ValueError("expected {keys: [...], type: list|object, min_items: N} or a list of keys")
    unknown = sorted(set(value) - {"keys", "type", "min_items"})
    if unknown:
        raise ValueError(f"unknown fields {unknown}; expected keys, type, min_items")
    kind = value.get("type")
    if kind is not None and kind not in SHAPE_TYPES:
        raise ValueError(f"type must be one of {', '.join(SHAPE_TYPES)}, got {kind!r}")
    min_items = value.get("min_items")
    if min_items is not None:
        if isinstance(min_items, bool) or not isinstance(min_items, int) or min_items < 0:
            raise ValueError(f"min_items must be a whole number ≥ 0, got {min_items!r}")
        if kind == "object":
            raise ValueError("min_items applies to a list; drop it or use type: list")
        kind = "list"
    return _shape_keys(value["keys"]), kind, 1 if min_items is None else min_items


def _shape_keys(keys: object) -> list[str]:
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise ValueError("keys must be a list of key names")
    return keys


def _shape_expected(name: str, keys: list[str], kind: str | None, min_items: int) -> str:
    listed = f"a JSON list of ≥{min_items} objects with keys {keys}"
    single = f"a JSON object with keys {keys}"
    return f"{name} is " + {"list": listed, "object": single}.get(kind or "", f"{single}, or {listed}")


def _json_shape(value: object, given: CheckInput) -> Outcome:
    name = given.artifact or ""
    keys, kind, min_items = _shape(value)
    expected = _shape_expected(name, keys, kind, min_items)
    text, why = _read(given, name)
    if text is None:
        return Outcome(False, expected, why)
    try:
        document = loads(text)
    except json.JSONDecodeError as exc:
        return Outcome(False, expected, f"{name} is not valid JSON: {exc.msg} at line {exc.lineno}")
    if isinstance(document, dict) and kind != "list":
        missing = [k for k in keys if k not in document]
        seen = f"object lacks {missing}: {head(json.dumps(document))}" if missing else "an object with the keys"
        return Outcome(not missing, expected, seen)
    if kind == "object":
        return Outcome(False, expected, f"top level is {_json_type(document)}, not an object")
    return Outcome(*_shape_problem(document, keys, min_items, expected))


def _json_type(document: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(document), "a number" if isinstance(document, int | float) else "null"
    )


def _shape_problem(document: object, keys: list[str], min_items: int, expected: str) -> tuple[bool, str, str]:
    if not isinstance(document, list):
        return False, expected, f"top level is {_json_type(document)}, not a list"
    if len(document) < min_items:
        return False, expected, f"{len(document)} items"
    for index, entry in enumerate(document):
        if not isinstance(entry, dict):
            return False, expected, f"item {index} is {_json_type(entry)}, not an object"
        missing = [k for k in keys if k not in entry]
        if missing:
            return False, expected, f"item {index} lacks {missing}: {head(json.dumps(entry))}"
    return True, expected, f"{len(document)} items, all with the keys"


# -- csv-columns ----------------------------------------------------------------


def _read_csv(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text), strict=True)
    rows = list(reader)
    if reader.fieldnames is None:
        raise csv.Error("no header row")
    return rows


def _csv_header(text: str) -> list[str]:
    header = next(csv.reader(io.StringIO(text), strict=True), None)
    if not header:
        raise csv.Error("no header row")
    return [h.strip() for h in header]


def _csv_columns(value: object, given: CheckInput) -> Outcome:
    name = given.artifact or ""
    columns = _names(value)
    expected = f"{name} is CSV with columns {columns}"
    text, why = _read(given, name)
    if text is None:
        return Outcome(False, expected, why)
    try:
        header = _csv_header(text)
        _read_csv(text)
    except csv.Error as exc:
        return Outcome(False, expected, f"{name} is not valid CSV: {exc}")
    missing = [c for c in columns if c not in header]
    return Outcome(not missing, expected, f"header {header}" + (f"; missing {missing}" if missing else ""))


# -- sources-resolve ------------------------------------------------------------


def validate_citations(value: object) -> dict[str, str]:
    """An artifact contract: a mapping of artifact file name to the field holding its cited sources."""
    if not isinstance(value, dict) or not value:
        raise ValueError(
            "expected a mapping of artifact file name to the field holding its sources, like {citations.json: sources}"
        )
    for key, field in value.items():
        validate_relative(key)
        if not isinstance(field, str) or not field.strip():
            raise ValueError(f"the field for {key!r} must be a field name, got {field!r}")
        if not key.endswith((".json", ".csv")):
            raise ValueError(f"{key!r}: cited sources are read from .json or .csv artifacts only")
    return dict(value)


def _validate_source_fields(value: object) -> None:
    if value is not None:
        validate_citations(value)


def _as_sources(found: object) -> list[str]:
    items = found if isinstance(found, list) else [found]
    return [str(s) for s in items if s is not None and str(s).strip()]


def _cited(name: str, field: str, text: str) -> list[str]:
    """Every source path cited in one artifact; raises ValueError if it cannot be read.

    A CSV artifact has a column ``field`` of ``;``-separated paths; a JSON
    artifact is an object whose ``field`` holds a path or a list of them, or a
    list of such objects.
    """
    if name.endswith(".csv"):
        rows = _read_csv(text)
        return [s.strip() for row in rows for s in (row.get(field) or "").split(CSV_SOURCE_SEPARATOR) if s.strip()]
    document = loads(text)
    if isinstance(document, dict):
        if field not in document:
            raise ValueError(f"the object has no field {field!r}")
        return _as_sources(document[field])
    if not isinstance(document, list):
        raise ValueError("top level is neither an object nor a list")
    return [s for entry in document if isinstance(entry, dict) for s in _as_sources(entry.get(field, []))]


def _unresolved(root: Path, source: str) -> str | None:
    try:
        path = safe_join(root, source)
    except UnsafePath:
        return f"{source!r} escapes the sources root (not opened)"
    return None if path.is_file() else f"{source!r} does not exist under the sources root"


def _contract(value: object, given: CheckInput) -> tuple[dict[str, str], str]:
    """The artifacts to read and a note; without a declared contract, the default artifacts that exist."""
    if isinstance(value, dict):
        return dict(value), ""
    present = {n: f for n, f in DEFAULT_SOURCE_FIELDS.items() if _read(given, n)[0] is not None}
    if present:
        return present, f" (no `citations:` declared; checked {', '.join(present)})"
    return dict(DEFAULT_SOURCE_FIELDS), ""


def _sources_resolve(value: object, given: CheckInput) -> Outcome:
    fields, note = _contract(value, given)
    expected = f"every source cited in {', '.join(fields)} is a file under the sources root"
    if given.dataroom_dir is None:
        return Outcome(False, expected, "no sources root is configured for this suite (set `sources_root:`)")
    problems, count = [], 0
    for name, field in fields.items():
        text, why = _read(given, name)
        try:
            cited = _cited(name, field, text) if text is not None else []
        except (ValueError, csv.Error) as exc:
            why = f"{name} cannot be read: {exc}"
        if why:
            problems.append(why)
            continue
        count += len(cited)
        problems.extend(f"{name}: {p}" for s in cited if (p := _unresolved(given.dataroom_dir, s)))
    return Outcome(not problems, expected, ("; ".join(problems) or f"{count} citations, all resolve") + note)


def _register_all() -> None:
    register(AssertionType("artifacts-exist", _artifacts_exist, _names, target="artifacts"))
    register(AssertionType("json-shape", _json_shape, _shape, target="artifacts", needs_artifact=True))
    register(AssertionType("csv-columns", _csv_columns, _names, target="artifacts", needs_artifact=True))
    register(
        AssertionType("sources-resolve", _sources_resolve, _validate_source_fields, target="artifacts", negatable=False)
    )


_register_all()
