"""Background analysis jobs and the result cache, persisted in SQLite next to the stored reports.

A job runs as an asyncio task in the event loop of the ingress replica that accepted it. Its state lives
here, so any replica can answer `GET /jobs/{id}`; the task itself does not survive its replica. A running
job touches `heartbeat_at` every few seconds; a queued or running job whose heartbeat is older than
`STALE_SECONDS` belonged to a replica that died and is marked failed (at replica start and whenever it is
read), so no job stays "running" forever.

The cache maps (video sha256, analyzer set, configuration digest) to a stored report id.

Backends follow the report store's `store_url`: unset, a database file of its own (`jobs.sqlite3` in the
data folder, shared by the replicas of one node); `postgresql://...`, the same server as the reports, so a
job started through one node can be read through any other.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

logger = logging.getLogger("ray.serve")
HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 60.0
JOB_STATES = ("queued", "running", "done", "failed")

# heartbeat_at: epoch seconds, 8-byte float on both backends (PostgreSQL's REAL would round it to minutes).
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    heartbeat_at {float8} NOT NULL,
    state TEXT NOT NULL,
    job TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state);
CREATE TABLE IF NOT EXISTS result_cache (
    key TEXT PRIMARY KEY,
    report_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""
# The same statements run on both backends; `?` becomes `%s` for PostgreSQL.
UPSERT_CACHE = """INSERT INTO result_cache (key, report_id, created_at) VALUES (?, ?, ?)
                  ON CONFLICT (key) DO UPDATE SET report_id = excluded.report_id, created_at = excluded.created_at"""


class AnalyzerProgress(BaseModel):
    status: str = Field(..., description="pending until the analyzer ends, then its outcome status (ok, error, ...).")
    seconds: float | None = None
    error: str | None = None


class CallbackInfo(BaseModel):
    url: str
    state: str = Field("pending", description="pending, delivered or failed.")
    attempts: int = 0
    last_error: str | None = None


class Job(BaseModel):
    id: str
    state: str = Field(..., description="queued, running, done or failed.", examples=["running"])
    created_at: str
    updated_at: str
    filename: str
    video_sha256: str
    requested: list[str] = Field(..., description="Analyzers that will report, upstream included.")
    progress: dict[str, AnalyzerProgress] = Field(default_factory=dict, description="Per analyzer: pending or its outcome.")
    done_count: int = 0
    total_count: int = 0
    report_id: str | None = Field(None, description="When done: GET /analyses/{report_id} or /report/{report_id}.")
    cached: bool = Field(False, description="The report was a stored one for the same video, analyzers and configuration.")
    error: dict[str, str] | None = Field(None, description="When failed: {code, message}.")
    callback: CallbackInfo | None = None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def cache_key(video_sha256: str, requested: list[str], config_digest: str) -> str:
    """The expanded analyzer list is sorted: the same set asked in another order is the same request."""
    text = json.dumps([video_sha256, sorted(requested), config_digest])
    return hashlib.sha256(text.encode()).hexdigest()


def check_callback_url(url: str) -> str:
    """Only absolute http(s) URLs: no file:, gopher: or other schemes a client library might follow."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("callback_url must be an absolute http:// or https:// URL")
    if len(url) > 2000:
        raise ValueError("callback_url is longer than 2000 characters")
    return url.strip()


class _Sqlite:
    def __init__(self, path: Path):
        self.db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA.format(float8="REAL"))

    def run(self, sql: str, params: tuple | list = (), many: bool = False) -> list[tuple]:
        with self.db:
            if many:
                self.db.executemany(sql, params)
                return []
            return self.db.execute(sql, params).fetchall()

    def close(self) -> None:
        self.db.close()


class _Postgres:
    def __init__(self, url: str):
        from deployments.store import PostgresConnection

        statements = [st for st in SCHEMA.format(float8="DOUBLE PRECISION").split(";") if st.strip()]
        self.pg = PostgresConnection(url, "jobs", statements)

    def run(self, sql: str, params: tuple | list = (), many: bool = False) -> list[tuple]:
        sql = sql.replace("?", "%s")

        def work(conn):
            if many:
                with conn.cursor() as cursor:
                    cursor.executemany(sql, params)
                return []
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

        return self.pg.run(work)

    def close(self) -> None:
        self.pg.close()


class JobStore:
    def __init__(self, data_dir: Path, url: str | None = None, clock=None):
        import time

        self._clock = clock or time.time
        self._lock = threading.Lock()
        if url and url.startswith(("postgresql://", "postgres://")):
            self.backend: _Sqlite | _Postgres = _Postgres(url)
        else:  # SQLite: next to the reports (or their own sqlite:// file), in a file of its own
            Path(data_dir).mkdir(parents=True, exist_ok=True)
            self.backend = _Sqlite(Path(data_dir) / "jobs.sqlite3")

    def _run(self, sql: str, params: tuple | list = (), many: bool = False) -> list[tuple]:
        with self._lock:
            return self.backend.run(sql, params, many)

    # ---- jobs -------------------------------------------------------------------------------------------

    def create(self, filename: str, video_sha256: str, requested: list[str], callback_url: str | None) -> Job:
        stamp = now_iso()
        job = Job(
            id=uuid.uuid4().hex, state="queued", created_at=stamp, updated_at=stamp, filename=filename,
            video_sha256=video_sha256, requested=requested,
            progress={n: AnalyzerProgress(status="pending") for n in requested}, total_count=len(requested),
            callback=CallbackInfo(url=callback_url) if callback_url else None,
        )
        self._run("INSERT INTO jobs (id, created_at, updated_at, heartbeat_at, state, job) VALUES (?, ?, ?, ?, ?, ?)",
                  (job.id, job.created_at, job.updated_at, self._clock(), job.state, job.model_dump_json()))
        return job

    def save(self, job: Job) -> None:
        """Write the whole job and refresh its heartbeat (only the replica running a job writes it)."""
        job.updated_at = now_iso()
        job.done_count = sum(1 for p in job.progress.values() if p.status != "pending")
        self._run("UPDATE jobs SET updated_at = ?, heartbeat_at = ?, state = ?, job = ? WHERE id = ?",
                  (job.updated_at, self._clock(), job.state, job.model_dump_json(), job.id))

    def heartbeat(self, job_ids: list[str]) -> None:
        if job_ids:
            self._run("UPDATE jobs SET heartbeat_at = ? WHERE id = ?", [(self._clock(), i) for i in job_ids], many=True)

    def get(self, job_id: str) -> Job | None:
        self.fail_stale()
        rows = self._run("SELECT job FROM jobs WHERE id = ?", (job_id,))
        return Job.model_validate_json(rows[0][0]) if rows else None

    def fail_stale(self, stale_seconds: float = STALE_SECONDS) -> int:
        """Queued/running jobs nobody has touched for `stale_seconds`: their replica is gone, they never end."""
        rows = self._run("SELECT job FROM jobs WHERE state IN ('queued', 'running') AND heartbeat_at < ?",
                         (self._clock() - stale_seconds,))
        for (text,) in rows:
            job = Job.model_validate_json(text)
            job.state = "failed"
            job.error = {"code": "replica_lost",
                         "message": "the ingress replica running this job stopped before it finished; submit it again"}
            self.save(job)
        return len(rows)

    # ---- cache ------------------------------------------------------------------------------------------

    def cached_report_id(self, key: str) -> str | None:
        rows = self._run("SELECT report_id FROM result_cache WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def remember(self, key: str, report_id: str) -> None:
        self._run(UPSERT_CACHE, (key, report_id, now_iso()))

    def forget(self, key: str) -> None:
        self._run("DELETE FROM result_cache WHERE key = ?", (key,))

    def close(self) -> None:
        self.backend.close()


def callback_payload(job: Job, report: dict[str, Any] | None) -> dict[str, Any]:
    return {"job": job.model_dump(mode="json", exclude={"progress"}), "report": report}
