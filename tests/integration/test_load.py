"""A burst of 50 concurrent uploads: on the embedded default (unbounded queue) every one is analyzed and
stored once; on an app with a bounded ingress queue (max_ongoing_requests 2, max_queued_requests 4) the
rest get 503 at once. Accepted means stored: no request is lost, none is stored twice."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bench.reliability import TINY, bounded_args, burst, leaks, spooled, stored_report_ids, tiny_clip
from graph import IngressConfig

pytestmark = pytest.mark.integration
BURST = 50
HAS_RETRY_AFTER = "retry_after_s" in IngressConfig.model_fields


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return tiny_clip(tmp_path_factory.mktemp("load") / "tiny.mp4", seconds=1)


@pytest.fixture(scope="module")
def bounded(service, media_root, tmp_path_factory):
    """The same graph, one cheap group, an ingress that holds 2 requests and queues 4."""
    from ray import serve

    from graph import build_app

    data_dir = tmp_path_factory.mktemp("bounded")
    serve.run(build_app(bounded_args(data_dir, HAS_RETRY_AFTER)), name="bounded", route_prefix="/bounded", blocking=False)
    try:
        yield {"client": service["client"], "data_dir": data_dir}
    finally:
        serve.delete("bounded")


def check_burst(responses: list, data_dir: Path, before: set[str]) -> tuple[list, list]:
    failures = [r for r in responses if not isinstance(r, httpx.Response)]
    assert not failures, failures[:3]  # no hang, no dropped connection
    accepted = [r for r in responses if r.status_code == 200]
    rejected = [r for r in responses if r.status_code != 200]
    assert all(r.status_code == 503 for r in rejected), {r.status_code for r in rejected}
    assert all(not leaks(r.text) for r in responses)
    ids = [r.json()["id"] for r in accepted]
    assert all(r.json()["analyzers"][TINY]["status"] == "ok" for r in accepted)
    stored = set(stored_report_ids(data_dir)) - before
    assert len(set(ids)) == len(ids) and stored == set(ids)  # every accepted one stored, once; nothing else
    assert spooled(data_dir) == []
    return accepted, rejected


def test_fifty_at_once_on_the_embedded_default_are_all_stored(service, clip):
    data_dir = Path(service["args"]["ingress"]["data_dir"])
    before = set(stored_report_ids(data_dir))
    accepted, rejected = check_burst(burst(service["client"], clip, BURST), data_dir, before)
    assert len(accepted) == BURST and not rejected
    some = accepted[0].json()["id"]
    assert service["client"].get(f"/analyses/{some}").json()["id"] == some


def test_a_bounded_queue_answers_503_beyond_it_and_loses_nothing(bounded, clip):
    before = set(stored_report_ids(bounded["data_dir"]))
    accepted, rejected = check_burst(burst(bounded["client"], clip, BURST, path="/bounded/analyze"), bounded["data_dir"], before)
    assert len(accepted) >= 2 and rejected, (len(accepted), len(rejected))  # how many fit depends on timing
    # and once the burst is over it serves again
    r = bounded["client"].post("/bounded/analyze", files={"file": ("again.mp4", clip.read_bytes())}, data={"analyzers": TINY})
    assert r.status_code == 200


@pytest.mark.xfail(not HAS_RETRY_AFTER, strict=True, reason="graph.py sets no backpressure_config on the Ingress "
                   "deployment, and Serve adds Retry-After only when backpressure_config.retry_after_s is set")
def test_rejected_requests_say_when_to_retry(bounded, clip):
    responses = burst(bounded["client"], clip, 30, path="/bounded/analyze")
    rejected = [r for r in responses if isinstance(r, httpx.Response) and r.status_code == 503]
    assert rejected
    assert all(r.headers.get("retry-after", "").isdigit() for r in rejected), dict(rejected[0].headers)
