"""HTML report size and speed: a real pytest run of N generated evals with --agentloop-html, opened in Chromium.

    uv run python bench/report.py [--evals 10000] [--traces 500] [--history 19] [--repeats 3]

Generates N evals (10% failing, 30% holdout) over T recorded runs copied from the
bundled example (answers, artifacts, span lines), records H earlier runs in the
history (so the baseline diff and the trend strips are full), runs pytest once with
``--agentloop-baseline=latest --agentloop-html``, then rebuilds the same report with
``agentloop html latest``. Prints the file's size (target: under 10 MB) and, over the
repeats, how long headless Chromium (Debian's, driven by Playwright) takes from
navigation to a usable page (table, filters and header drawn; target: under 2 s), and
how long a search, a filter, a sort and opening an eval take once it is open.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pytest

from pytest_agentloop.cli import main as agentloop
from pytest_agentloop.gate.history import History, RunRow
from pytest_agentloop.results import EvalResult, Outcome

EXAMPLE = Path(__file__).resolve().parent.parent / "evals" / "diligence" / "traces"
LABELS = ["trace-01", "trace-02", "trace-03", "trace-04", "trace-05"]
EVAL = """  - id: eval-{n:05d}
    title: Generated eval {n} checks that run {t} names "{phrase}" and cites its sources
    trace: t-{t:04d}
    tags: [bench, group_{g}]
    split: {split}
    must_pass: {must}
    expected: Run {t} states "{phrase}" as the data room supports it (group {g}) and cites the file it comes from.
    assert:
      - {{type: icontains, value: "{phrase}", metric: facts}}
      - {{type: not-contains, value: "18 months"}}
      - {{type: word-count, value: {{min: 20}}}}
"""


def make_store(root: Path, traces: int) -> list[str]:
    """T recorded runs copied from the example's five (answers, artifacts, spans); returns their answers."""
    spans = [json.loads(line) for line in (EXAMPLE / "spans.jsonl").read_text().splitlines() if line.strip()]
    records = {label: json.loads((EXAMPLE / "runs" / label / "record.json").read_text()) for label in LABELS}
    answers, lines = [], []
    for index in range(traces):
        source = LABELS[index % 5]
        trace_id = f"{index:032x}"
        run = root / "traces" / "runs" / f"t-{index:04d}"
        shutil.copytree(EXAMPLE / "runs" / source, run)
        record = dict(records[source], trace_id=trace_id, label=f"t-{index:04d}")
        (run / "record.json").write_text(json.dumps(record))
        answer = (run / "answer.md").read_text() + f"\nRun {index}.\n"
        (run / "answer.md").write_text(answer)
        answers.append(answer)
        for span in spans:
            if span["trace_id"] == records[source]["trace_id"]:
                lines.append(json.dumps(dict(span, trace_id=trace_id, span_id=f"{index:08x}{span['span_id'][8:]}")))
    (root / "traces" / "spans.jsonl").write_text("\n".join(lines) + "\n")
    return answers


def make_suite(root: Path, evals: int, traces: int) -> list[str]:
    """N evals in files of 100; every tenth looks for a phrase its run does not hold. Returns node ids."""
    answers = make_store(root, traces)
    nodeids = []
    for start in range(0, evals, 100):
        body = []
        for n in range(start, min(evals, start + 100)):
            words = [w for w in answers[n % traces].split() if w.isalpha() and len(w) > 3]
            phrase = "a phrase no run wrote" if n % 10 == 0 else words[n % len(words)]
            split = "holdout" if n % 10 in (3, 6, 9) else "optimization"
            body.append(
                EVAL.format(n=n, t=n % traces, g=n % 12, split=split, must=str(n % 50 == 1).lower(), phrase=phrase)
            )
            nodeids.append(f"suite_{start // 100:03d}.eval.yaml::eval-{n:05d}")
        (root / f"suite_{start // 100:03d}.eval.yaml").write_text("agentloop: 1\nevals:\n" + "".join(body))
    (root / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return nodeids


def record_history(path: Path, nodeids: list[str], runs: int) -> None:
    """H earlier runs: every eval passing but a drifting few (so flips and regressions show)."""
    history = History(path)
    for run in range(runs):
        started = f"2026-11-{run + 1:02d}T09:00:00.000000Z"
        results = [
            EvalResult(
                eval_id=nodeid.split("::")[1],
                nodeid=nodeid,
                title="",
                trace_id="",
                trace_label="",
                outcome=Outcome.FAILED if (i + run) % 37 == 0 else Outcome.PASSED,
                score=0.5 if (i + run) % 37 == 0 else 1.0,
                explanation="",
                split="holdout" if i % 10 in (3, 6, 9) else "optimization",
                duration=0.002,
            )
            for i, nodeid in enumerate(nodeids)
        ]
        history.record(RunRow(f"run-{run:02d}", started, started, None, None, "v001", {}, 0, {}), results)


def run_pytest(root: Path, report: Path) -> float:
    """Seconds for the pytest run that writes the report."""
    sink = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(sink):
        code = pytest.main(
            [
                *(str(root), "-q", "-p", "no:cacheprovider", f"--rootdir={root}", f"--agentloop-html={report}"),
                *(f"--agentloop-history={root / 'history.sqlite'}", "--agentloop-baseline=latest"),
            ]
        )
    if code not in (0, 1) or not report.is_file():
        raise SystemExit(f"pytest failed (exit {code}):\n{sink.getvalue()[-3000:]}")
    summary = [line for line in sink.getvalue().splitlines() if " evals: " in line or "HTML report" in line]
    print("\n".join(summary))
    return time.perf_counter() - start


def measure_browser(report: Path, repeats: int) -> None:
    """Open the report in Chromium ``repeats`` times; time load-to-usable and a few interactions."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("needs Debian's chromium: apt-get install -y chromium")
    loads, ready = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        for _ in range(repeats):
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            start = time.perf_counter()
            page.goto(report.as_uri(), timeout=60_000)
            page.wait_for_selector("html[data-ready='1']", timeout=60_000)
            loads.append(time.perf_counter() - start)
            ready.append(page.evaluate("window.agentloopReady") / 1000)
            steps = interactions(page)
            page.close()
        browser.close()
    print(f"Chromium, navigation to usable (page clock): median {statistics.median(ready):.2f}s over {repeats} opens")
    print(f"Chromium, goto to usable (wall, this process): median {statistics.median(loads):.2f}s")
    for name, seconds in steps.items():
        print(f"  {name}: {seconds * 1000:.0f} ms")


def interactions(page: object) -> dict[str, float]:
    """Milliseconds of work each interaction triggers (the handlers run synchronously)."""
    script = """([selector, value, event]) => {
        const node = document.querySelector(selector);
        const start = performance.now();
        if (event === 'click') node.click(); else { node.value = value; node.dispatchEvent(new Event(event)); }
        return (performance.now() - start) / 1000;
    }"""
    steps = {
        "search 'eval-0999'": ("#search", "eval-0999", "input"),
        "clear the search": ("#search", "", "input"),
        "filter outcome=failed": ("#f-outcome", "failed", "change"),
        "all outcomes again": ("#f-outcome", "", "change"),
        "filter split=holdout": ("#f-split", "holdout", "change"),
        "sort by score": ("#sort", "score-asc", "change"),
        "open an eval (details drawn)": ("#table tbody tr", "", "click"),
    }
    times = {name: page.evaluate(script, list(args)) for name, args in steps.items()}  # type: ignore[attr-defined]
    start = time.perf_counter()  # the trace data is read on first use: wait until the trace is on screen
    page.click("#table tbody tr:nth-child(2)")  # type: ignore[attr-defined]
    page.wait_for_selector("#detail .answer, #detail table.spans")  # type: ignore[attr-defined]
    times["open another eval's trace, first trace read (wall)"] = time.perf_counter() - start
    return times


def main() -> None:
    """Generate, run, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=10_000)
    parser.add_argument("--traces", type=int, default=500)
    parser.add_argument("--history", type=int, default=19, help="earlier runs recorded before the measured one")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", help="copy the report here")
    parser.add_argument("--dir", help="generate here (kept) instead of a temporary folder")
    parser.add_argument("--open", help="only open this report in Chromium and time it")
    args = parser.parse_args()
    if args.open:
        report = Path(args.open)
        print(f"report size: {report.stat().st_size / 1_000_000:.2f} MB")
        measure_browser(report.resolve(), args.repeats)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.dir or tmp)
        nodeids = make_suite(root, args.evals, args.traces)
        record_history(root / "history.sqlite", nodeids, args.history)
        report = root / "report.html"
        seconds = run_pytest(root, report)
        size = report.stat().st_size
        print(f"evals: {args.evals} over {args.traces} recorded runs, {args.history + 1} runs in the history")
        print(f"pytest run writing the report: {seconds:.1f}s")
        print(f"report size: {size / 1_000_000:.2f} MB (target < 10 MB)")
        again = root / "again.html"
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = agentloop(["html", "--history", str(root / "history.sqlite"), "--root", str(root), "-o", str(again)])
        print(f"agentloop html latest (history + traces -> file): {time.perf_counter() - start:.2f}s, exit {code}")
        if args.repeats:
            measure_browser(report, args.repeats)
        if args.keep:
            shutil.copy(report, args.keep)


if __name__ == "__main__":
    main()
