"""Objects per sampled frame (ultralytics YOLO, batched), tracked across frames with ByteTrack.

The production checkpoint is named in Settings and downloaded by ultralytics on a user's machine
(YOLO_OFFLINE=0). Offline, no package ships one, so a name that is not a local file fails at once with
the reason, before ultralytics can try (and hang on) a download. Tests build the real architecture from its .yaml
with random weights through this same loading code; such results say so in `model_in_use` and `weights`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from pydantic import BaseModel, Field

from analyzers.base import Analyzer, AnalyzerUnavailable, FrameSpec, Needs
from analyzers.media import MediaBundle

DETECTION_FRAMES = FrameSpec(fps=3.0, max_side=640)
REPO = Path(__file__).resolve().parents[1]


class ObjectTrack(BaseModel):
    track_id: int
    label: str = Field(..., description="Class name of the track (its most frequent class).")
    first_seen: float
    last_seen: float
    frames: int
    max_confidence: float
    box: tuple[float, float, float, float] = Field(..., description="Normalized x0, y0, x1, y1 at first sight.")


class ClassCount(BaseModel):
    time: float
    counts: dict[str, int] = Field(..., description="Tracked objects of each class visible in this frame.")


class ObjectDetectionResult(BaseModel):
    tracks: list[ObjectTrack]
    counts_over_time: list[ClassCount]
    max_simultaneous: dict[str, int] = Field(..., description="Per class, the most seen in one frame.")
    frames_analyzed: int
    batches: int
    model: str
    weights: str = Field(..., description="'pretrained' or 'random (test only)': random-weight output is not analysis.")


class ObjectDetectionSettings(BaseModel):
    model: str = Field("yolo11m.pt", description="Checkpoint name/path; a .yaml builds random weights (tests only).")
    allow_random_weights: bool = Field(False, description="Permit a .yaml architecture with random weights (tests).")
    confidence: float = Field(0.25, ge=0, le=1)
    iou: float = Field(0.5, ge=0, le=1, description="Non-maximum suppression IoU.")
    image_size: int = Field(640, ge=32)
    batch_size: int = Field(8, ge=1)
    max_detections: int = Field(100, ge=1)
    lost_seconds: float = Field(1.0, gt=0, description="A track survives this long unseen before it ends.")
    fuse_score: bool = Field(True, description="Weigh association by detection confidence (ByteTrack default).")
    min_track_frames: int = Field(2, ge=1, description="Shorter tracks are dropped as flicker.")


def load_yolo(name: str, allow_random_weights: bool, cls_name: str = "YOLO"):
    """Load a YOLO-family model: a local checkpoint, a checkpoint name ultralytics may download (only when
    YOLO_OFFLINE is off, as on a user's machine), or (tests only) a .yaml architecture with random weights."""
    os.environ.setdefault("YOLO_OFFLINE", "1")  # production configs that may download set YOLO_OFFLINE=0
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(REPO / "var" / "ultralytics"))
    offline = os.environ["YOLO_OFFLINE"].strip().lower() in ("1", "true", "yes", "on", "y", "t")
    path = Path(name).expanduser()
    if name.endswith((".yaml", ".yml")):
        if not allow_random_weights:
            raise AnalyzerUnavailable(f"{name} is an architecture without weights; set allow_random_weights for tests")
    elif not path.is_file() and offline:
        # ultralytics would try to download it and fail (or wait on the network): say why, at once
        raise AnalyzerUnavailable(f"checkpoint {name!r} is not on this machine and downloads are off (YOLO_OFFLINE=1); "
                                  f"give a local path, or set YOLO_OFFLINE=0 where the hub is reachable")
    try:
        import ultralytics

        return getattr(ultralytics, cls_name)(str(path) if path.is_file() else name)
    except Exception as exc:
        raise AnalyzerUnavailable(f"could not load {name}: {type(exc).__name__}: {exc}") from exc


class ObjectDetection(Analyzer):
    name = "object_detection"
    needs = Needs(frames=DETECTION_FRAMES)
    Result = ObjectDetectionResult
    Settings = ObjectDetectionSettings

    def load(self, device: str) -> None:
        super().load(device)
        self._random = self.settings.model.endswith((".yaml", ".yml"))
        self._model = load_yolo(self.settings.model, self.settings.allow_random_weights)

    @property
    def model_in_use(self) -> str:
        return f"{self.settings.model} (random weights, test only)" if self._random else self.settings.model

    def _new_tracker(self, fps: float):
        from ultralytics.trackers.byte_tracker import BYTETracker

        confidence = self.settings.confidence
        args = SimpleNamespace(tracker_type="bytetrack", track_high_thresh=confidence,
                               track_low_thresh=min(0.1, confidence), new_track_thresh=confidence,
                               track_buffer=max(1, round(self.settings.lost_seconds * fps)), match_thresh=0.8,
                               fuse_score=self.settings.fuse_score)
        return BYTETracker(args)

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> ObjectDetectionResult:
        if not hasattr(self, "_model"):
            raise AnalyzerUnavailable("load() was not called")
        s = self.settings
        frame_set = media.frames(DETECTION_FRAMES)
        per_frame, batches = [], 0
        for start in range(0, len(frame_set), s.batch_size):
            batch = [np.ascontiguousarray(f[..., ::-1]) for f in frame_set.frames[start:start + s.batch_size]]  # BGR
            results = self._model.predict(batch, conf=s.confidence, iou=s.iou, imgsz=s.image_size,
                                          max_det=s.max_detections, device=self.device, verbose=False)
            per_frame.extend(r.boxes.cpu().numpy().data for r in results)
            batches += 1
        h, w = frame_set.frames.shape[1:3]
        return self.track(per_frame, frame_set.timestamps, (w, h), self._model.names, batches)

    def track(self, per_frame: list[np.ndarray], times: np.ndarray, size: tuple[int, int], names: Mapping[int, str],
              batches: int) -> ObjectDetectionResult:
        """ByteTrack over per-frame detections, rows of [x0, y0, x1, y1, confidence, class] in pixels."""
        from ultralytics.engine.results import Boxes

        s = self.settings
        w, h = size
        tracker = self._new_tracker(DETECTION_FRAMES.fps)
        seen: dict[int, dict] = {}
        counts: list[ClassCount] = []
        time_list = times.tolist()
        for k, (rows, t) in enumerate(zip(per_frame, time_list)):
            tracked = tracker.update(Boxes(np.asarray(rows, dtype=np.float32).reshape(-1, 6), (h, w)))
            frame_counts: dict[str, int] = {}
            for x0, y0, x1, y1, track_id, score, cls, _ in tracked.tolist():
                label = names[int(cls)]
                frame_counts[label] = frame_counts.get(label, 0) + 1
                if int(track_id) not in seen and k > 0:
                    # ByteTrack reports a new track only once it is matched a second time: it was born a frame earlier
                    seen[int(track_id)] = {"first": time_list[k - 1], "frames": 1, "conf": 0.0, "labels": {},
                                           "box": (x0 / w, y0 / h, x1 / w, y1 / h)}
                    counts[k - 1].counts[label] = counts[k - 1].counts.get(label, 0) + 1
                entry = seen.setdefault(int(track_id), {"first": t, "frames": 0, "conf": 0.0, "labels": {},
                                                        "box": (x0 / w, y0 / h, x1 / w, y1 / h)})
                entry["last"], entry["frames"] = t, entry["frames"] + 1
                entry["conf"] = max(entry["conf"], float(score))
                entry["labels"][label] = entry["labels"].get(label, 0) + 1
            counts.append(ClassCount(time=round(t, 3), counts=frame_counts))
        tracks = [
            ObjectTrack(track_id=tid, label=max(e["labels"], key=e["labels"].get), first_seen=round(e["first"], 3),
                        last_seen=round(e["last"], 3), frames=e["frames"], max_confidence=round(e["conf"], 4),
                        box=tuple(round(min(max(v, 0.0), 1.0), 4) for v in e["box"]))
            for tid, e in sorted(seen.items()) if e["frames"] >= s.min_track_frames]
        max_simultaneous: dict[str, int] = {}
        for c in counts:
            for label, n in c.counts.items():
                max_simultaneous[label] = max(max_simultaneous.get(label, 0), n)
        return ObjectDetectionResult(
            tracks=tracks, counts_over_time=counts, max_simultaneous=max_simultaneous, frames_analyzed=len(per_frame),
            batches=batches, model=self.model_in_use, weights="random (test only)" if self._random else "pretrained")
