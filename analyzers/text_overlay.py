"""On-screen text: OCR of sampled frames, merged into timed text events with boxes and the interface zones they lie in.

Two offline engines: RapidOCR (PP-OCRv4 detection + recognition, ONNX, shipped inside
rapidocr-onnxruntime) and Debian's tesseract CLI. Overlay text is usually static for seconds, so a
frame that looks like the previous sampled one reuses its OCR instead of paying ~0.5 s again.
A detection joins an open event when its text reads the same (fuzzy, OCR wobbles by a letter) and
its box overlaps; an event ends when a sampled frame no longer shows it. The zones are analyzers._safe_zones', the
same table and overlap rule composition_analysis applies to the subject.
"""

from __future__ import annotations

import difflib
import io
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, Field, computed_field

from analyzers._safe_zones import MIN_ZONE_OVERLAP, Zone, zones_of
from analyzers.base import Analyzer, AnalyzerUnavailable, FrameSpec, Needs
from analyzers.media import MediaBundle

TEXT_FRAMES = FrameSpec(fps=2.0, max_side=960)


@dataclass
class Detection:
    text: str
    box: tuple[float, float, float, float]  # normalized x0, y0, x1, y1
    confidence: float


class TextEvent(BaseModel):
    text: str
    start: float
    end: float
    box: tuple[float, float, float, float] = Field(..., description="Normalized x0, y0, x1, y1 (union over the event).")
    confidence: float = Field(..., description="Best recognition confidence seen, 0..1.")
    frames: int = Field(..., description="Sampled frames that showed it.")
    zones: list[Zone] = Field(
        ..., description="TikTok interface zones holding at least min_zone_overlap of the box; portrait video only "
        "(TikTok letterboxes landscape video away from its interface).")

    # Derived from `zones` (so they can never disagree with it); kept because clients read them.
    @computed_field(description="'right_buttons' is in zones.")
    @property
    def under_right_buttons(self) -> bool:
        return "right_buttons" in self.zones

    @computed_field(description="'bottom_caption' is in zones.")
    @property
    def under_bottom_caption(self) -> bool:
        return "bottom_caption" in self.zones


class TextOverlayResult(BaseModel):
    events: list[TextEvent]
    frames_analyzed: int
    frames_ocr_run: int = Field(..., description="Frames actually OCRed; the rest repeated an unchanged frame or "
                                "lay between two frames that read the same.")
    text_coverage: float = Field(..., description="Share of sampled frames showing any text.")
    safe_zone_violations: int = Field(..., description="Events in any interface zone.")
    engine: str


class TextOverlaySettings(BaseModel):
    engine: Literal["rapidocr", "tesseract"] = "rapidocr"
    min_confidence: float = Field(0.6, ge=0, le=1, description="Drop recognitions below this.")
    min_chars: int = Field(2, ge=1, description="Drop shorter strings (single glyphs are mostly noise).")
    max_side: int = Field(960, ge=64, description="Frames are shrunk to this before OCR.")
    similar_text: float = Field(0.8, ge=0, le=1, description="Text similarity that counts as the same text.")
    min_zone_overlap: float = Field(
        MIN_ZONE_OVERLAP, ge=0, le=1, description="Share of an event's box inside an interface zone that puts it in.")
    unchanged_frame_diff: float = Field(
        15.0, ge=0, description="OCR is reused when no 1/96-of-frame cell changed by more grey levels than this.")
    threads: int | None = Field(None, ge=1, description="onnxruntime threads for RapidOCR; None: all cores.")
    det_limit_side_len: int = Field(960, ge=64, description="RapidOCR text detection input size (see det_limit_type).")
    det_limit_type: Literal["max", "min"] = Field(
        "max",
        description="'max': shrink so the longer side is at most det_limit_side_len. RapidOCR's own default, 'min' "
        "with 736, *enlarges* every frame whose shorter side is below 736 - a 9:16 frame at 960 px by 1.85x in "
        "pixels, a 240p clip by 9x - which measured 2x (9:16) to 16x (240p) slower on CPU for the same captions.")
    fill_between_equal: bool = Field(
        True, description="Read every other sampled frame first, then a frame in between only where its two neighbours' "
        "readings differ; where they agree (same texts in the same places) it gets that reading. Event times keep the "
        "full sampling's precision; text shown for less than two sample intervals between identical readings is missed.")
    tesseract_cmd: str = "tesseract"
    tesseract_lang: str = "eng"


def rapidocr_engine(threads: int | None = None, det_limit_side_len: int = 960, det_limit_type: str = "max"):
    from rapidocr_onnxruntime import RapidOCR

    options = {"det_limit_side_len": det_limit_side_len, "det_limit_type": det_limit_type}
    engine = RapidOCR(intra_op_num_threads=threads, **options) if threads else RapidOCR(**options)
    for holder in (engine.text_det.infer, engine.text_cls.infer, engine.text_rec.session):
        holder.session = _with_memory_arena(holder.session)

    def read(image_rgb: np.ndarray) -> list[Detection]:
        h, w = image_rgb.shape[:2]
        found, _ = engine(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
        detections = []
        for points, text, score in found or []:
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            box = (min(xs) / w, min(ys) / h, max(xs) / w, max(ys) / h)
            detections.append(Detection(text.strip(), _clip_box(box), float(score)))
        return detections

    return read


def _with_memory_arena(session):
    """The same model and options with onnxruntime's CPU memory arena on. RapidOCR 1.4 turns the arena off, so every
    call allocates its activation buffers anew: on the 2-core dev machine that cost 21 % of the OCR time (205 vs
    162 ms per 960x540 frame, one thread), with identical texts, boxes and scores on all 60 frames of the benchmark clip."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.enable_cpu_mem_arena = True
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # RapidOCR sets the thread counts only when asked (intra_op_num_threads); keep what its session got
    configs = session.get_session_options()
    options.intra_op_num_threads = configs.intra_op_num_threads
    options.inter_op_num_threads = configs.inter_op_num_threads
    return ort.InferenceSession(session._model_path, options, providers=session.get_providers())


def tesseract_engine(command: str = "tesseract", lang: str = "eng"):
    """Line-level text from the tesseract CLI's TSV output (word rows grouped by block/paragraph/line)."""
    if shutil.which(command) is None:
        raise AnalyzerUnavailable(f"tesseract executable {command!r} not found")

    def read(image_rgb: np.ndarray) -> list[Detection]:
        h, w = image_rgb.shape[:2]
        ok, png = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
        out = subprocess.run([command, "stdin", "stdout", "-l", lang, "tsv"], input=png.tobytes(),
                             capture_output=True, timeout=60, check=True)
        lines: dict[tuple[str, str, str], list[tuple[str, float, float, float, float, float]]] = {}
        for row in io.StringIO(out.stdout.decode("utf-8", "replace")).read().splitlines()[1:]:
            cols = row.split("\t")
            if len(cols) < 12 or cols[0] != "5" or not cols[11].strip():
                continue
            left, top, width, height, conf = map(float, cols[6:11])
            lines.setdefault((cols[2], cols[3], cols[4]), []).append((cols[11], left, top, width, height, conf))
        detections = []
        for words in lines.values():
            x0 = min(wd[1] for wd in words); y0 = min(wd[2] for wd in words)
            x1 = max(wd[1] + wd[3] for wd in words); y1 = max(wd[2] + wd[4] for wd in words)
            conf = float(np.mean([wd[5] for wd in words])) / 100.0
            box = _clip_box((x0 / w, y0 / h, x1 / w, y1 / h))
            detections.append(Detection(" ".join(wd[0] for wd in words), box, conf))
        return detections

    return read


def join_line_fragments(detections: list[Detection], aspect: float) -> list[Detection]:
    """Join pieces of one text line: on busy backgrounds the detector often boxes each word separately.
    `aspect` = width / height of the image, because boxes are normalized per axis."""
    joined: list[Detection] = []
    for d in sorted(detections, key=lambda d: d.box[0]):
        for i, line in enumerate(joined):
            height = min(d.box[3] - d.box[1], line.box[3] - line.box[1])
            vertical = min(d.box[3], line.box[3]) - max(d.box[1], line.box[1])
            gap = (d.box[0] - line.box[2]) * aspect  # in units of the y axis
            if vertical >= 0.6 * height and -2.0 * height <= gap <= 1.2 * height:
                box = (line.box[0], min(line.box[1], d.box[1]), max(line.box[2], d.box[2]), max(line.box[3], d.box[3]))
                joined[i] = Detection(f"{line.text} {d.text}", box, min(line.confidence, d.confidence))
                break
        else:
            joined.append(d)
    return joined


def _clip_box(box) -> tuple[float, float, float, float]:
    return tuple(round(min(max(float(v), 0.0), 1.0), 4) for v in box)  # type: ignore[return-value]


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _same_text(a: str, b: str, threshold: float) -> bool:
    a, b = " ".join(a.lower().split()), " ".join(b.lower().split())
    return a == b or difflib.SequenceMatcher(None, a, b).ratio() >= threshold


def same_reading(a: list[Detection], b: list[Detection]) -> bool:
    """Two frames show the same text: as many lines, each matched by one of the other's, letter for letter (spaces
    and case aside: OCR varies in those) and in the same place. Exact, not the fuzzy match events use: a timecode
    that moves on by one digit must not count as unchanged."""
    if len(a) != len(b):
        return False
    letters = lambda text: "".join(text.lower().split())  # noqa: E731
    unmatched = list(b)
    for d in a:
        match = next((e for e in unmatched if letters(d.text) == letters(e.text) and _iou(d.box, e.box) >= 0.5), None)
        if match is None:
            return False
        unmatched.remove(match)
    return True


def merge_events(per_frame: list[list[Detection]], times: np.ndarray, interval: float, duration: float,
                 similar_text: float, portrait: bool = True,
                 min_zone_overlap: float = MIN_ZONE_OVERLAP) -> list[TextEvent]:
    """Chain detections of the same text in consecutive sampled frames into events.

    Zones are only listed for portrait video: TikTok letterboxes landscape video away from its interface."""
    open_events: list[dict] = []
    closed: list[dict] = []
    for detections, t in zip(per_frame, times.tolist()):
        still_open = []
        used = set()
        for event in open_events:
            match = next((i for i, d in enumerate(detections) if i not in used
                          and _same_text(d.text, event["text"], similar_text)
                          and _iou(d.box, event["last_box"]) > 0.2), None)
            if match is None:
                closed.append(event)
                continue
            used.add(match)
            d = detections[match]
            event["last"], event["last_box"], event["frames"] = t, d.box, event["frames"] + 1
            event["box"] = tuple(min(a, b) if k < 2 else max(a, b) for k, (a, b) in enumerate(zip(event["box"], d.box)))
            event["confidence"] = max(event["confidence"], d.confidence)
            count, best = event["readings"].get(d.text, (0, 0.0))
            event["readings"][d.text] = (count + 1, max(best, d.confidence))
            event["text"] = d.text  # the next frame is compared with the latest reading
            still_open.append(event)
        for i, d in enumerate(detections):
            if i not in used:
                still_open.append({"text": d.text, "start": t, "last": t, "box": d.box, "last_box": d.box,
                                   "confidence": d.confidence, "frames": 1, "readings": {d.text: (1, d.confidence)}})
        open_events = still_open
    closed.extend(open_events)
    events = []
    for e in sorted(closed, key=lambda e: (e["start"], e["box"][1], e["box"][0])):
        box = e["box"]
        # the reading seen most often wins (one frame's OCR slip should not name the event), then confidence
        e["text"] = max(e["readings"], key=lambda text: e["readings"][text])
        end = min(e["last"] + interval, max(duration, e["last"]))
        zones = zones_of(box, min_zone_overlap) if portrait else []
        events.append(TextEvent(
            text=e["text"], start=round(e["start"], 3), end=round(end, 3),
            box=box, confidence=round(e["confidence"], 4), frames=e["frames"], zones=zones))
    return events


class TextOverlay(Analyzer):
    name = "text_overlay"
    needs = Needs(frames=TEXT_FRAMES)
    Result = TextOverlayResult
    Settings = TextOverlaySettings

    def load(self, device: str) -> None:
        super().load(device)
        s = self.settings
        try:
            if s.engine == "rapidocr":
                self._read = rapidocr_engine(s.threads, s.det_limit_side_len, s.det_limit_type)
            else:
                self._read = tesseract_engine(s.tesseract_cmd, s.tesseract_lang)
        except AnalyzerUnavailable:
            raise
        except Exception as exc:
            raise AnalyzerUnavailable(f"OCR engine {s.engine} could not load: {exc}") from exc

    @property
    def model_in_use(self) -> str:
        return "RapidOCR PP-OCRv4 (onnxruntime)" if self.settings.engine == "rapidocr" else "tesseract LSTM (CLI)"

    def read_image(self, image_rgb: np.ndarray) -> list[Detection]:
        """OCR one RGB image; detections filtered by the confidence and length settings."""
        s = self.settings
        if max(image_rgb.shape[:2]) > s.max_side:
            scale = s.max_side / max(image_rgb.shape[:2])
            image_rgb = cv2.resize(image_rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        kept = [d for d in self._read(image_rgb) if d.confidence >= s.min_confidence and d.text]
        aspect = image_rgb.shape[1] / image_rgb.shape[0]
        return [d for d in join_line_fragments(kept, aspect) if len(d.text) >= s.min_chars]

    def _read_frames(self, frames: np.ndarray) -> tuple[list[list[Detection]], int]:
        """Each frame's detections, and how many frames were actually OCRed. First pass: every other frame (and the
        last), reusing the previous reading while the picture stays unchanged. Second pass: a frame between two
        first-pass frames is OCRed only when their readings differ; otherwise the text on screen did not change
        across it (RapidOCR is ~90 % of this analyzer's time, and captions last seconds)."""
        step = 2 if self.settings.fill_between_equal else 1
        first_pass = sorted({*range(0, len(frames), step), len(frames) - 1} - {-1})
        per_frame: list[list[Detection] | None] = [None] * len(frames)
        previous_grey, ocr_runs = None, 0
        for i in first_pass:
            # the largest local change, not the mean: a small caption appearing barely moves the mean
            grey = cv2.resize(cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY), (96, 96), interpolation=cv2.INTER_AREA)
            grey = grey.astype(np.float32)
            if previous_grey is not None and np.abs(grey - previous_grey).max() < self.settings.unchanged_frame_diff:
                per_frame[i] = per_frame[previous]
            else:
                per_frame[i], previous_grey, previous = self.read_image(frames[i]), grey, i  # compare with the last OCRed frame
                ocr_runs += 1
        for i, reading in enumerate(per_frame):
            if reading is None:
                before, after = per_frame[i - 1], per_frame[i + 1]
                if same_reading(before, after):
                    per_frame[i] = before
                else:
                    per_frame[i] = self.read_image(frames[i])
                    ocr_runs += 1
        return per_frame, ocr_runs

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> TextOverlayResult:
        if not hasattr(self, "_read"):
            raise AnalyzerUnavailable("load() was not called")
        frame_set = media.frames(TEXT_FRAMES)
        per_frame, ocr_runs = self._read_frames(frame_set.frames)
        interval = 1.0 / TEXT_FRAMES.fps
        portrait = media.metadata.height > media.metadata.width
        events = merge_events(per_frame, frame_set.timestamps, interval, media.metadata.duration,
                              self.settings.similar_text, portrait, self.settings.min_zone_overlap)
        shown = sum(1 for d in per_frame if d)
        return TextOverlayResult(
            events=events, frames_analyzed=len(per_frame), frames_ocr_run=ocr_runs,
            text_coverage=round(shown / max(len(per_frame), 1), 4),
            safe_zone_violations=sum(bool(e.zones) for e in events),
            engine=self.model_in_use)
