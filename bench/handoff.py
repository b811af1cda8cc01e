"""The handoff over a large trace store: wall time and peak memory against a streaming parse of the same lines.

    uv run python bench/handoff.py [--size-mb 1024] [--runs 100] [--format 1|2] [--failing 0]

Writes a project into a temporary folder: a trace store with ``--size-mb``
of span lines (``--runs`` runs, each a root agent span and pairs of a model
call of about 8 KB and a tool call of about 2 KB, children written before
their root as tracers do), one eval per run (all passing, or the first
``--failing`` failing), and runs ``pytest evals --agentloop-handoff`` with no
key (the evidence-only fallback) in a fresh process. Format 1 keeps every
line in one ``spans.jsonl`` written by ``json.dumps``; format 2 gives each run
its own file in the compact form capture writes. Prints the handoff's wall
time and peak RSS, a plain run's (no handoff), and the time of a streaming
``json.loads`` of every span line, then the ratio (goal <= 5) and the peak
(goal < 200 MB), and the same ratio in CPU seconds (less swayed by other jobs
on the machine). The folder is deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUESTION = "What do runway and burn tell us about near-term financing risk?"
ANSWER = "Financing risk is high: burn $2.9M a month, 11 months of runway (financials/p_and_l.csv)."
RESOURCE = {
    "attributes": {
        "service.name": "diligence-analyst",
        "service.version": "v001",
        "deployment.environment": "bench",
        "agentloop.harness_version": "v001",
    }
}


def _span(name: str, kind: str, observation: str, attributes: dict[str, object]) -> dict[str, object]:
    """A span line with %-placeholders for trace id, span id, parent and times."""
    return {
        "trace_id": "%(trace)s",
        "span_id": "%(span)s",
        "parent_span_id": "%(parent)s",
        "trace_state": "",
        "name": name,
        "kind": kind,
        "start_time": "%(start)s",
        "end_time": "%(end)s",
        "status": {"code": "STATUS_CODE_OK", "message": ""},
        "resource": RESOURCE,
        "scope": {"name": "openai-agents", "version": "0.14.7"},
        "attributes": {
            "inference.export.schema_version": 1,
            "inference.project_id": "bench",
            "inference.observation_kind": observation,
            "openinference.span.kind": observation,
            "inference.agent_name": "diligence-analyst",
            **attributes,
        },
    }


def templates(compact: bool) -> tuple[str, str, str]:
    """Root, model-call and tool-call line templates, as ``json.dumps`` (or capture's compact form) writes them."""
    paragraph = "The P&L export shows monthly burn of $2.9M; the board packet agrees. " * 12
    messages = [{"role": "system", "content": paragraph}, {"role": "user", "content": QUESTION + " " + paragraph}]
    messages += [{"role": "tool", "content": paragraph[:1500]}] * 4
    llm = {
        "llm.model_name": "gpt-5.1",
        "llm.input_messages": json.dumps(messages),
        "llm.output_messages": json.dumps([{"role": "assistant", "content": paragraph[:600]}]),
        "llm.token_count.prompt": 2100,
        "llm.token_count.completion": 160,
        "inference.llm.model_name": "gpt-5.1",
        "inference.llm.input_tokens": 2100,
        "inference.llm.output_tokens": 160,
    }
    tool = {"tool.name": "read_file", "input.value": '{"path": "financials/p_and_l.csv"}', "output.value": paragraph}
    root = {"input.value": QUESTION, "output.value": ANSWER}
    separators = (",", ":") if compact else (", ", ": ")
    lines = [
        _span("agent.diligence-analyst", "SPAN_KIND_INTERNAL", "AGENT", root),
        _span("response", "SPAN_KIND_CLIENT", "LLM", llm),
        _span("read_file", "SPAN_KIND_INTERNAL", "TOOL", tool),
    ]
    root_t, llm_t, tool_t = (json.dumps(s, ensure_ascii=False, separators=separators) + "\n" for s in lines)
    return root_t, llm_t, tool_t


def _time(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"2026-01-12T{hours % 24:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}000000Z"


def run_lines(run: int, pairs: int, tpl: tuple[str, str, str]) -> list[str]:
    """One run's span lines: the children in the order they ended, the root last."""
    trace = f"{run:032x}"
    root_id = f"{run:08x}00000000"
    lines = []
    for i in range(pairs):
        for j, template in enumerate(tpl[1:]):
            start = 1000 * i + 500 * j
            values = {"trace": trace, "span": f"{run:08x}{2 * i + j + 1:08x}", "parent": root_id}
            lines.append(template % {**values, "start": _time(start), "end": _time(start + 400)})
    root = {"trace": trace, "span": root_id, "parent": "", "start": _time(0), "end": _time(1000 * pairs)}
    lines.append(tpl[0] % root)
    return lines


def write_project(root: Path, size: int, runs: int, store_format: int, failing: int) -> Path:
    """The project: pytest.ini, one eval per run, the store. Returns the store's (first) span file."""
    store = root / "evals" / "traces"
    tpl = templates(store_format == 2)
    assert all(t.count("%") == 5 for t in tpl), "the texts must hold no % of their own"
    pair = len(run_lines(0, 1, tpl)[0]) + len(run_lines(0, 1, tpl)[1])
    pairs = max(1, size // runs // pair)
    (root / "pytest.ini").write_text("[pytest]\n")
    evals = ["agentloop: 1", "evals:"]
    shared = store / "spans.jsonl"
    store.mkdir(parents=True)
    with shared.open("w", encoding="utf-8") as out:
        for run in range(runs):
            label = f"run-{run:03d}"
            folder = store / "runs" / label
            folder.mkdir(parents=True)
            record = {"format": store_format, "trace_id": f"{run:032x}", "label": label, "question": QUESTION}
            record |= {"harness_version": "v001", "model": "gpt-5.1", "created": "2026-01-12T00:00:00Z"}
            (folder / "record.json").write_text(json.dumps(record | {"provenance": "synthetic"}))
            (folder / "answer.md").write_text(ANSWER)
            lines = "".join(run_lines(run, pairs, tpl))
            if store_format == 2:
                (folder / "spans.jsonl").write_text(lines, encoding="utf-8")
            else:
                out.write(lines)
            check = f"{{type: contains, value: {'nowhere' if run < failing else 'runway'}}}"
            evals.append(f"  - {{id: e{run:03d}, title: E{run}, trace: {label}, assert: [{check}]}}")
    (root / "evals" / "bench.eval.yaml").write_text("\n".join(evals) + "\n")
    return shared if store_format == 1 else store / "runs" / "run-000" / "spans.jsonl"


def measured(args: list[str], cwd: Path) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds, peak RSS in MB and output of a fresh process (its own rusage, through wait4)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    started = time.perf_counter()
    process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):
        sys.exit(f"pytest exited {process.returncode}:\n{output}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, output


def streaming_parse(files: list[Path]) -> tuple[float, float, int]:
    """Wall and CPU seconds to ``json.loads`` every line of ``files`` one at a time, and how many lines."""
    started, cpu = time.perf_counter(), time.process_time()
    count = 0
    for path in files:
        with path.open("rb") as handle:
            for line in handle:
                json.loads(line)
                count += 1
    return time.perf_counter() - started, time.process_time() - cpu, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="span lines to generate, in MB (default 1024)")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--format", type=int, choices=(1, 2), default=1, help="store format (default 1)")
    parser.add_argument("--failing", type=int, default=0, help="how many evals fail (their traces go in full)")
    parser.add_argument("--dir", help="where to make the temporary project (default: the system's temp folder)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="agentloop-bench-handoff-", dir=args.dir))
    try:
        started = time.perf_counter()
        write_project(root, args.size_mb << 20, args.runs, args.format, args.failing)
        files = sorted((root / "evals" / "traces").rglob("spans.jsonl"))
        total = sum(p.stat().st_size for p in files)
        print(
            f"store: {total / 2**20:.0f} MB of span lines, {args.runs} runs, format {args.format}, "
            f"written in {time.perf_counter() - started:.1f} s"
        )
        pytest = [sys.executable, "-m", "pytest", "evals", "-q", "-p", "no:cacheprovider"]
        plain_wall, plain_cpu, plain_peak, _ = measured(pytest, root)
        wall, cpu, peak, output = measured([*pytest, "--agentloop-handoff=out/handoff.md"], root)
        if "handoff (evidence only)" not in output:
            sys.exit(f"no handoff written:\n{output}")
        context = root / "out" / "handoff.context.jsonl"
        with context.open("rb") as handle:
            context_lines = sum(1 for _ in handle)
        parse, parse_cpu, lines = streaming_parse(files)
        print(f"plain run (no handoff): wall {plain_wall:.1f} s (cpu {plain_cpu:.1f} s), peak {plain_peak:.0f} MB")
        print(f"context: {context.stat().st_size / 2**20:.0f} MB, {context_lines} lines (store: {lines} lines)")
        print(
            f"handoff: wall {wall:.1f} s, peak {peak:.0f} MB; streaming parse {parse:.1f} s; "
            f"ratio {wall / parse:.2f} (goal <= 5), peak goal < 200 MB"
        )
        print(
            f"cpu: handoff {cpu:.1f} s, streaming parse {parse_cpu:.1f} s, ratio {cpu / parse_cpu:.2f} "
            "(a busy machine shows as wall > cpu)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
