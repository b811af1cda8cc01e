"""Run history in SQLite: one row a run, one row an eval result; queried for runs and stats.

A run is written in one transaction by the process that owns the session (the
xdist controller), so a killed run leaves either all of its rows or none, and
the database stays consistent (SQLite rolls back an unfinished transaction on
the next open).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pytest_agentloop.results import EvalResult, Outcome

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    git_commit TEXT,
    git_branch TEXT,
    harness_version TEXT,
    options TEXT NOT NULL,
    exit_status INTEGER
);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    nodeid TEXT NOT NULL,
    eval_id TEXT NOT NULL,
    title TEXT,
    trace_id TEXT,
    trace_label TEXT,
    tags TEXT NOT NULL,
    split TEXT NOT NULL,
    must_pass INTEGER NOT NULL,
    scoring TEXT,
    outcome TEXT NOT NULL,
    score REAL,
    verdict_source TEXT,
    duration REAL,
    repeats INTEGER,
    flaky INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost REAL,
    explanation TEXT,
    baseline_status TEXT,
    PRIMARY KEY (run_id, nodeid)
);
CREATE INDEX IF NOT EXISTS results_by_eval ON results(nodeid);
"""


@dataclass(frozen=True)
class RunRow:
    """One recorded session."""

    run_id: str
    started: str
    finished: str
    git_commit: str | None
    git_branch: str | None
    harness_version: str | None
    options: dict[str, Any]
    exit_status: int | None
    counts: dict[str, int]


class History:
    """The run history database at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=30)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.executescript(SCHEMA)
            _migrate(conn)
            conn.row_factory = sqlite3.Row
            yield conn

    def record(self, run: RunRow, results: list[EvalResult]) -> None:
        """Store a run and its results atomically."""
        with self._connect() as conn, conn:
            conn.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.run_id,
                    run.started,
                    run.finished,
                    run.git_commit,
                    run.git_branch,
                    run.harness_version,
                    json.dumps(run.options, sort_keys=True),
                    run.exit_status,
                ),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run.run_id,
                        r.nodeid,
                        r.eval_id,
                        r.title,
                        r.trace_id,
                        r.trace_label,
                        ",".join(r.tags),
                        r.split,
                        int(r.must_pass),
                        r.scoring,
                        r.outcome.value,
                        r.score,
                        r.verdict_source,
                        r.duration,
                        r.repeats,
                        int(r.flaky),
                        r.input_tokens,
                        r.output_tokens,
                        None,
                        r.explanation,
                        r.baseline_status,
                    )
                    for r in results
                ],
            )

    def runs(self, limit: int | None = None) -> list[RunRow]:
        """Runs, newest first, with their outcome counts."""
        if not self.path.exists():
            return []
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM runs ORDER BY started DESC, run_id DESC" + (" LIMIT ?" if limit else ""),
                (limit,) if limit else (),
            ).fetchall()
            counts = _counts(conn)
        return [
            RunRow(
                r["run_id"],
                r["started"],
                r["finished"],
                r["git_commit"],
                r["git_branch"],
                r["harness_version"],
                json.loads(r["options"]),
                r["exit_status"],
                counts.get(r["run_id"], {}),
            )
            for r in rows
        ]

    def results(self, run_id: str) -> list[EvalResult]:
        """The results of one run, by node id."""
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM results WHERE run_id = ? ORDER BY nodeid", (run_id,)).fetchall()
        return [_result(r) for r in rows]

    def resolve(self, ref: str, exclude: str | None = None) -> str | None:
        """A run id from ``latest`` or a full or unique-prefix run id."""
        runs = [r.run_id for r in self.runs() if r.run_id != exclude]
        if ref == "latest":
            return runs[0] if runs else None
        matches = [r for r in runs if r.startswith(ref)]
        return matches[0] if len(matches) == 1 else None

    def series(self, since: str | None = None) -> dict[str, list[EvalResult]]:
        """Every eval's results, oldest run first (for stats); ``run_started`` says when each run began."""
        if not self.path.exists():
            return {}
        query = (
            "SELECT results.*, runs.started AS run_started FROM results JOIN runs USING (run_id)"
            + (" WHERE runs.started >= ?" if since else "")
            + " ORDER BY runs.started, runs.run_id"
        )
        with self._connect() as conn:
            rows = conn.execute(query, (since,) if since else ()).fetchall()
        series: dict[str, list[EvalResult]] = {}
        for row in rows:
            series.setdefault(row["nodeid"], []).append(replace(_result(row), run_started=row["run_started"]))
        return series


def _migrate(conn: sqlite3.Connection) -> None:
    """Add columns that newer versions write to databases made by older ones."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(results)")}
    if "baseline_status" not in columns:
        conn.execute("ALTER TABLE results ADD COLUMN baseline_status TEXT")


def _counts(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for row in conn.execute("SELECT run_id, outcome, COUNT(*) AS n FROM results GROUP BY run_id, outcome"):
        counts.setdefault(row["run_id"], {})[row["outcome"]] = row["n"]
    return counts


def _result(row: sqlite3.Row) -> EvalResult:
    return EvalResult(
        eval_id=row["eval_id"],
        nodeid=row["nodeid"],
        title=row["title"] or "",
        trace_id=row["trace_id"] or "",
        trace_label=row["trace_label"] or "",
        outcome=Outcome(row["outcome"]),
        score=row["score"],
        explanation=row["explanation"] or "",
        tags=tuple(t for t in row["tags"].split(",") if t),
        split=row["split"],
        must_pass=bool(row["must_pass"]),
        scoring=row["scoring"] or "",
        duration=row["duration"] or 0.0,
        verdict_source=row["verdict_source"],
        repeats=row["repeats"] or 1,
        flaky=bool(row["flaky"]),
        input_tokens=row["input_tokens"],
        baseline_status=row["baseline_status"],
        output_tokens=row["output_tokens"],
    )
