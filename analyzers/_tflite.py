"""Run the .tflite models that ship inside the mediapipe package directly.

mediapipe's own Python layer needs protobuf < 5 while Ray needs protobuf 7, so its "solutions" API does
not import here; the model files themselves are plain TFLite flatbuffers. ai-edge-litert (installed
without dependencies) provides the interpreter; it is imported only when a model is opened.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from analyzers.base import AnalyzerUnavailable


def mediapipe_model_path(relative: str) -> Path:
    """Path of a model file inside the installed mediapipe package, e.g. "face_landmark/face_landmark.tflite"."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise AnalyzerUnavailable("the mediapipe package (which ships the .tflite models) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "modules" / relative
    if not path.is_file():
        raise AnalyzerUnavailable(f"mediapipe does not ship {relative} in this version")
    return path


class TFLiteModel:
    """One interpreter per model; `run` takes the single input tensor and returns outputs by name."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise AnalyzerUnavailable("ai-edge-litert is not installed (pip install --no-deps ai-edge-litert)") from exc
        self.path = Path(path)
        self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._outputs = self._interpreter.get_output_details()
        self.input_shape = tuple(int(v) for v in self._input["shape"])

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        tensor = tensor.astype(self._input["dtype"], copy=False).reshape(self.input_shape)
        self._interpreter.set_tensor(self._input["index"], tensor)
        self._interpreter.invoke()
        return {o["name"]: self._interpreter.get_tensor(o["index"]).copy() for o in self._outputs}
