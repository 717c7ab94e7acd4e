"""Job persistence without Ray: a job whose replica stops beating is failed, never left running; the cache key."""

from __future__ import annotations

import pytest

from deployments.jobs import STALE_SECONDS, JobStore, cache_key, check_callback_url


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_job_nobody_beats_for_is_failed_and_a_beating_one_is_not(tmp_path):
    clock = Clock()
    store = JobStore(tmp_path, clock=clock)
    lost = store.create("a.mp4", "0" * 64, ["cut_analysis"], None)
    alive = store.create("b.mp4", "1" * 64, ["cut_analysis"], None)
    alive.state = "running"
    store.save(alive)
    for _ in range(int(STALE_SECONDS // 5) + 2):
        clock.now += 5
        store.heartbeat([alive.id])
    assert store.get(lost.id).state == "failed" and store.get(lost.id).error["code"] == "replica_lost"
    assert store.get(alive.id).state == "running"
    # a second replica opening the same folder sees the same jobs
    other = JobStore(tmp_path, clock=clock)
    assert other.get(alive.id).state == "running"
    clock.now += STALE_SECONDS + 1
    assert other.fail_stale() == 1 and other.get(alive.id).state == "failed"


def test_finished_jobs_stay_finished(tmp_path):
    clock = Clock()
    store = JobStore(tmp_path, clock=clock)
    job = store.create("a.mp4", "0" * 64, ["cut_analysis"], "http://127.0.0.1:9/hook")
    job.state, job.report_id = "done", "r1"
    job.progress["cut_analysis"].status = "ok"
    store.save(job)
    clock.now += 10 * STALE_SECONDS
    again = store.get(job.id)
    assert again.state == "done" and again.done_count == 1 and again.total_count == 1 and again.callback.url.endswith("/hook")


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
