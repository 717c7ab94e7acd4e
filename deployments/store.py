"""Stored reports: SQLite by default (one file, WAL so several ingress replicas on one node can share it),
plus one JSON file per report in the results folder, as the replaced API returned (`results_file`)."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from deployments.schema import AnalysisReport

SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    video_sha256 TEXT NOT NULL,
    report TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_by_video ON reports (video_sha256);
"""


class ReportStore:
    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.results_dir = self.data_dir / "results"
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.data_dir / "reelscope.sqlite3", check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def results_file(self, report_id: str) -> Path:
        return self.results_dir / f"{report_id}.json"

    def save(self, report: AnalysisReport) -> Path:
        path = self.results_file(report.id)
        report.results_file = str(path)
        text = report.model_dump_json()
        partial = path.with_suffix(".json.partial")
        partial.write_text(text)
        partial.replace(path)  # a reader never sees half a file
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO reports (id, created_at, video_sha256, report) VALUES (?, ?, ?, ?)",
                (report.id, report.created_at, report.source.sha256, text),
            )
        return path

    def get(self, report_id: str) -> AnalysisReport | None:
        with self._lock:
            row = self._db.execute("SELECT report FROM reports WHERE id = ?", (report_id,)).fetchone()
        return AnalysisReport.model_validate(json.loads(row[0])) if row else None

    def close(self) -> None:
        self._db.close()
