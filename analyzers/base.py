"""The Analyzer contract: what every analysis declares, returns and promises.

An analyzer is a small class that turns a decoded `MediaBundle` (plus the results of the analyzers it
depends on) into one typed pydantic result. It never decodes video itself, never touches Ray, and loads
its model once in `load(device)`. If it cannot get a model it raises `AnalyzerUnavailable` from `load`
with the reason; the service then reports `status: "unavailable"` instead of inventing output.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # media imports decord; keep the contract importable without it
    from analyzers.media import MediaBundle


class FrameSpec(BaseModel):
    """Which frames, at what size: sampled at `fps`, or `count` spread evenly, or (neither) every frame;
    scaled so the longer side is at most `max_side`."""

    model_config = ConfigDict(frozen=True)

    fps: float | None = Field(None, gt=0, description="Sampling rate in frames per second.")
    count: int | None = Field(None, ge=1, le=512, description="Exactly this many frames spread evenly over the video.")
    max_side: int = Field(..., ge=16, le=4096, description="Longest side of the delivered frames, in pixels.")

    @model_validator(mode="after")
    def _one_sampling(self) -> FrameSpec:
        if self.fps is not None and self.count is not None:
            raise ValueError("give fps or count, not both")
        return self

    @property
    def key(self) -> str:
        rate = f"{self.fps:g}fps" if self.fps else f"{self.count}frames" if self.count else "all"
        return f"{rate}@{self.max_side}"


class Needs(BaseModel):
    """What an analyzer needs from the decoded media and from other analyzers."""

    model_config = ConfigDict(frozen=True)

    frames: FrameSpec | None = None
    audio: bool = Field(False, description="Needs the 16 kHz mono audio track.")
    upstream: tuple[str, ...] = Field((), description="Analyzers whose results must be ready first.")
    optional_upstream: tuple[str, ...] = Field(
        (), description="Analyzers used when they are part of the same request; never added on their own."
    )


class AnalyzerStatus(str, Enum):
    ok = "ok"
    error = "error"
    unavailable = "unavailable"
    not_implemented = "not_implemented"
    skipped = "skipped"


class AnalyzerUnavailable(RuntimeError):
    """Raised by `load` (or `analyze`) when no usable model or input exists. The message is the user-facing reason."""


class Analyzer(ABC):
    """Base class of all analyzers. Subclasses set the three class attributes and implement `analyze`."""

    name: ClassVar[str]
    needs: ClassVar[Needs] = Needs()
    Result: ClassVar[type[BaseModel]]
    Settings: ClassVar[type[BaseModel]] = BaseModel  # per-analyzer options from the serve config

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings = self.Settings.model_validate(dict(settings or {}))
        self.device = "cpu"

    def load(self, device: str) -> None:
        """Load models onto `device`. Called once per replica, before any `analyze`."""
        self.device = device

    @property
    def model_in_use(self) -> str | None:
        """A short description of the model this instance runs (None for pure signal processing)."""
        return None

    @property
    def concurrent_calls(self) -> int:
        """How many `analyze`/`ask` calls of this instance may run at once. 1 (the rule): models are not
        thread-safe. More only for an analyzer that runs its model on a thread of its own and batches the calls
        (video_llava's decoder)."""
        return 1

    @abstractmethod
    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> BaseModel:
        """Return an instance of `self.Result`."""


def pick_device() -> str:
    """The device comes from torch, not from Ray: a fractional GPU is a scheduling label, not a CUDA context."""
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def own_cuda_stream(device: str) -> None:
    """Give the calling thread a CUDA stream of its own. Torch's default stream is one per process: a group's
    analyzers, each on its thread, queued every kernel behind each other's, and every result copy to the host
    waited for all of them. Each thread now waits only for its own work (a pool stream is non-blocking: no
    implicit syncs with the others). Measured only together with moving the YOLO analyzers out of video_llava's
    process (H200, 2026-12-04: 2.7-2.9 s -> 0.9-1.1 s per request in the graph; BENCHMARKS.md "Fifth run")."""
    if not device.startswith("cuda"):
        return
    import torch

    torch.cuda.set_stream(torch.cuda.Stream())
