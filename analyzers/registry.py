"""The catalogue of the 21 analyses the service promises, and where each implementation lives.

By convention the analyzer `foo` lives in `analyzers/foo.py` as the one `Analyzer` subclass whose `name`
is "foo". Implementations are imported lazily, so a group replica imports only the model libraries of the
analyzers it hosts. A catalogue entry without its module is known but not built yet: reports and
`GET /analyzers` show it as `not_implemented`, never an invented result.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from dataclasses import dataclass

from analyzers.base import Analyzer


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    description: str

    @property
    def module(self) -> str:
        return f"analyzers.{self.name}"


CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry("video_llava", "Video-LLM description of the whole video (LLaVA-NeXT-Video, 8 frames)."),
    CatalogueEntry("object_detection", "Objects per sampled frame, tracked across frames (YOLO)."),
    CatalogueEntry("product_detection", "Products and brands (open-vocabulary detector plus on-screen brand text)."),
    CatalogueEntry("background_segmentation", "Person/background mask, coverage over time, background kind."),
    CatalogueEntry("visual_effects", "Fades, flashes, speed ramps, colour filters, split screen, black frames."),
    CatalogueEntry("camera_analysis", "Camera motion per segment: static, pan, tilt, zoom, shake."),
    CatalogueEntry("text_overlay", "On-screen text events (OCR) with times, boxes and safe-zone flags."),
    CatalogueEntry("speech_transcription", "Speech to text with word timestamps and language (faster-whisper)."),
    CatalogueEntry("composition_analysis", "Subject position, rule of thirds, symmetry, headroom, safe zones."),
    CatalogueEntry("color_analysis", "Dominant palette, brightness, saturation and warmth, overall and over time."),
    CatalogueEntry("content_quality", "Sharpness, noise, exposure, contrast, blockiness, resolution, bitrate."),
    CatalogueEntry("eye_tracking", "Gaze direction, eye contact with the camera, blink rate."),
    CatalogueEntry("scene_segmentation", "Shots grouped into scenes by visual similarity."),
    CatalogueEntry("cut_analysis", "Hard cuts with times and frame numbers."),
    CatalogueEntry("age_estimation", "Age range per detected face."),
    CatalogueEntry("audio_analysis", "Loudness (LUFS), RMS curve, silence, tempo and beats."),
    CatalogueEntry("audio_environment", "AudioSet tags: speech/music/noise shares, setting cues, noise floor."),
    CatalogueEntry("speech_emotion", "Emotion per speech segment, plus prosody."),
    CatalogueEntry("speech_rate", "Words per minute, articulation rate, pauses."),
    CatalogueEntry("sound_effects", "Time-coded sound events other than speech and music."),
    CatalogueEntry("temporal_flow", "Pacing: shots per minute, motion energy, beat alignment, hook score."),
)

ENTRIES: dict[str, CatalogueEntry] = {entry.name: entry for entry in CATALOGUE}
ANALYZER_NAMES: tuple[str, ...] = tuple(ENTRIES)


def is_implemented(name: str) -> bool:
    return importlib.util.find_spec(ENTRIES[name].module) is not None


def analyzer_class(name: str) -> type[Analyzer]:
    """Import and return the implementation of `name`. KeyError if unknown, LookupError if not built yet."""
    entry = ENTRIES[name]
    if not is_implemented(name):
        raise LookupError(f"analyzer {name!r} is not implemented yet")
    module = importlib.import_module(entry.module)
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Analyzer) and getattr(obj, "name", None) == name
    ]
    if len(found) != 1:
        raise TypeError(f"{entry.module} must define exactly one Analyzer named {name!r}, found {len(found)}")
    return found[0]
