"""ReportStore: the same behaviour on SQLite and on a real private PostgreSQL; retention by age and by size."""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from analyzers.base import AnalyzerStatus
from analyzers.media import VideoMetadata
from cluster.local_postgres import LocalPostgres, pg_bin_dir
from deployments.schema import AnalysisReport, AnalyzerOutcome, SourceInfo
from deployments.store import ReportStore, Retention

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def report(report_id: str, age_days: float, padding: int = 0, base: datetime = NOW) -> AnalysisReport:
    return AnalysisReport(
        id=report_id,
        created_at=(base - timedelta(days=age_days)).isoformat(timespec="seconds"),
        source=SourceInfo(filename="clip.mp4", sha256="ab" * 32, size_bytes=1000),
        video=VideoMetadata(duration=10.0, fps=30.0, frame_count=300, width=720, height=1280, codec="h264",
                            has_audio=False, size_bytes=1000, container="mp4"),
        requested=["cut_analysis"],
        analyzers={"cut_analysis": AnalyzerOutcome(status=AnalyzerStatus.ok, seconds=0.5, result={"pad": "x" * padding},
                                                   group="stage4_gpu_fast")},
        decode_seconds=0.1, total_seconds=1.0, realtime_factor=0.1,
    )


@pytest.fixture(scope="module")
def postgres_url():
    if pg_bin_dir() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql)")
    server = LocalPostgres(Path(tempfile.mkdtemp(prefix="rs-pg-")))
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_factory(request, tmp_path):
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    opened = []

    def make(retention=None, data_dir=tmp_path / "data", sqlite_file=None):
        store = ReportStore(data_dir, f"sqlite://{sqlite_file}" if sqlite_file and not url else url, retention)
        opened.append(store)
        return store

    yield make
    if url:  # the server outlives one test: start each test from an empty table
        with opened[0]._lock:
            opened[0].backend._run(lambda c: c.execute("DROP TABLE IF EXISTS reports"))
    for store in opened:
        store.close()


def test_saved_report_reads_back_identical_with_its_json_file(store_factory):
    store = store_factory()
    original = report("r1", 0, padding=100)
    path = store.save(original)
    again = store.get("r1")
    assert again == original and again.results_file == str(path)
    assert AnalysisReport.model_validate_json(path.read_text()) == original
    assert store.get("missing") is None


def test_two_stores_on_one_database_see_each_others_reports(store_factory, tmp_path):
    """Two ingress replicas: one saves, the other reads (each has its own results folder, as on two nodes; SQLite
    can only be shared through one file, i.e. on one node)."""
    shared = tmp_path / "shared.sqlite3"
    first = store_factory(data_dir=tmp_path / "node1", sqlite_file=shared)
    second = store_factory(data_dir=tmp_path / "node2", sqlite_file=shared)
    first.save(report("from-first", 0))
    second.save(report("from-second", 0))
    assert second.get("from-first").id == "from-first" and first.get("from-second").id == "from-second"


def test_retention_by_age_removes_rows_and_files_older_than_the_limit(store_factory):
    store = store_factory(Retention(max_age_days=30, prune_every_seconds=3600))
    for report_id, age in (("old", 45), ("older", 400), ("recent", 29), ("today", 0)):
        store.save(report(report_id, age))
    removed = store.prune(now=NOW)
    assert sorted(removed) == ["old", "older"]
    assert store.get("old") is None and not store.results_file("old").exists()
    assert store.get("recent") is not None and store.results_file("recent").exists()


def test_retention_by_size_keeps_the_newest_that_fit(store_factory):
    store = store_factory(Retention(max_total_mb=0.25, prune_every_seconds=3600))
    for i in range(5):  # ~100 kB each, oldest first: only the newest two fit in 0.25 MB
        store.save(report(f"r{i}", age_days=5 - i, padding=100_000))
    assert sorted(store.prune(now=NOW)) == ["r0", "r1", "r2"]
    assert [store.get(f"r{i}") is not None for i in range(5)] == [False, False, False, True, True]
    assert 200_000 < store.total_bytes() <= 0.25 * 1024 * 1024


def test_pruning_runs_when_the_store_opens(store_factory, tmp_path):
    clock = datetime.now(timezone.utc)
    keeper = store_factory(data_dir=tmp_path / "a", sqlite_file=tmp_path / "shared.sqlite3")
    keeper.save(report("ancient", 100, base=clock))
    keeper.save(report("fresh", 0, base=clock))
    reopened = store_factory(Retention(max_age_days=1, prune_every_seconds=3600), data_dir=tmp_path / "b",
                             sqlite_file=tmp_path / "shared.sqlite3")
    assert reopened.get("ancient") is None and reopened.get("fresh") is not None


def test_pruning_runs_on_save(store_factory):
    store = store_factory(Retention(max_age_days=1, prune_every_seconds=0))
    clock = datetime.now(timezone.utc)
    store.save(report("ancient", 100, base=clock))  # saving applies the retention at once, by the real clock
    assert store.get("ancient") is None
    store.save(report("fresh", 0, base=clock))
    assert store.get("fresh") is not None


def test_a_store_url_that_is_neither_backend_is_refused(tmp_path):
    with pytest.raises(ValueError, match="postgresql://"):
        ReportStore(tmp_path, "mysql://somewhere/db")


def test_old_sqlite_databases_gain_the_size_column(tmp_path):
    import sqlite3

    tmp_path.joinpath("results").mkdir()
    db = sqlite3.connect(tmp_path / "reelscope.sqlite3")
    db.executescript("CREATE TABLE reports (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, video_sha256 TEXT NOT NULL, report TEXT NOT NULL);")
    old = report("before", 1)
    db.execute("INSERT INTO reports VALUES (?, ?, ?, ?)", (old.id, old.created_at, old.source.sha256, old.model_dump_json()))
    db.commit()
    db.close()
    store = ReportStore(tmp_path)
    assert store.get("before") == old and store.total_bytes() == len(old.model_dump_json())
    store.close()
