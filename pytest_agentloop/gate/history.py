"""Run history in SQLite: one row a run, one row an eval result, the run's selection; versioned.

A run is written in one transaction by the process that owns the session (the
xdist controller), so a killed run leaves either all of its rows or none, and
the database stays consistent (SQLite rolls back an unfinished transaction on
the next open).

The schema is declared once, below; its version is SQLite's ``user_version``.
Opening a database made by an older version for writing migrates it in place
(columns and tables are only ever added); reading never writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.results import AssertionResult, EvalResult, Outcome, Selection

SCHEMA_VERSION = 2

RUN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "TEXT PRIMARY KEY"),
    ("started", "TEXT NOT NULL"),
    ("finished", "TEXT NOT NULL"),
    ("git_commit", "TEXT"),
    ("git_branch", "TEXT"),
    ("harness_version", "TEXT"),
    ("options", "TEXT NOT NULL"),
    ("exit_status", "INTEGER"),
    ("baseline_ref", "TEXT"),  # v2
)
RESULT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE"),
    ("nodeid", "TEXT NOT NULL"),
    ("eval_id", "TEXT NOT NULL"),
    ("title", "TEXT"),
    ("trace_id", "TEXT"),
    ("trace_label", "TEXT"),
    ("tags", "TEXT NOT NULL DEFAULT ''"),
    ("split", "TEXT NOT NULL DEFAULT 'optimization'"),
    ("must_pass", "INTEGER NOT NULL DEFAULT 0"),
    ("scoring", "TEXT"),
    ("outcome", "TEXT NOT NULL"),
    ("score", "REAL"),
    ("verdict_source", "TEXT"),
    ("duration", "REAL"),
    ("repeats", "INTEGER"),
    ("flaky", "INTEGER NOT NULL DEFAULT 0"),
    ("input_tokens", "INTEGER"),
    ("output_tokens", "INTEGER"),
    ("cost", "REAL"),
    ("explanation", "TEXT"),
    ("baseline_status", "TEXT"),
    ("eval_file", "TEXT"),  # v2 from here on
    ("trace_store", "TEXT"),
    ("question", "TEXT"),
    ("harness_version", "TEXT"),
    ("literal_score", "REAL"),
    ("judge_score", "REAL"),
    ("judge_reason", "TEXT"),
    ("judge_votes", "TEXT"),
    ("assertions", "TEXT"),
)
ITEM_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE"),
    ("nodeid", "TEXT NOT NULL"),
    ("selected", "INTEGER NOT NULL"),
)
TABLES = {
    "runs": (RUN_COLUMNS, ""),
    "results": (RESULT_COLUMNS, ", PRIMARY KEY (run_id, nodeid)"),
    "run_items": (ITEM_COLUMNS, ", PRIMARY KEY (run_id, nodeid)"),
}
INDEXES = ("CREATE INDEX IF NOT EXISTS results_by_eval ON results(nodeid)",)


class HistoryError(AgentloopError):
    """The run history cannot be read or written."""


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
    baseline_ref: str | None = None

    def facts(self) -> dict[str, Any]:
        """What an export or a report says about the run: id, times, commit, branch, harness, exit status."""
        return {
            "run_id": self.run_id,
            "started": self.started,
            "finished": self.finished,
            "git_commit": self.git_commit,
            "git_branch": self.git_branch,
            "harness_version": self.harness_version,
            "exit_status": self.exit_status,
        }


def _create(table: str) -> str:
    columns, extra = TABLES[table]
    return f"CREATE TABLE IF NOT EXISTS {table} (" + ", ".join(f"{n} {t}" for n, t in columns) + extra + ")"


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a database of any older version to :data:`SCHEMA_VERSION` (adding what is missing)."""
    for table, (columns, _) in TABLES.items():
        conn.execute(_create(table))
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns:
            if name not in present:
                default = kind.replace("NOT NULL", "").replace("REFERENCES runs(run_id) ON DELETE CASCADE", "")
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {default.strip()}")
    for statement in INDEXES:
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


class History:
    """The run history database at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _fail(self, exc: BaseException, doing: str) -> HistoryError:
        what = "a directory" if self.path.is_dir() else f"{type(exc).__name__}: {exc}"
        return HistoryError(
            f"run history cannot be {doing} ({what}); move the file aside or point --agentloop-history "
            "(ini agentloop_history) at another path",
            path=self.path,
        )

    @contextmanager
    def _connect(self, write: bool) -> Iterator[sqlite3.Connection]:
        """A connection; for writing, the schema is created or migrated first."""
        try:
            if write:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            elif not self.path.is_file():
                raise self._fail(FileNotFoundError("no such file"), "read")
            uri = self.path.resolve().as_uri() + ("" if write else "?mode=ro")
            with closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise HistoryError(
                        f"run history has schema version {version}, newer than this plugin reads "
                        f"({SCHEMA_VERSION}); upgrade pytest-agentloop",
                        path=self.path,
                    )
                if write:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA foreign_keys=ON")
                    with conn:
                        _migrate(conn)
                conn.row_factory = sqlite3.Row
                yield conn
        except (sqlite3.Error, OSError) as exc:
            raise self._fail(exc, "written" if write else "read") from None

    def check_writable(self) -> None:
        """Create or migrate the database now, so a path that cannot hold it fails before any eval runs."""
        with self._connect(write=True):
            pass

    def record(self, run: RunRow, results: list[EvalResult], selection: Selection | None = None) -> None:
        """Store a run, its results and its selection atomically."""
        run_values = {**vars(run), "options": json.dumps(run.options, sort_keys=True)}
        items = [(run.run_id, n, 1) for n in (selection or Selection()).selected]
        items += [(run.run_id, n, 0) for n in (selection or Selection()).deselected]
        with self._connect(write=True) as conn, conn:
            _insert(conn, "runs", [[run_values[n] for n, _ in RUN_COLUMNS]])
            _insert(conn, "results", (_row(run.run_id, r) for r in results))
            _insert(conn, "run_items", items)

    def exists(self) -> bool:
        """Whether there is a database file to read."""
        return self.path.is_file()

    def runs(self, limit: int | None = None) -> list[RunRow]:
        """Runs, newest first, with their outcome counts (none when there is no database yet)."""
        if not self.exists():
            return []
        with self._connect(write=False) as conn:
            query = "SELECT * FROM runs ORDER BY started DESC, run_id DESC" + (" LIMIT ?" if limit else "")
            rows = conn.execute(query, (limit,) if limit else ()).fetchall()
            counts = _counts(conn)
        return [_run(r, counts.get(r["run_id"], {})) for r in rows]

    def results(self, run_id: str) -> list[EvalResult]:
        """The results of one run, by node id."""
        with self._connect(write=False) as conn:
            rows = conn.execute("SELECT * FROM results WHERE run_id = ? ORDER BY nodeid", (run_id,)).fetchall()
        return [_result(r) for r in rows]

    def selection(self, run_id: str) -> Selection:
        """What a run selected and deselected (empty for runs recorded before schema 2)."""
        with self._connect(write=False) as conn:
            if not _has_table(conn, "run_items"):
                return Selection()
            rows = conn.execute(
                "SELECT nodeid, selected FROM run_items WHERE run_id = ? ORDER BY nodeid", (run_id,)
            ).fetchall()
        return Selection(
            tuple(r["nodeid"] for r in rows if r["selected"]), tuple(r["nodeid"] for r in rows if not r["selected"])
        )

    def evaluated(self, run_id: str) -> set[str]:
        """Node ids of the evals a run has results for."""
        with self._connect(write=False) as conn:
            return {r[0] for r in conn.execute("SELECT nodeid FROM results WHERE run_id = ?", (run_id,))}

    def resolve(self, ref: str, exclude: str | None = None) -> str | None:
        """A run id from ``latest`` or a full or unique-prefix run id."""
        runs = [r.run_id for r in self.runs() if r.run_id != exclude]
        if ref == "latest":
            return runs[0] if runs else None
        if ref in runs:
            return ref
        matches = [r for r in runs if r.startswith(ref)]
        return matches[0] if len(matches) == 1 else None

    def series(self, since: str | None = None) -> dict[str, list[EvalResult]]:
        """Every eval's results, oldest run first (for stats); ``run_started`` says when each run began."""
        if not self.exists():
            return {}
        query = (
            "SELECT results.*, runs.started AS run_started FROM results JOIN runs USING (run_id)"
            + (" WHERE runs.started >= ?" if since else "")
            + " ORDER BY runs.started, runs.run_id"
        )
        with self._connect(write=False) as conn:
            rows = conn.execute(query, (since,) if since else ()).fetchall()
        series: dict[str, list[EvalResult]] = {}
        for row in rows:
            series.setdefault(row["nodeid"], []).append(replace(_result(row), run_started=row["run_started"]))
        return series


def _insert(conn: sqlite3.Connection, table: str, rows: Iterable[list[Any] | tuple[Any, ...]]) -> None:
    names = [n for n, _ in TABLES[table][0]]
    marks = ", ".join("?" for _ in names)
    conn.executemany(f"INSERT OR REPLACE INTO {table} ({', '.join(names)}) VALUES ({marks})", rows)


def _row(run_id: str, result: EvalResult) -> list[Any]:
    data = result.to_json()
    data.update(
        run_id=run_id,
        tags=",".join(result.tags),
        must_pass=int(result.must_pass),
        flaky=int(result.flaky),
        assertions=json.dumps(data["assertions"], sort_keys=True) if result.assertions else None,
    )
    return [data[name] for name, _ in RESULT_COLUMNS]


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    return found is not None


def _counts(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for row in conn.execute("SELECT run_id, outcome, COUNT(*) AS n FROM results GROUP BY run_id, outcome"):
        counts.setdefault(row["run_id"], {})[row["outcome"]] = row["n"]
    return counts


def _run(row: sqlite3.Row, counts: dict[str, int]) -> RunRow:
    keys = set(row.keys())
    return RunRow(
        run_id=row["run_id"],
        started=row["started"],
        finished=row["finished"],
        git_commit=row["git_commit"],
        git_branch=row["git_branch"],
        harness_version=row["harness_version"],
        options=json.loads(row["options"]),
        exit_status=row["exit_status"],
        counts=counts,
        baseline_ref=row["baseline_ref"] if "baseline_ref" in keys else None,
    )


def _result(row: sqlite3.Row) -> EvalResult:
    """A result row of any schema version (columns a version lacks read as empty)."""
    data = {key: row[key] for key in row.keys()}  # noqa: SIM118 (iterating a Row gives values)
    assertions = json.loads(data["assertions"]) if data.get("assertions") else []
    return EvalResult(
        eval_id=data["eval_id"],
        nodeid=data["nodeid"],
        title=data["title"] or "",
        trace_id=data["trace_id"] or "",
        trace_label=data["trace_label"] or "",
        outcome=Outcome(data["outcome"]),
        score=data["score"],
        explanation=data["explanation"] or "",
        tags=tuple(t for t in (data["tags"] or "").split(",") if t),
        split=data["split"],
        must_pass=bool(data["must_pass"]),
        scoring=data["scoring"] or "",
        duration=data["duration"] or 0.0,
        verdict_source=data["verdict_source"],
        repeats=data["repeats"] or 1,
        flaky=bool(data["flaky"]),
        input_tokens=data["input_tokens"],
        output_tokens=data["output_tokens"],
        baseline_status=data.get("baseline_status"),
        eval_file=data.get("eval_file") or data["nodeid"].split("::")[0],
        trace_store=data.get("trace_store"),
        question=data.get("question"),
        harness_version=data.get("harness_version"),
        literal_score=data.get("literal_score"),
        judge_score=data.get("judge_score"),
        judge_reason=data.get("judge_reason"),
        judge_votes=data.get("judge_votes"),
        cost=data.get("cost"),
        assertions=tuple(AssertionResult.from_json(a) for a in assertions),
    )
