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
from pytest_agentloop.assertions.registry import AssertionType, CheckInput, Outcome, register

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
    if relative.strip() == "" or pure.is_absolute() or ".." in pure.parts or ":" in pure.parts[0]:
        raise UnsafePath(f"{relative!r} is not a plain relative path")
    candidate = root.joinpath(*pure.parts)
    if not candidate.resolve().is_relative_to(root.resolve()):
        raise UnsafePath(f"{relative!r} resolves outside {root}")
    return candidate


def validate_relative(value: object) -> str:
    """Value check for an artifact name: a plain relative path."""
    if not isinstance(value, str):
        raise ValueError(f"expected a relative file name, got {type(value).__name__}")
    pure = PurePosixPath(value)
    if not value or pure.is_absolute() or ".." in pure.parts:
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


def _validate_shape(value: object) -> None:
    keys = value.get("keys") if isinstance(value, dict) else value
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValueError("expected {keys: [...], min_items: N} or a list of keys")
    if isinstance(value, dict) and not set(value) <= {"keys", "min_items"}:
        raise ValueError(f"unknown fields {sorted(set(value) - {'keys', 'min_items'})}")


def _json_shape(value: object, given: CheckInput) -> Outcome:
    name = given.artifact or ""
    keys = value.get("keys", []) if isinstance(value, dict) else value
    min_items = int(value.get("min_items", 1)) if isinstance(value, dict) else 1
    expected = f"{name} is a JSON list of ≥{min_items} objects with keys {keys}"
    text, why = _read(given, name)
    if text is None:
        return Outcome(False, expected, why)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        return Outcome(False, expected, f"{name} is not valid JSON: {exc.msg} at line {exc.lineno}")
    return Outcome(*_shape_problem(document, keys, min_items, expected))


def _shape_problem(document: object, keys: object, min_items: int, expected: str) -> tuple[bool, str, str]:
    if not isinstance(document, list):
        return False, expected, f"top level is {type(document).__name__}, not a list"
    if len(document) < min_items:
        return False, expected, f"{len(document)} items"
    for index, entry in enumerate(document):
        if not isinstance(entry, dict):
            return False, expected, f"item {index} is {type(entry).__name__}, not an object"
        missing = [k for k in keys if k not in entry] if isinstance(keys, list) else []
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


def _validate_source_fields(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError("expected a mapping of artifact file name to the field holding its sources")
    for key in value:
        validate_relative(key)


def _cited(name: str, field: str, text: str) -> list[str]:
    """Every source path cited in one artifact; raises ValueError if it cannot be read."""
    if name.endswith(".csv"):
        rows = _read_csv(text)
        return [s.strip() for row in rows for s in (row.get(field) or "").split(CSV_SOURCE_SEPARATOR) if s.strip()]
    document = json.loads(text)
    if not isinstance(document, list):
        raise ValueError("top level is not a list")
    sources: list[str] = []
    for entry in document:
        found = entry.get(field, []) if isinstance(entry, dict) else []
        sources.extend(found if isinstance(found, list) else [found])
    return [str(s) for s in sources]


def _unresolved(root: Path, source: str) -> str | None:
    try:
        path = safe_join(root, source)
    except UnsafePath:
        return f"{source!r} escapes the dataroom root (not opened)"
    return None if path.is_file() else f"{source!r} does not exist in the dataroom"


def _sources_resolve(value: object, given: CheckInput) -> Outcome:
    fields = value if isinstance(value, dict) else DEFAULT_SOURCE_FIELDS
    expected = f"every source cited in {', '.join(fields)} is a file under the dataroom"
    if given.dataroom_dir is None:
        return Outcome(False, expected, "no dataroom is configured for this suite (set `dataroom:`)")
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
    return Outcome(not problems, expected, "; ".join(problems) or f"{count} citations, all resolve")


def _register_all() -> None:
    register(AssertionType("artifacts-exist", _artifacts_exist, _names, target="artifacts"))
    register(AssertionType("json-shape", _json_shape, _validate_shape, target="artifacts", needs_artifact=True))
    register(AssertionType("csv-columns", _csv_columns, _names, target="artifacts", needs_artifact=True))
    register(
        AssertionType("sources-resolve", _sources_resolve, _validate_source_fields, target="artifacts", negatable=False)
    )


_register_all()
