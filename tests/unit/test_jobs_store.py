"""Job persistence without Ray, on SQLite and on a real private PostgreSQL: a job whose replica stops beating
is failed, never left running; two stores on one database see the same jobs; the cache key."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from cluster.local_postgres import LocalPostgres, pg_bin_dir
from deployments.jobs import STALE_SECONDS, JobStore, cache_key, check_callback_url


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
def open_store(request, tmp_path):
    """Opens stores on one database: the same data folder, or the same PostgreSQL server."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    opened = []

    def make(clock):
        store = JobStore(tmp_path, url, clock=clock)
        opened.append(store)
        return store

    yield make
    if url:  # the server outlives one test: start each test from empty tables
        opened[0]._run("DROP TABLE IF EXISTS jobs")
        opened[0]._run("DROP TABLE IF EXISTS result_cache")
    for store in opened:
        store.close()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_job_nobody_beats_for_is_failed_and_a_beating_one_is_not(open_store):
    clock = Clock()
    store = open_store(clock)
    lost = store.create("a.mp4", "0" * 64, ["cut_analysis"], None)
    alive = store.create("b.mp4", "1" * 64, ["cut_analysis"], None)
    alive.state = "running"
    store.save(alive)
    for _ in range(int(STALE_SECONDS // 5) + 2):
        clock.now += 5
        store.heartbeat([alive.id])
    assert store.get(lost.id).state == "failed" and store.get(lost.id).error["code"] == "replica_lost"
    assert store.get(alive.id).state == "running"
    # a second replica on the same database sees the same jobs
    other = open_store(clock)
    assert other.get(alive.id).state == "running"
    clock.now += STALE_SECONDS + 1
    assert other.fail_stale() == 1 and other.get(alive.id).state == "failed"


def test_finished_jobs_stay_finished(open_store):
    clock = Clock()
    store = open_store(clock)
    job = store.create("a.mp4", "0" * 64, ["cut_analysis"], "http://127.0.0.1:9/hook")
    job.state, job.report_id = "done", "r1"
    job.progress["cut_analysis"].status = "ok"
    store.save(job)
    clock.now += 10 * STALE_SECONDS
    again = store.get(job.id)
    assert again.state == "done" and again.done_count == 1 and again.total_count == 1 and again.callback.url.endswith("/hook")


def test_cache_entries_are_shared_replaced_and_forgotten(open_store):
    first, second = open_store(Clock()), open_store(Clock())
    first.remember("k", "r1")
    assert second.cached_report_id("k") == "r1"
    second.remember("k", "r2")  # a refreshed analysis replaces the entry
    assert first.cached_report_id("k") == "r2"
    first.forget("k")
    assert second.cached_report_id("k") is None


def test_cache_key_ignores_order_and_changes_with_video_set_and_config():
    key = cache_key("a" * 64, ["cut_analysis", "scene_segmentation"], "cfg1")
    assert key == cache_key("a" * 64, ["scene_segmentation", "cut_analysis"], "cfg1")
    assert key != cache_key("b" * 64, ["cut_analysis", "scene_segmentation"], "cfg1")
    assert key != cache_key("a" * 64, ["cut_analysis"], "cfg1")
    assert key != cache_key("a" * 64, ["cut_analysis", "scene_segmentation"], "cfg2")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://x/", "ftp://host/x", "http://", "//host/x", "javascript:alert(1)"])
def test_callbacks_are_http_or_https_only(url):
    with pytest.raises(ValueError):
        check_callback_url(url)


def test_callback_accepts_http_and_https():
    assert check_callback_url(" https://example.com/hook ") == "https://example.com/hook"
    assert check_callback_url("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080/x"
