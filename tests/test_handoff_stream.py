"""The optimization context written as a stream: same bytes as the in-memory build, little memory, which traces."""

from __future__ import annotations

import json
import random
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.errors import TraceStoreError
from pytest_agentloop.formats import problem
from pytest_agentloop.handoff.context import PASSING_TRACES_IN_FULL, Evidence, build_context, write_context
from pytest_agentloop.handoff.produce import produce
from pytest_agentloop.handoff.report import RunInfo
from pytest_agentloop.results import EvalResult, Outcome
from pytest_agentloop.traces.quickcheck import span_fits
from pytest_agentloop.traces.spanindex import SpanIndex, SpanSource
from pytest_agentloop.traces.spans import KIND_CLIENT, Resource, span_line
from pytest_agentloop.traces.store import TraceStore, iter_spans

START = datetime(2026, 1, 12, 9, 0, 0)
SORT_KEY = ("trace_id", "start_time", "span_id")


def trace_id(n: int) -> str:
    return f"{n + 1:032x}"


def run_spans(n: int, children: int, filler: str = "") -> list[dict[str, Any]]:
    """One run: its children in the order they ended (unsorted by start), then the root."""
    root_id = f"{n + 1:08x}{0:08x}"
    lines = [
        span_line(
            trace_id=trace_id(n),
            span_id=f"{n + 1:08x}{i + 1:08x}",
            parent_span_id=root_id,
            name="response",
            kind=KIND_CLIENT,
            observation="LLM",
            start=START + timedelta(seconds=(i * 7) % children),
            end=START + timedelta(seconds=children),
            resource=Resource("agent"),
            attributes={"output.value": f"caf\u00e9 {i} {filler}"},
            project_id="p",
        )
        for i in range(children)
    ]
    root = span_line(
        trace_id=trace_id(n),
        span_id=root_id,
        name="agent",
        kind="SPAN_KIND_INTERNAL",
        observation="AGENT",
        start=START,
        end=START + timedelta(seconds=children + 1),
        resource=Resource("agent"),
        attributes={"input.value": f"question {n}"},
        project_id="p",
    )
    return [*lines, root]


def write_store(root: Path, runs: int, children: int = 4, *, store_format: int = 1, filler: str = "") -> TraceStore:
    """A store whose span lines come in every style a writer produces (see the comment below)."""
    shared: list[str] = []
    for n in range(runs):
        folder = root / "runs" / f"run-{n:02d}"
        folder.mkdir(parents=True)
        record = {"format": store_format, "trace_id": trace_id(n), "label": f"run-{n:02d}", "question": "q"}
        record |= {"harness_version": "v1", "model": None, "created": "2026-01-12T09:00:00Z", "provenance": "synthetic"}
        (folder / "record.json").write_text(json.dumps(record))
        (folder / "answer.md").write_text("answer")
        # the context's own form (copied byte for byte), capture's compact form, ASCII escapes; CRLF endings
        styles = [{"ensure_ascii": False}, {"separators": (",", ":"), "ensure_ascii": False}, {"ensure_ascii": True}]
        lines = [json.dumps(s, **styles[(n + i) % 3]) for i, s in enumerate(run_spans(n, children, filler))]
        ending = "\r\n" if n % 4 == 3 else "\n"
        if store_format == 2:
            (folder / "spans.jsonl").write_bytes("".join(line + ending for line in lines).encode())
        else:
            shared += [line + ending for line in lines]
    if store_format == 1:
        (root / "spans.jsonl").write_bytes("".join(shared).encode())
    return TraceStore(root)


def result(n: int, outcome: Outcome = Outcome.PASSED, split: str = "optimization") -> EvalResult:
    return EvalResult(
        eval_id=f"e{n}",
        nodeid=f"evals/x.eval.yaml::e{n}",
        title=f"E{n}",
        trace_id=trace_id(n),
        trace_label=f"run-{n:02d}",
        outcome=outcome,
        score=1.0 if outcome is Outcome.PASSED else 0.0,
        explanation="" if outcome is Outcome.PASSED else "missing runway",
        split=split,
    )


def evidence_of(store: TraceStore, results: list[EvalResult], **kwargs: Any) -> Evidence:
    ids = frozenset(r.trace_id for r in results)
    source = SpanSource(tuple(store.span_files(ids)), ids)
    records = tuple(sorted((r for r in store if r.trace_id in ids), key=lambda r: r.trace_id))
    return Evidence(results=tuple(results), specs={}, records=records, span_sources=(source,), **kwargs)


def streamed(evidence: Evidence, tmp_path: Path) -> bytes:
    out = tmp_path / "context.jsonl"
    with out.open("wb") as handle:
        write_context(evidence, handle, spool_dir=tmp_path)
    return out.read_bytes()


@pytest.mark.parametrize("store_format", [1, 2])
def test_streamed_context_is_the_in_memory_context_byte_for_byte(tmp_path: Path, store_format: int) -> None:
    """Sorted by (trace, start, span id), each line as json.dumps(ensure_ascii=False) writes it, whatever the style."""
    store = write_store(tmp_path / "store", runs=5, children=6, store_format=store_format)
    results = [result(n, Outcome.FAILED if n == 2 else Outcome.PASSED) for n in range(5)]
    evidence = evidence_of(store, results)
    text = streamed(evidence, tmp_path).decode()
    expected = sorted(store.spans(), key=lambda s: tuple(s[k] for k in SORT_KEY))
    assert text.splitlines()[: len(expected)] == [json.dumps(s, ensure_ascii=False) for s in expected]
    in_memory = Evidence(results=evidence.results, specs={}, records=evidence.records, agent_spans=tuple(store.spans()))
    assert text == "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in build_context(in_memory))


def test_memory_stays_small_however_large_the_store(tmp_path: Path) -> None:
    store = write_store(tmp_path / "store", runs=4, children=100, filler="x" * 20_000)  # 8 MB of span lines
    size = store.spans_path.stat().st_size
    evidence = evidence_of(store, [result(n, Outcome.FAILED) for n in range(4)])  # every trace in full
    out = tmp_path / "context.jsonl"
    with out.open("wb") as handle:
        tracemalloc.start()
        try:
            write_context(evidence, handle, spool_dir=tmp_path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert out.stat().st_size > size * 0.9  # it all went through
    assert peak < size / 8, f"peak {peak:,} bytes for a {size:,}-byte store"  # about 0.4 MB: a line or two at a time


def test_failing_and_feedback_traces_in_full_passing_ones_capped(tmp_path: Path) -> None:
    runs = PASSING_TRACES_IN_FULL + 5
    store = write_store(tmp_path / "store", runs=runs, children=3)
    results = [result(n) for n in range(runs)]
    results[runs - 1] = result(runs - 1, Outcome.FAILED)  # last by trace id: in full although past the cap
    results[runs - 2] = result(runs - 2, Outcome.FAILED, split="holdout")  # a holdout failure gives no preference
    feedback = ({"id": "hf-1", "trace_id": trace_id(runs - 3), "source": "human_feedback"},)
    lines = [
        json.loads(line) for line in streamed(evidence_of(store, results, feedback=feedback), tmp_path).splitlines()
    ]
    agent = [line for line in lines if not line["name"].isupper()]
    per_trace = {t: sum(1 for line in agent if line["trace_id"] == t) for t in map(trace_id, range(runs))}
    full = {trace_id(n) for n in range(PASSING_TRACES_IN_FULL)} | {trace_id(runs - 1), trace_id(runs - 3)}
    assert {t for t, count in per_trace.items() if count == 4} == full
    assert {t for t, count in per_trace.items() if count == 1} == set(per_trace) - full  # the root span only
    assert all(not line["parent_span_id"] for line in agent if line["trace_id"] not in full)
    roots = {line["trace_id"]: line["span_id"] for line in agent if not line["parent_span_id"]}
    evals = [line for line in lines if line["name"] == "EVAL_RESULT"]
    assert evals and all(line["parent_span_id"] == roots[line["trace_id"]] for line in evals)
    [summary] = [line for line in lines if line["name"] == "GATE_SUMMARY"]
    assert json.loads(summary["attributes"]["input.value"])["context"]["traces_root_span_only"] == 3


def test_a_bad_line_names_file_and_line_and_leaves_no_context(tmp_path: Path) -> None:
    store = write_store(tmp_path / "store", runs=2)
    with store.spans_path.open("a") as handle:
        handle.write('{"trace_id": "nothex"}\n')
    run_dir, target = tmp_path / "run", tmp_path / "out" / "handoff.md"
    with pytest.raises(TraceStoreError) as caught:
        produce(evidence_of(store, [result(0)]), RunInfo("r", "v1", "pytest"), target, run_dir, None, print)
    assert (caught.value.path, caught.value.line) == (store.spans_path, 11)
    assert caught.value.message.startswith("span line")
    assert [p.name for p in run_dir.iterdir()] == [] and not target.parent.exists()


def test_a_span_file_that_changes_before_it_is_copied_is_refused(tmp_path: Path) -> None:
    store = write_store(tmp_path / "store", runs=1)
    ids = frozenset({trace_id(0)})
    with (tmp_path / "spool").open("w+b") as spool:
        index = SpanIndex(spool, ids)
        index.add_source(SpanSource(tuple(store.span_files(ids)), ids))
        with store.spans_path.open("a") as handle:
            handle.write("\n")
        with (tmp_path / "out").open("wb") as out, pytest.raises(TraceStoreError, match="changed while the handoff"):
            index.write(out)


def test_lines_are_numbered_as_text_mode_reads_them(tmp_path: Path) -> None:
    good = json.dumps(run_spans(0, 1)[0])
    path = tmp_path / "spans.jsonl"
    path.write_bytes(f"{good}\r\n\n{good}\r{good}\r\r\n{good}".encode())
    with path.open(encoding="utf-8") as handle:
        expected = [n for n, line in enumerate(handle, 1) if line.strip()]
    assert [line.number for line in iter_spans(path)] == expected == [1, 3, 4, 6]
    path.write_bytes(f"{good}\n{good}\n".encode() + b'{"a": "\xff"}\n')
    with pytest.raises(TraceStoreError, match="not UTF-8") as caught:
        list(iter_spans(path))
    assert caught.value.line == 3


def test_the_quick_check_never_accepts_what_the_schema_refuses() -> None:
    """Random damage to a good span: whenever the quick check says yes, the full schema check agrees."""
    rng = random.Random(7)
    values: list[Any] = ["", "x", "0" * 32, "f" * 16, "SPAN_KIND_CLIENT", "STATUS_CODE_OK", 1, 1.5, True, None, [], {}]
    values += ["2026-01-12T09:14:03Z", "2026-01-12T09:14:03.5+01:00", "0" * 32 + "\n", "\u0661" * 4, {"attributes": {}}]
    accepted = refused = 0
    for _ in range(3000):
        span = json.loads(json.dumps(run_spans(0, 1)[0]))
        for _ in range(rng.randint(1, 3)):
            target = span
            path = rng.choice([[], ["status"], ["resource"], ["scope"]])
            for key in path:
                target = target[key] if isinstance(target.get(key), dict) else target
            key = rng.choice([*target, "extra", "code", "name", "attributes"])
            if rng.random() < 0.2:
                target.pop(key, None)
            else:
                target[key] = rng.choice(values)
        if span_fits()(span):
            accepted += 1
            assert problem("span", span) is None, span
        else:
            refused += 1
    assert accepted > 100 and refused > 1000  # both branches were exercised


def test_rerun_copies_the_saved_context_without_rewriting_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    saved = run_dir / "context.jsonl"
    saved.write_text('{"saved": 1}\n')
    before = saved.stat().st_ino
    evidence = Evidence(results=(result(0),), specs={}, records=())
    outcome = produce(
        evidence, RunInfo("r", "v1", "c"), run_dir / "handoff.md", run_dir, None, print, context_file=saved
    )
    assert saved.stat().st_ino == before
    assert outcome.context == run_dir / "handoff.context.jsonl" and outcome.context.read_text() == '{"saved": 1}\n'
