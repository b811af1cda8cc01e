"""The documented file formats: record.json, span lines and the harness file, each validated on read.

Span lines are checked with the plugin's own schema; these tests hold that
schema against HALO's own model (``engine.traces.models.canonical_span.SpanRecord``):
whatever the plugin accepts, HALO accepts too.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.errors import AgentloopError, TraceStoreError
from pytest_agentloop.formats import PROVENANCE
from pytest_agentloop.handoff.evidence import read_harness
from pytest_agentloop.traces.spans import KIND_CLIENT, Resource, span_line
from pytest_agentloop.traces.store import TraceStore

from conftest import REPO, TRACE_IDS, write_run

# -- record.json ------------------------------------------------------------------


def _store_with_record(tmp_path: Path, **changes: Any) -> Path:
    run = write_run(tmp_path / "store", "trace-01", "answer")
    record = json.loads((run / "record.json").read_text())
    record.update(changes)
    for key, value in changes.items():
        if value is _DROP:
            del record[key]
    (run / "record.json").write_text(json.dumps(record, indent=2))
    return run / "record.json"


_DROP = object()


@pytest.mark.parametrize("provenance", [*PROVENANCE, {"source": "hand-written", "by": "ana", "note": "example"}])
def test_documented_provenance_is_read(tmp_path: Path, provenance: object) -> None:
    _store_with_record(tmp_path, provenance=provenance)
    record = TraceStore(tmp_path / "store").get("trace-01")
    assert record.provenance["source"] == (provenance if isinstance(provenance, str) else "hand-written")
    assert record.question == "question of trace-01?"


def test_older_provenance_spellings_map_to_the_vocabulary(tmp_path: Path) -> None:
    _store_with_record(tmp_path, provenance={"source": "example_authors", "note": "x"})
    assert TraceStore(tmp_path / "store").get("trace-01").provenance == {"source": "hand-written", "note": "x"}


def test_hand_written_string_provenance_runs_in_pytest(pytester: pytest.Pytester, eval_file, store: Path) -> None:
    path = store / "runs" / "trace-01" / "record.json"
    record = json.loads(path.read_text())
    record["provenance"] = "hand-written"
    path.write_text(json.dumps(record))
    eval_file("evals:\n  - {id: a, title: A, trace: trace-01, assert: [{type: contains, value: runway}]}\n")
    pytester.runpytest().assert_outcomes(passed=1)


BAD_RECORDS = {
    "provenance-unknown": ({"provenance": "made-up"}, "provenance", "recorded, captured, live, hand-written"),
    "provenance-object": ({"provenance": {"source": "robot"}}, "provenance", "hand-written"),
    "provenance-number": ({"provenance": 5}, "provenance", "hand-written"),
    "provenance-extra": ({"provenance": {"source": "live", "colour": 1}}, "provenance", "by, note"),
    "trace-id": ({"trace_id": "XYZ"}, "trace_id", "32 lowercase hex"),
    "label": ({"label": "trace 01"}, "label", "letters, digits"),
    "created": ({"created": "yesterday"}, "created", "2026-01-12T09:14:03Z"),
    "model": ({"model": 5}, "model", "null"),
    "question": ({"question": ["q"]}, "question", "question or task"),
    "harness-version": ({"harness_version": ""}, "harness_version", "harness version"),
    "format": ({"format": 3}, "format", "store format, 1 or 2"),
    "status": ({"status": "maybe"}, "status", "ok or failed"),
    "usage": ({"usage": {"input_tokens": -1}}, "usage", "whole numbers ≥ 0"),
    "cost": ({"cost_usd": "free"}, "cost_usd", "US dollars"),
    "unknown-field": ({"colour": "red"}, "colour", "unknown field"),
    "missing": ({"question": _DROP}, None, "'question' is a required property"),
}


@pytest.mark.parametrize(("changes", "field", "allowed"), BAD_RECORDS.values(), ids=BAD_RECORDS.keys())
def test_bad_record_names_file_line_and_field(
    tmp_path: Path, changes: dict[str, Any], field: str | None, allowed: str
) -> None:
    path = _store_with_record(tmp_path, **changes)
    with pytest.raises(TraceStoreError) as caught:
        TraceStore(tmp_path / "store")
    error = caught.value
    assert error.path == path
    assert allowed in error.message
    if field is not None:
        assert f"field {field!r}" in error.message
        assert error.line is not None
        assert f'"{field}"' in path.read_text().splitlines()[error.line - 1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"trace_id": "a", "trace_id": "b"}', "key 'trace_id' appears twice"),
        ("[]", "record must be a JSON object"),
        ("{", "record is not valid JSON"),
        ("[" * 100_000, "record is not valid JSON"),
    ],
    ids=["duplicate-key", "list", "truncated", "deep"],
)
def test_unreadable_record_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = _store_with_record(tmp_path)
    path.write_text(text)
    with pytest.raises(TraceStoreError, match=message):
        TraceStore(tmp_path / "store")


# -- span lines --------------------------------------------------------------------


def _halo_accepts(span: object) -> bool:
    from engine.traces.models.canonical_span import SpanRecord
    from pydantic import ValidationError

    try:
        SpanRecord.model_validate(span)
    except ValidationError:
        return False
    return True


def _good_span() -> dict[str, Any]:
    moment = datetime(2026, 1, 12, 9, 14, 3, tzinfo=UTC)
    return span_line(
        trace_id=TRACE_IDS["trace-01"],
        span_id="0123456789abcdef",
        name="llm.call",
        kind=KIND_CLIENT,
        observation="LLM",
        start=moment,
        end=moment,
        resource=Resource("svc"),
        attributes={"llm.model_name": "m"},
        project_id="p",
    )


def _mutate(path: tuple[str, ...], value: object) -> dict[str, Any]:
    span = copy.deepcopy(_good_span())
    target = span
    for key in path[:-1]:
        target = target[key]
    if value is _DROP:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return span


BAD_SPANS = {
    "no-trace-id": (("trace_id",), _DROP),
    "trace-id-number": (("trace_id",), 5),
    "no-span-id": (("span_id",), _DROP),
    "span-id-list": (("span_id",), ["a"]),
    "no-name": (("name",), _DROP),
    "kind-number": (("kind",), 1),
    "no-start": (("start_time",), _DROP),
    "end-null": (("end_time",), None),
    "status-string": (("status",), "OK"),
    "status-no-code": (("status", "code"), _DROP),
    "status-extra": (("status", "colour"), "red"),
    "resource-no-attributes": (("resource", "attributes"), _DROP),
    "resource-extra": (("resource", "x"), 1),
    "scope-no-name": (("scope", "name"), _DROP),
    "scope-version-number": (("scope", "version"), 1),
    "attributes-list": (("attributes",), []),
    "parent-number": (("parent_span_id",), 7),
}


@pytest.mark.parametrize(("path", "value"), BAD_SPANS.values(), ids=BAD_SPANS.keys())
def test_span_lines_halo_rejects_are_rejected_with_file_line_and_field(
    tmp_path: Path, path: tuple[str, ...], value: object
) -> None:
    span = _mutate(path, value)
    assert not _halo_accepts(span)
    (tmp_path / "runs").mkdir()
    lines = [json.dumps(_good_span()), json.dumps(span)]
    (tmp_path / "spans.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(TraceStoreError) as caught:
        TraceStore(tmp_path).spans()
    assert caught.value.line == 2
    assert caught.value.path == tmp_path / "spans.jsonl"
    assert caught.value.message.startswith(f"span line, field {path[0]!r}:") or "required property" in (
        caught.value.message
    )


STRICTER = {
    "trace-id-not-hex": (("trace_id",), "not-hex"),
    "kind-unknown": (("kind",), "SPAN_KIND_WHATEVER"),
    "time-format": (("start_time",), "yesterday"),
    "status-code-unknown": (("status", "code"), "FINE"),
}


@pytest.mark.parametrize(("path", "value"), STRICTER.values(), ids=STRICTER.keys())
def test_plugin_is_stricter_than_halo_where_the_brief_fixes_a_shape(
    tmp_path: Path, path: tuple[str, ...], value: object
) -> None:
    """Documented shapes (hex ids, OTel kinds and codes, UTC times) are checked; HALO only checks types."""
    span = _mutate(path, value)
    assert _halo_accepts(span)
    (tmp_path / "runs").mkdir()
    (tmp_path / "spans.jsonl").write_text(json.dumps(span) + "\n")
    with pytest.raises(TraceStoreError, match=f"span line, field {path[0]!r}"):
        TraceStore(tmp_path).spans()


def test_every_example_span_fits_both_schemas() -> None:
    store = TraceStore(REPO / "evals" / "diligence" / "traces")
    spans = store.spans()
    assert len(spans) == 43
    assert all(_halo_accepts(span) for span in spans)
    assert _halo_accepts(_good_span())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]\n", "span line must be a JSON object"),
        ("{not json\n", "span line is not JSON"),
        ('{"trace_id": "a", "trace_id": "b"}\n', "appears twice"),
    ],
)
def test_unreadable_span_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "spans.jsonl").write_text("\n" + text)
    with pytest.raises(TraceStoreError, match=message) as caught:
        TraceStore(tmp_path).spans()
    assert caught.value.line == 2


def test_span_file_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "spans.jsonl").write_bytes(b'{"a": "\xff"}\n')
    with pytest.raises(TraceStoreError, match="not UTF-8"):
        TraceStore(tmp_path).spans()


# -- the harness file --------------------------------------------------------------


def test_example_harness_is_read() -> None:
    harness = read_harness(REPO / "evals" / "diligence" / "harness.yaml")
    assert harness is not None
    assert harness["version"] == "v001"
    assert harness["model_settings"]["model"] == "gpt-5.1"


BAD_HARNESS = {
    "no-version": ("system_prompt: hi\n", 1, "'version' is a required property"),
    "version-list": ("version: [1]\n", 1, "field 'version'"),
    "prompt-number": ("version: v1\nsystem_prompt: 5\n", 2, "field 'system_prompt'"),
    "model-settings-string": ("version: v1\nmodel_settings: gpt\n", 2, "field 'model_settings'"),
    "model-number": ("version: v1\nmodel_settings:\n  model: 5\n", 2, "field 'model_settings'"),
    "tool-policy-list": ("version: v1\ntool_policy: [a]\n", 2, "field 'tool_policy'"),
    "unknown": ("version: v1\ncolour: red\n", 2, "field 'colour': unknown field"),
    "malformed": ("version: v1\nprompt: [unclosed\n", 3, "malformed YAML"),
    "duplicate": ("version: v1\nversion: v2\n", 2, "duplicate key 'version'"),
    "list": ("- a\n", 1, "must be a YAML mapping"),
    "python-tag": ("version: !!python/object/apply:os.system [echo]\n", 1, "malformed YAML"),
}


@pytest.mark.parametrize(("text", "line", "message"), BAD_HARNESS.values(), ids=BAD_HARNESS.keys())
def test_bad_harness_names_file_line_and_field(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "harness.yaml"
    path.write_text(text)
    with pytest.raises(AgentloopError) as caught:
        read_harness(path)
    assert caught.value.path == path
    assert caught.value.line == line
    assert message in caught.value.message


def test_harness_not_utf8_or_missing(tmp_path: Path) -> None:
    path = tmp_path / "harness.yaml"
    path.write_bytes(b"version: v1\nsystem_prompt: caf\xe9\n")
    with pytest.raises(AgentloopError, match="not UTF-8") as caught:
        read_harness(path)
    assert caught.value.line == 2
    with pytest.raises(AgentloopError, match="cannot be read") as caught:
        read_harness(tmp_path / "absent.yaml")
    assert caught.value.path == tmp_path / "absent.yaml"


def test_a_captured_run_record_and_its_own_span_file(tmp_path: Path) -> None:
    """Format 2 (what capture writes): extra run fields, and span lines kept in the run's folder."""
    path = _store_with_record(
        tmp_path,
        format=2,
        status="ok",
        error=None,
        usage={"input_tokens": 10, "output_tokens": 5, "requests": 1},
        cost_usd=0.001,
        wall_seconds=1.5,
        provenance={"source": "captured", "agent": "pkg.module:agent"},
    )
    sdk_span = _mutate(("span_id",), "493357b1e5ea430face27684")
    (path.parent / "spans.jsonl").write_text(json.dumps(sdk_span) + "\n" + json.dumps(_mutate(("name",), "")) + "\n")
    store = TraceStore(tmp_path / "store")
    assert store.get("trace-01").provenance["source"] == "captured"
    with pytest.raises(TraceStoreError, match="field 'name'") as caught:
        store.spans()
    assert (caught.value.path, caught.value.line) == (path.parent / "spans.jsonl", 2)
    (path.parent / "spans.jsonl").write_text(json.dumps(sdk_span) + "\n")
    assert [s["span_id"] for s in store.spans(TRACE_IDS["trace-01"])] == ["493357b1e5ea430face27684"]
    assert _halo_accepts(sdk_span)
