"""The wire types shared by the ingress and the groups, and the report the API returns."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from analyzers.base import AnalyzerStatus, Needs
from analyzers.media import VideoMetadata


class AnalyzerOutcome(BaseModel):
    """One analyzer's part of a report."""

    status: AnalyzerStatus
    seconds: float | None = Field(None, description="Wall time of analyze(), seconds.")
    result: dict[str, Any] | None = Field(None, description="The analyzer's typed result (schema in GET /analyzers).")
    error: str | None = Field(None, description="Why there is no result (error, unavailable, skipped, not_implemented).")
    model: str | None = Field(None, description="The model that produced the result, when one did.")
    group: str | None = None


class MediaRefs(BaseModel):
    """What a group receives instead of arrays: metadata plus Ray object references, one per frame set and audio."""

    model_config = {"arbitrary_types_allowed": True}

    metadata: VideoMetadata
    frame_refs: dict[str, Any] = Field(default_factory=dict, description="FrameSpec.key -> ObjectRef of a FrameSet.")
    audio_ref: Any | None = None


class GroupCall(BaseModel):
    """Work for one group: which analyzers (the ingress sends one per call), on which media, with which upstream results."""

    model_config = {"arbitrary_types_allowed": True}

    request_id: str
    analyzers: list[str]
    media: MediaRefs
    upstream: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Results of finished analyzers.")


class SourceInfo(BaseModel):
    filename: str
    sha256: str
    size_bytes: int
    media_path: str | None = Field(None, description="Path inside the media root, for video_path requests (uploads are deleted).")


class Thumbnail(BaseModel):
    time: float = Field(..., description="Seconds from the video start.")
    jpeg_base64: str = Field(..., description="A JPEG of at most 160 px on its longer side, base64.")


class AnalysisReport(BaseModel):
    id: str
    created_at: str
    source: SourceInfo
    video: VideoMetadata
    requested: list[str] = Field(..., description="Analyzers asked for, plus the upstream ones they need.")
    analyzers: dict[str, AnalyzerOutcome]
    decode_seconds: float
    total_seconds: float
    realtime_factor: float = Field(..., description="total_seconds / video duration: below 1 is faster than realtime.")
    results_file: str | None = Field(None, description="The stored JSON of this report.")
    cached: bool = Field(False, description="True when this is the stored report of an earlier request for the same video "
                         "content (sha256), analyzer set and configuration; `?refresh=true` analyzes again.")
    thumbnails: list[Thumbnail] = Field(default_factory=list, description="A few small frames for the HTML report's timeline.")


class AnalyzerInfo(BaseModel):
    """What the ingress knows about an analyzer, computed once by graph.py from the catalogue and the config."""

    name: str
    description: str
    group: str | None = Field(None, description="The deployment that hosts it; None when this profile deploys it nowhere.")
    implemented: bool
    needs: Needs
    result_schema: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    code: str = Field(..., description="Machine-readable reason, e.g. 'unsupported_media'.")
    message: str


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer of the API has this shape."""

    error: ErrorBody
