"""A Promptfoo config's tests as an eval file: vars, assertions, ``llm-rubric``, thresholds, metadata.

Configs written by ``agentloop promptfoo export`` come back as they went out
(the metadata carries the eval's fields; Python assertions naming this
package's check become the assertion they stand for). For other configs,
assertion types this plugin has are kept, ``llm-rubric`` becomes the rubric,
and anything without a counterpart is listed with the reason, never dropped
silently.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pytest_agentloop.assertions import lookup
from pytest_agentloop.backends.promptfoo_export import CHECK_SCRIPT, dump_config
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.spec import ID_PATTERN, TAG_PATTERN

RAW = re.compile(r"^\{% raw %\}(.*)\{% endraw %\}$", re.DOTALL)
DEFAULT_TRACE = "trace-01"
ASSERTION_FIELDS = ("weight", "metric", "threshold")


@dataclass
class Imported:
    """The eval file text and what could not be imported."""

    text: str
    count: int
    notes: list[str] = field(default_factory=list)


def unraw(value: Any) -> Any:
    """Undo the export's ``{% raw %}`` protection."""
    if isinstance(value, str):
        match = RAW.match(value)
        return match.group(1) if match else value
    if isinstance(value, list):
        return [unraw(v) for v in value]
    return value


class _Test:
    """One Promptfoo test being turned into an eval."""

    def __init__(self, raw: dict[str, Any], number: int, notes: list[str], trace: str | None) -> None:
        self.raw, self.notes = raw, notes
        self.meta: dict[str, Any] = dict(raw.get("metadata") or {})
        description = str(raw.get("description") or "")
        self.id = str(self.meta.get("eval_id") or _slug(description.split(":")[0]) or f"test-{number}")
        self.where = f"test {number} ({self.id})"
        self.trace = str(self.meta.get("trace") or trace or DEFAULT_TRACE)
        if not self.meta.get("trace") and trace is None:
            notes.append(f"{self.where}: no recorded run named; using trace {DEFAULT_TRACE!r} (set --trace)")
        self.title = str(self.meta.get("title") or description or self.id)
        self.assertions: list[dict[str, Any]] = []
        self.rubric: str | None = None
        self.threshold: float | None = None
        self.assertion_threshold: float | None = None

    def read_asserts(self, asserts: list[Any]) -> None:
        for item in asserts:
            if isinstance(item, dict):
                self._one(item)
            else:
                self.notes.append(f"{self.where}: assertion {item!r} is not a mapping")
        if self.raw.get("threshold") is not None:
            self._test_threshold(float(self.raw["threshold"]))

    def _test_threshold(self, value: float) -> None:
        if self.rubric is not None:
            self.notes.append(
                f"{self.where}: test threshold {value:g} averages the rubric with the assertions in Promptfoo; "
                "imported as the assertions' threshold (the rubric keeps its own)"
            )
        self.assertion_threshold = value

    def _one(self, item: dict[str, Any]) -> None:
        kind = str(item.get("type") or "")
        if kind == "llm-rubric":
            self._rubric(item)
        elif kind == "assert-set":
            self._assert_set(item)
        elif kind == "python" and str(item.get("value", "")).endswith(CHECK_SCRIPT.name):
            self._agentloop_check(item)
        else:
            self._literal(kind, item)

    def _rubric(self, item: dict[str, Any]) -> None:
        if self.rubric is not None:
            self.notes.append(f"{self.where}: a second llm-rubric is not imported (an eval has one rubric)")
            return
        self.rubric = str(unraw(item.get("value") or ""))
        if item.get("threshold") is not None:
            self.threshold = float(item["threshold"])
        if item.get("weight") is not None or item.get("metric"):
            self.notes.append(f"{self.where}: llm-rubric weight/metric not imported (the rubric must pass on its own)")

    def _assert_set(self, item: dict[str, Any]) -> None:
        threshold = item.get("threshold")
        nested = [a for a in item.get("assert") or [] if isinstance(a, dict)]
        if any(a.get("type") in ("llm-rubric", "assert-set") for a in nested):
            self.notes.append(f"{self.where}: assert-set holding a rubric or another set is not imported")
            return
        for nested_item in nested:
            self._one(nested_item)
        counted = [a for a in nested if a.get("weight", 1) != 0]
        if threshold is not None and not (float(threshold) == 1.0 and len(counted) < len(nested)):
            self.assertion_threshold = float(threshold)

    def _agentloop_check(self, item: dict[str, Any]) -> None:
        config = (item.get("config") or {}).get("agentloop") or {}
        out = {k: config.get(k) for k in ("type", "value", "artifact", "threshold") if config.get(k) is not None}
        out.update({k: item[k] for k in ("weight", "metric") if item.get(k) is not None})
        if config.get("dataroom_dir"):
            self.dataroom = str(config["dataroom_dir"])
        self._keep(out)

    def _literal(self, kind: str, item: dict[str, Any]) -> None:
        out: dict[str, Any] = {"type": kind}
        if "value" in item:
            out["value"] = unraw(item["value"])
            if out["value"] == item["value"] and any(m in json.dumps(item["value"]) for m in ("{{", "{%")):
                self.notes.append(f"{self.where}: {kind}: value uses Promptfoo template variables; imported literally")
        out.update({k: item[k] for k in ASSERTION_FIELDS if item.get(k) is not None})
        extra = sorted(set(item) - {"type", "value", *ASSERTION_FIELDS})
        if extra:
            self.notes.append(f"{self.where}: {kind}: fields {', '.join(extra)} not imported")
        self._keep(out)

    def _keep(self, out: dict[str, Any]) -> None:
        kind = str(out.get("type"))
        found = lookup(kind)
        if found is None:
            self.notes.append(f"{self.where}: assertion type {kind!r} has no counterpart here; not imported")
            return
        try:
            found[0].validate(out.get("value"))
        except ValueError as exc:
            self.notes.append(f"{self.where}: {kind}: value not accepted here ({exc}); not imported")
            return
        self.assertions.append(out)

    dataroom: str | None = None

    def to_eval(self) -> dict[str, Any]:
        meta = self.meta
        scoring = ("hybrid" if self.assertions else "llm_judge") if self.rubric else "deterministic"
        data: dict[str, Any] = {"id": self.id, "title": self.title, "trace": self.trace, "scoring": scoring}
        tags = [t for t in meta.get("tags") or [] if isinstance(t, str) and TAG_PATTERN.match(t)]
        optional = {
            "tags": tags,
            "split": meta.get("split") if meta.get("split") in ("optimization", "holdout") else None,
            "must_pass": meta.get("must_pass") is True or None,
            "expected": meta.get("expected"),
            "rubric": self.rubric,
            "threshold": self.threshold if self.rubric else None,
            "assertion_threshold": self.assertion_threshold if self.assertions else None,
            "examples": meta.get("examples"),
            "repeat": meta.get("repeat"),
            "metadata": meta.get("eval_metadata"),
        }
        data.update({k: v for k, v in optional.items() if v})
        if self.assertions:
            data["assert"] = self.assertions
        return data


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text.strip()).strip("-.")[:60]
    return slug if ID_PATTERN.match(slug or "-") else ""


def _tests(document: dict[str, Any], notes: list[str]) -> list[dict[str, Any]]:
    tests = document.get("tests")
    if isinstance(tests, str) or (isinstance(tests, list) and any(not isinstance(t, dict) for t in tests)):
        notes.append("tests loaded from files (file://...) are not imported; inline them first")
    found = [t for t in tests if isinstance(t, dict)] if isinstance(tests, list) else []
    default = document.get("defaultTest") or {}
    if isinstance(default, dict) and default.get("assert"):
        found = [{**t, "assert": [*default["assert"], *(t.get("assert") or [])]} for t in found]
    if isinstance(default, dict) and set(default) - {"assert", "options", "metadata"}:
        notes.append(f"defaultTest fields {', '.join(sorted(set(default) - {'assert'}))} are not imported")
    return found


def import_config(path: Path, trace: str | None = None, out: Path | None = None) -> Imported:
    """The eval file text for ``path``'s tests (``out``: where it will be written, for relative paths)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise AgentloopError(f"cannot read the Promptfoo config: {exc}", path=path) from None
    if not isinstance(document, dict):
        raise AgentloopError("a Promptfoo config is a mapping with 'tests'", path=path)
    notes: list[str] = []
    tests = []
    for number, raw in enumerate(_tests(document, notes), 1):
        test = _Test(raw, number, notes, trace)
        test.read_asserts(list(raw.get("assert") or []))
        if not test.assertions and not test.rubric:
            notes.append(f"{test.where}: nothing to check after import; not imported")
            continue
        tests.append(test)
    if not tests:
        raise AgentloopError("no test could be imported: " + "; ".join(notes or ["the config has no tests"]), path=path)
    _unique_ids(tests)
    suite: dict[str, Any] = {"agentloop": 1}
    rooms = {t.dataroom for t in tests if t.dataroom}
    if rooms:
        base = (out or Path.cwd()).resolve().parent
        suite["dataroom"] = os.path.relpath(sorted(rooms)[0], base)
    suite["evals"] = [t.to_eval() for t in tests]
    header = f"# Imported from {path.name} by `agentloop promptfoo import`.\n"
    body = dump_config(suite).split("\n", 1)[1]
    return Imported(header + body, len(tests), notes)


def _unique_ids(tests: list[_Test]) -> None:
    seen: dict[str, int] = {}
    for test in tests:
        if test.id in seen:
            seen[test.id] += 1
            test.id = f"{test.id}-{seen[test.id]}"
        else:
            seen[test.id] = 1
