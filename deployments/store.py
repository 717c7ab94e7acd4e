"""Stored reports: one `ReportStore` with two database backends, plus one JSON file per report.

- SQLite (default, `store_url` unset): one file in the data dir, WAL so several ingress replicas on one
  node can share it.
- PostgreSQL (`store_url: postgresql://...`): what a multi-node cluster needs, so a report stored by an
  ingress replica on one node is readable through every other replica (and survives any of them).

The JSON file per report (`results_file`, as the replaced API returned) stays on the node that wrote it.
Retention (max age, max total size) is enforced when a store opens and then on save, at most every
`prune_every_seconds`, by whichever replica saves; deleting the same old rows twice is harmless.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deployments.schema import AnalysisReport

logger = logging.getLogger("ray.serve")

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    video_sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL DEFAULT 0,
    report TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_by_video ON reports (video_sha256);
"""

POSTGRES_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    id TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    video_sha256 TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    report JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_by_video ON reports (video_sha256);
CREATE INDEX IF NOT EXISTS reports_by_age ON reports (created_at);
"""

# Newest first, keep rows while the running total fits; the rest go. Same SQL on both backends.
_OVER_SIZE = """SELECT id FROM (SELECT id, SUM(size_bytes) OVER (ORDER BY created_at DESC, id DESC) AS running
                FROM reports) AS ranked WHERE running > {p}"""


class Retention(BaseModel):
    """How long stored reports live. Unset limits keep everything."""

    model_config = ConfigDict(extra="forbid")

    max_age_days: float | None = Field(None, gt=0, description="Reports older than this are deleted (row and JSON file).")
    max_total_mb: float | None = Field(None, gt=0, description="Oldest reports go first until the stored JSON fits.")
    prune_every_seconds: float = Field(300, ge=0, description="Pruning runs on save, at most this often per replica.")

    @property
    def active(self) -> bool:
        return self.max_age_days is not None or self.max_total_mb is not None


class _Sqlite:
    param = "?"

    def __init__(self, path: Path):
        self.db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SQLITE_SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(reports)")}
        if "size_bytes" not in columns:  # databases written before retention existed
            with self.db:
                self.db.execute("ALTER TABLE reports ADD COLUMN size_bytes INTEGER NOT NULL DEFAULT 0")
                self.db.execute("UPDATE reports SET size_bytes = length(CAST(report AS BLOB))")

    def put(self, report: AnalysisReport, text: str) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO reports (id, created_at, video_sha256, size_bytes, report) VALUES (?, ?, ?, ?, ?)",
                (report.id, _utc_text(report.created_at), report.source.sha256, len(text.encode()), text),
            )

    def get(self, report_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT report FROM reports WHERE id = ?", (report_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def delete_older(self, cutoff: datetime) -> list[str]:
        with self.db:
            return [r[0] for r in self.db.execute("DELETE FROM reports WHERE created_at < ? RETURNING id", (_utc_text(cutoff),))]

    def delete_over(self, max_bytes: int) -> list[str]:
        with self.db:
            return [r[0] for r in self.db.execute(
                f"DELETE FROM reports WHERE id IN ({_OVER_SIZE.format(p='?')}) RETURNING id", (max_bytes,))]

    def total_bytes(self) -> int:
        return int(self.db.execute("SELECT COALESCE(SUM(size_bytes), 0) FROM reports").fetchone()[0])

    def close(self) -> None:
        self.db.close()


class PostgresConnection:
    """One PostgreSQL connection per replica (callers serialise its use). Its schema is created under an
    advisory lock, because several replicas start at once and CREATE ... IF NOT EXISTS alone races on the
    catalogue; a connection the server dropped is reopened once. Shared by the report and the job store."""

    def __init__(self, url: str, schema_name: str, statements: list[str]):
        import psycopg  # only deployments that configure a store_url need it

        self._psycopg, self.url = psycopg, url
        self.schema_name, self.statements = schema_name, statements
        self.conn = self._connect()

    def _connect(self):
        conn = self._psycopg.connect(self.url, connect_timeout=10)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"reelscope.{self.schema_name}.schema",))
            for statement in self.statements:
                conn.execute(statement)
        return conn

    def run(self, work):
        try:
            with self.conn.transaction():
                return work(self.conn)
        except self._psycopg.OperationalError:
            if not self.conn.closed and not self.conn.broken:
                raise
            logger.warning("%s store: connection lost, reconnecting once", self.schema_name)
            self.conn = self._connect()
            with self.conn.transaction():
                return work(self.conn)

    def close(self) -> None:
        self.conn.close()


class _Postgres:
    def __init__(self, url: str):
        self.pg = PostgresConnection(url, "reports", [POSTGRES_SCHEMA])
        self._run = self.pg.run

    def put(self, report: AnalysisReport, text: str) -> None:
        self._run(lambda c: c.execute(
            """INSERT INTO reports (id, created_at, video_sha256, size_bytes, report) VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (id) DO UPDATE SET created_at = EXCLUDED.created_at, video_sha256 = EXCLUDED.video_sha256,
                   size_bytes = EXCLUDED.size_bytes, report = EXCLUDED.report""",
            (report.id, _utc(report.created_at), report.source.sha256, len(text.encode()), text),
        ))

    def get(self, report_id: str) -> dict[str, Any] | None:
        row = self._run(lambda c: c.execute("SELECT report FROM reports WHERE id = %s", (report_id,)).fetchone())
        return row[0] if row else None  # JSONB comes back as a dict

    def delete_older(self, cutoff: datetime) -> list[str]:
        return [r[0] for r in self._run(lambda c: c.execute(
            "DELETE FROM reports WHERE created_at < %s RETURNING id", (cutoff,)).fetchall())]

    def delete_over(self, max_bytes: int) -> list[str]:
        return [r[0] for r in self._run(lambda c: c.execute(
            f"DELETE FROM reports WHERE id IN ({_OVER_SIZE.format(p='%s')}) RETURNING id", (max_bytes,)).fetchall())]

    def total_bytes(self) -> int:
        return int(self._run(lambda c: c.execute("SELECT COALESCE(SUM(size_bytes), 0) FROM reports").fetchone()[0]))

    def close(self) -> None:
        self.pg.close()


class ReportStore:
    """Save and read reports; the backend is chosen by `url` (None or sqlite:// -> SQLite in data_dir)."""

    def __init__(self, data_dir: Path, url: str | None = None, retention: Retention | dict | None = None):
        self.data_dir = Path(data_dir)
        self.results_dir = self.data_dir / "results"
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.retention = Retention.model_validate(retention or {})
        self._lock = threading.Lock()
        if url and url.startswith(("postgresql://", "postgres://")):
            self.backend: _Sqlite | _Postgres = _Postgres(url)
        elif not url or url.startswith("sqlite://"):
            self.backend = _Sqlite(Path(url.removeprefix("sqlite://")) if url and url != "sqlite://" else self.data_dir / "reelscope.sqlite3")
        else:
            raise ValueError(f"store_url must start with postgresql:// or sqlite://, not {url.split(':')[0]!r}")
        self._last_prune = time.monotonic()
        if self.retention.active:  # once at start (a replica may live long before its first save), then on save
            self._prune_logged()

    @property
    def kind(self) -> str:
        return "postgresql" if isinstance(self.backend, _Postgres) else "sqlite"

    def results_file(self, report_id: str) -> Path:
        return self.results_dir / f"{report_id}.json"

    def save(self, report: AnalysisReport) -> Path:
        path = self.results_file(report.id)
        report.results_file = str(path)
        text = report.model_dump_json()
        partial = path.with_suffix(".json.partial")
        partial.write_text(text)
        partial.replace(path)  # a reader never sees half a file
        with self._lock:
            self.backend.put(report, text)
        if self.retention.active and time.monotonic() - self._last_prune >= self.retention.prune_every_seconds:
            self._prune_logged()
        return path

    def _prune_logged(self) -> None:
        try:
            self.prune()
        except Exception:  # retention must never fail a finished analysis
            logger.exception("report store: pruning failed")

    def get(self, report_id: str) -> AnalysisReport | None:
        with self._lock:
            data = self.backend.get(report_id)
        return AnalysisReport.model_validate(data) if data is not None else None

    def total_bytes(self) -> int:
        with self._lock:
            return self.backend.total_bytes()

    def prune(self, now: datetime | None = None) -> list[str]:
        """Apply the retention now; returns the ids deleted. JSON files of this node go with their rows, and any
        JSON file older than max_age (its row may have been pruned by another node) goes too."""
        self._last_prune = time.monotonic()
        now = now or datetime.now(timezone.utc)
        removed: list[str] = []
        with self._lock:
            if self.retention.max_age_days is not None:
                removed += self.backend.delete_older(now - timedelta(days=self.retention.max_age_days))
            if self.retention.max_total_mb is not None:
                removed += self.backend.delete_over(int(self.retention.max_total_mb * 1024 * 1024))
        for report_id in removed:
            self.results_file(report_id).unlink(missing_ok=True)
        if self.retention.max_age_days is not None:
            oldest = (now - timedelta(days=self.retention.max_age_days)).timestamp()
            for path in self.results_dir.glob("*.json"):
                if path.stat().st_mtime < oldest:
                    path.unlink(missing_ok=True)
        if removed:
            logger.info("report store: retention removed %d reports", len(removed))
        return removed

    def close(self) -> None:
        self.backend.close()


def _utc(value: str | datetime) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _utc_text(value: str | datetime) -> str:
    """SQLite compares text: one fixed UTC format keeps that order chronological."""
    return _utc(value).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
