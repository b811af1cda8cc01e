"""The report document: one HTML file with its CSS, script and data inline, and a CSP that allows nothing else.

Every value from a run (titles, reasons, answers, artifacts) travels as gzipped JSON in base64
inside a ``<script type="application/gzip+base64">`` element (no markup can appear in it; a
10,000-eval run's data shrinks about sixfold), and the page's script puts it on screen with
``textContent`` only. The Content-Security-Policy allows exactly the page's own script and
style (by hash): even a value that escaped all that could run nothing.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from dataclasses import asdict
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from pytest_agentloop.report.model import (
    DIFF_KINDS,
    OUTCOME_LETTERS,
    EvalRow,
    ReportInput,
    TraceView,
)
from pytest_agentloop.report.trends import pass_rate_svg

TRACE_BUDGET = 4_000_000  # characters of trace text (answers, artifacts) embedded in one report
ROW_COLUMNS = (
    "nodeid",
    "eval_id",
    "title",
    "outcome",
    "score",
    "explanation",
    "tags",
    "split",
    "must_pass",
    "scoring",
    "duration",
    "verdict_source",
    "repeats",
    "flaky",
    "input_tokens",
    "output_tokens",
    "baseline_status",
    "trace_label",
    "trace_id",
    "line",
    "rubric",
    "threshold",
    "expected",
    "judge_reason",
    "assertions",
    "trace",
    "hist",
)
OUTCOME_ORDER = ("failed", "error", "passed", "skipped")
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def _static(name: str) -> str:
    return resources.files("pytest_agentloop.report").joinpath("static", name).read_text(encoding="utf-8")


def encode(data: object) -> str:
    """The data element's text: JSON, gzipped, in base64 (only ``A-Za-z0-9+/=``: safe inside HTML)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)).decode("ascii")


def decode(text: str) -> dict[str, Any]:
    """Inverse of :func:`encode`."""
    data: dict[str, Any] = json.loads(gzip.decompress(base64.b64decode(text)).decode("utf-8"))
    return data


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def _row(row: EvalRow, trace_key: str | None, hist: list[Any]) -> list[Any]:
    special = {
        "assertions": [
            [a.type, a.line, int(a.passed), a.score, a.weight, a.expected, a.seen, a.artifact, a.metric]
            for a in row.assertions
        ],
        "tags": list(row.tags),
        "must_pass": int(row.must_pass),
        "flaky": int(row.flaky),
        "duration": round(row.duration, 4),
        "trace": trace_key,
        "hist": hist,
        # Said once: the trace's id is in its entry, the eval id is the node id's last part.
        "trace_id": None if trace_key is not None else row.trace_id,
        "eval_id": None if row.nodeid.endswith("::" + row.eval_id) else row.eval_id,
    }
    return [special[c] if c in special else getattr(row, c) for c in ROW_COLUMNS]


def _urgency(row: EvalRow) -> tuple[int, int]:
    status = {"regressions": 0, "still_failing": 2, "new": 3}.get(row.baseline_status or "", 4)
    return (
        status if row.outcome in ("failed", "error") else 5,
        OUTCOME_ORDER.index(row.outcome) if row.outcome in OUTCOME_ORDER else 9,
    )


class _Traces:
    """Each distinct trace loaded once; text embedded for the most urgent evals' traces until the budget is spent."""

    def __init__(self, report: ReportInput, budget: int) -> None:
        self.report, self.budget = report, budget
        self.keys: dict[tuple[str, str], str] = {}
        self.views: dict[str, dict[str, Any]] = {}

    def key_of(self, row: EvalRow) -> str | None:
        ident = (row.trace_store or str(Path(row.file).parent), row.trace_id or row.trace_label)
        if not ident[1]:
            return None
        if ident not in self.keys:
            view = self.report.load_trace(row)
            if view is None:
                return None
            self.keys[ident] = key = str(len(self.keys))
            self.views[key] = self._embed(view)
        return self.keys[ident]

    def _embed(self, view: TraceView) -> dict[str, Any]:
        data = asdict(view)
        data["spans"] = [list(s.values()) for s in data["spans"]]
        cost = len(view.answer) + sum(len(a.text or "") for a in view.artifacts) + 80 * len(view.spans)
        if cost > self.budget:
            data["answer"] = ""
            data["spans"] = []
            for artifact in data["artifacts"]:
                artifact["text"] = None
            data["omitted"] = True
            return data
        self.budget -= cost
        return data


def payload(report: ReportInput, budget: int = TRACE_BUDGET) -> dict[str, Any]:
    """The data the page's script renders (rows as lists, traces once each)."""
    traces = _Traces(report, budget)
    for row in sorted(report.rows, key=_urgency):
        traces.key_of(row)
    rows = [_row(r, traces.key_of(r), _history(report, r)) for r in report.rows]
    diff = None
    if report.diff is not None:
        diff = {
            "ref": report.diff.ref,
            "splits": {s: {k: list(v.get(k, ())) for k in DIFF_KINDS} for s, v in report.diff.splits.items()},
        }
    return {
        "format": 1,
        "run": asdict(report.run),
        "columns": list(ROW_COLUMNS),
        "rows": rows,
        "traces": traces.views,
        "diff": diff,
        "history_runs": [[p.run_id, p.started] for p in report.trends.runs],
        "handoff": None if report.handoff is None else asdict(report.handoff),
    }


def _history(report: ReportInput, row: EvalRow) -> list[Any]:
    series = report.trends.per_eval.get(row.nodeid, ())
    letters = "".join(OUTCOME_LETTERS.get(outcome, "S") for outcome, _ in series)
    scores = [None if s is None else round(s, 3) for _, s in series]
    return [letters, scores[0] if len(set(scores)) == 1 else scores]  # one number when every run scored it


def render(report: ReportInput, budget: int = TRACE_BUDGET) -> str:
    """The whole HTML document."""
    script, style = _static("report.js"), _static("report.css")
    csp = (
        f"default-src 'none'; script-src {_csp_hash(script)}; style-src {_csp_hash(style)}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    parts = {
        "csp": escape(csp),
        "title": escape(report.title),
        "style": style,
        "summary": escape(_counts(report)),
        "trend": pass_rate_svg(report.trends.runs),
        **_data_elements(payload(report, budget)),
        "script": script,
    }
    # One pass over the template: text put in is never searched for placeholders again.
    return PLACEHOLDER.sub(lambda m: parts[m.group(1)], _static("report.html"))


def _data_elements(data: dict[str, Any]) -> dict[str, str]:
    """The traces go in an element of their own, read when an eval's trace is first opened."""
    rest = {k: v for k, v in data.items() if k != "traces"}
    return {"data": encode(rest), "traces": encode(data["traces"])}


def _counts(report: ReportInput) -> str:
    found = {name: 0 for name in OUTCOME_ORDER}
    for row in report.rows:
        found[row.outcome] = found.get(row.outcome, 0) + 1
    return f"{len(report.rows)} evals: " + ", ".join(f"{n} {k}" for k, n in found.items() if n)


DATA_ELEMENT = r'<script type="application/gzip\+base64" id="agentloop-{}">([A-Za-z0-9+/=]*)</script>'


def payload_of(document: str) -> dict[str, Any]:
    """The data embedded in a report (the inverse of :func:`payload` as :func:`render` writes it)."""
    found = [re.search(DATA_ELEMENT.format(name), document) for name in ("data", "traces")]
    if found[0] is None or found[1] is None:
        raise ValueError("not an agentloop HTML report: no data elements")
    return {**decode(found[0].group(1)), "traces": decode(found[1].group(1))}


def write(report: ReportInput, path: Path) -> Path:
    """Write the report to ``path`` atomically, readable like any file the user writes."""
    from pytest_agentloop.fileio import write_atomic

    written = write_atomic(path, render(report))
    written.chmod(0o644)
    return written
