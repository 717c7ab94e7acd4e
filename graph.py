"""Wiring: the one place that reads the configuration and joins the analysis library to the Ray layer.

`build_app(args)` is a Serve application builder: `serve run serve_config.cpu.yaml` (or `serve deploy`)
calls it with the `args` of the config file. Everything is validated here, before any replica starts:
unknown analyzers, an analyzer in two groups, settings an analyzer does not accept, impossible resources.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from ray import serve
from ray.serve import Application

from analyzers.base import Needs
from analyzers.media import Decoder
from analyzers.registry import ANALYZER_NAMES, ENTRIES, analyzer_class, is_implemented
from deployments.group import AnalyzerGroup
from deployments.ingress import Ingress, IngressSettings
from deployments.schema import AnalyzerInfo
from deployments.store import Retention

REPO = Path(__file__).resolve().parent


class ActorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_cpus: float = Field(0.25, ge=0, description="Fractional CPUs: a 2-core laptop must fit every replica.")
    num_gpus: float = Field(0.0, ge=0, description="Fraction of a GPU; a scheduling label, each group bounds its own memory.")
    memory: int | None = Field(None, gt=0, description="Bytes of RAM reserved for the replica.")
    resources: dict[str, float] = Field(default_factory=dict, description="Custom resources, e.g. to pin a group to a node kind.")


class GroupConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    analyzers: list[str] = Field(..., min_length=1)
    num_replicas: int = Field(1, ge=1)
    max_ongoing_requests: int = Field(4, ge=1, description="Concurrent group calls per replica.")
    autoscaling_config: dict[str, Any] | None = Field(None, description="Serve autoscaling; replaces num_replicas.")
    gil_switch_interval_ms: float | None = Field(
        None, gt=0, le=100, description="The replica's Python thread switch interval (sys.setswitchinterval; unset: "
        "Python's 5 ms). A thread that queues GPU work step by step (video_llava's decode loop) waits up to this long "
        "for the GIL after every call that released it while another analyzer's thread computes in Python.")
    ray_actor_options: ActorOptions = Field(default_factory=ActorOptions)


class IngressConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media_root: Path | None = Field(None, description="Folder `video_path` requests may read; relative to the working directory.")
    data_dir: Path = Field(Path("var/data"), description="Stored reports and the upload spool.")
    max_upload_mb: float = Field(500, gt=0)
    max_duration_seconds: float = Field(900, gt=0)
    max_pixels: int = Field(7680 * 4320, gt=0)
    max_concurrent_decodes: int = Field(2, ge=1)
    max_frame_mb: float = Field(1500, gt=0, description="Memory of one request's decoded frames; long videos are sampled sparser to fit.")
    decode_threads: int = Field(1, ge=0, le=64, description="FFmpeg decoder threads per decode (0: one per core). "
                                "1 on a 2-core machine; more where the ingress has cores to spare (GPU hosts).")
    decode_segments: int = Field(1, ge=1, le=64, description="Parts of the stream, split at keyframes, decoded at once "
                                 "(each with decode_threads threads): identical frames, shorter wall time where cores are free.")
    decoder: Decoder = Field("cpu", description="Where frames are decoded: cpu (decord/FFmpeg, any machine) or nvdec "
                             "(the GPU's video decoders, decode_segments at once; needs ray_actor_options.num_gpus > 0).")
    seek_first: list[str] = Field(
        default_factory=list, description="Analyzers with a few fixed frames (video_llava's 8) that are decoded in a "
        "pass of their own beside the full decode, so these analyzers start before it ends. For a long analyzer on a "
        "host with decoders to spare (GPU hosts: NVDEC); on a 2-core machine the second pass only competes for cores.")
    group_timeout_seconds: float = Field(600, gt=0)
    num_replicas: int = Field(1, ge=1)
    max_ongoing_requests: int = Field(16, ge=1)
    max_queued_requests: int = Field(-1, ge=-1, description="Beyond this queue Serve answers 503; -1: unbounded.")
    retry_after_s: float = Field(5, ge=0, description="Retry-After on those 503s: when a client should try again.")
    api_token_env: str | None = Field(None, description="Name of an environment variable holding the bearer token.")
    store_url: str | None = Field(None, pattern=r"^(postgresql|postgres|sqlite)://",
                                  description="Report database; postgresql://user@host/db shares reports across nodes "
                                              "(password from PGPASSWORD or ~/.pgpass). Unset: SQLite in data_dir.")
    retention: Retention = Field(default_factory=Retention, description="Max age / total size of stored reports.")
    ray_actor_options: ActorOptions = Field(default_factory=ActorOptions)

    @model_validator(mode="after")
    def _decoder_has_a_gpu(self) -> IngressConfig:
        # Ray shows a replica only the GPUs it asked for: without a share, nvdec would find no device at start.
        if self.decoder == "nvdec" and self.ray_actor_options.num_gpus <= 0:
            raise ValueError("ingress.decoder nvdec needs a GPU share: set ingress.ray_actor_options.num_gpus (e.g. 0.05)")
        return self


class AppConfig(BaseModel):
    """The `args` of an application in serve_config*.yaml."""

    model_config = ConfigDict(extra="forbid")

    ingress: IngressConfig = Field(default_factory=IngressConfig)
    groups: list[GroupConfig] = Field(..., min_length=1)
    analyzers: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Settings per analyzer name.")
    timeouts: dict[str, float] = Field(default_factory=dict, description="Seconds an analyzer may run per request.")
    critical_path: list[str] | None = Field(
        None, description="Analyzers on a request's longest chain of work. When set, their threads keep the first core "
        "and every other analyzer runs in the background (Linux SCHED_IDLE threads on the other cores): on a few cores "
        "it fills idle time instead of slowing that chain.")

    @field_validator("groups")
    @classmethod
    def _groups_are_sound(cls, groups: list[GroupConfig]) -> list[GroupConfig]:
        seen: dict[str, str] = {}
        names = [g.name for g in groups]
        if len(set(names)) != len(names):
            raise ValueError("group names must be unique")
        for group in groups:
            for name in group.analyzers:
                if name not in ENTRIES:
                    raise ValueError(f"group {group.name}: unknown analyzer {name!r}")
                if name in seen:
                    raise ValueError(f"analyzer {name!r} is in two groups: {seen[name]} and {group.name}")
                seen[name] = group.name
        return groups

    def runs_in_background(self, analyzer: str) -> bool:
        return self.critical_path is not None and analyzer not in self.critical_path

    @model_validator(mode="after")
    def _settings_are_sound(self) -> AppConfig:
        unknown = [n for n in self.critical_path or [] if n not in ENTRIES]
        if unknown:
            raise ValueError(f"critical_path names unknown analyzers: {', '.join(unknown)}")
        for name in self.ingress.seek_first:
            if name not in ENTRIES or not is_implemented(name):
                raise ValueError(f"ingress.seek_first names {name!r}, which is not an implemented analyzer")
            frames = analyzer_class(name).needs.frames
            if frames is None or frames.count is None:
                # a rate-based spec spans the whole stream: a second pass would decode the video twice
                raise ValueError(f"ingress.seek_first: {name} needs {'no frames' if frames is None else 'frames at a rate'}; "
                                 "only analyzers with a fixed frame count can be decoded first")
        for name, settings in {**self.analyzers, **{n: {} for n in self.timeouts}}.items():
            if name not in ENTRIES:
                raise ValueError(f"settings given for unknown analyzer {name!r}")
            if settings and is_implemented(name):
                analyzer_class(name).Settings.model_validate(settings)  # raises on a bad option, at start
        return self


def analyzer_infos(config: AppConfig) -> list[AnalyzerInfo]:
    group_of = {a: g.name for g in config.groups for a in g.analyzers}
    infos = []
    for name in ANALYZER_NAMES:
        implemented = is_implemented(name)
        cls = analyzer_class(name) if implemented else None
        infos.append(
            AnalyzerInfo(
                name=name,
                description=ENTRIES[name].description,
                group=group_of.get(name),
                implemented=implemented,
                needs=cls.needs if cls else Needs(),
                result_schema=cls.Result.model_json_schema() if cls else None,
            )
        )
    return infos


def config_digest(config: AppConfig) -> str:
    """What makes two identical requests give the same report: analyzer settings, group placement, timeouts and
    the analyzers' code. Part of the result-cache key, so changing any of them stops reuse of older reports."""
    import hashlib
    import json

    # Replica counts and CPU shares do not change results; the GPU share can (another device, other numerics).
    placement = {g.name: [sorted(g.analyzers), g.ray_actor_options.num_gpus > 0] for g in config.groups}
    # The decoder too: NVDEC's frames differ from FFmpeg's by a few levels, so results may.
    shape = {"analyzers": config.analyzers, "placement": placement, "timeouts": config.timeouts,
             "decoder": config.ingress.decoder}
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode())
    for path in sorted((REPO / "analyzers").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _token_from_env(name: str | None) -> str | None:
    if not name:
        return None
    token = os.environ.get(name, "")
    if len(token) < 16:
        raise ValueError(f"api_token_env names {name}, which must hold a token of at least 16 characters")
    return token


def build_app(args: dict[str, Any]) -> Application:
    config = AppConfig.model_validate(args)
    ing = config.ingress
    group_handles = {}
    for group in config.groups:
        hosted = [a for a in group.analyzers if is_implemented(a)]  # not-built ones are reported, never hosted
        if not hosted:
            continue
        options: dict[str, Any] = dict(
            name=group.name,
            max_ongoing_requests=group.max_ongoing_requests,
            ray_actor_options=group.ray_actor_options.model_dump(exclude_none=True),
        )
        if group.autoscaling_config:
            options["autoscaling_config"] = group.autoscaling_config
        else:
            options["num_replicas"] = group.num_replicas
        group_handles[group.name] = serve.deployment(AnalyzerGroup).options(**options).bind(
            group.name,
            hosted,
            {a: config.analyzers.get(a, {}) for a in hosted},
            {a: config.timeouts[a] for a in hosted if a in config.timeouts},
            None if config.critical_path is None else [a for a in hosted if config.runs_in_background(a)],
            None if group.gil_switch_interval_ms is None else group.gil_switch_interval_ms / 1000,
        )
    infos = analyzer_infos(config)
    settings = IngressSettings(
        media_root=ing.media_root.resolve() if ing.media_root else None,
        data_dir=ing.data_dir.resolve(),
        max_upload_bytes=int(ing.max_upload_mb * 1024 * 1024),
        max_duration_seconds=ing.max_duration_seconds,
        max_pixels=ing.max_pixels,
        max_concurrent_decodes=ing.max_concurrent_decodes,
        max_frame_bytes=int(ing.max_frame_mb * 1024 * 1024),
        decode_threads=ing.decode_threads,
        decode_segments=ing.decode_segments,
        decoder=ing.decoder,
        seek_first=ing.seek_first,
        group_timeout_seconds=ing.group_timeout_seconds,
        api_token=_token_from_env(ing.api_token_env),
        store_url=ing.store_url,
        retention=ing.retention,
        config_digest=config_digest(config),
    )
    return serve.deployment(Ingress).options(
        name="Ingress",
        num_replicas=ing.num_replicas,
        max_ongoing_requests=ing.max_ongoing_requests,
        max_queued_requests=ing.max_queued_requests,
        backpressure_config={"retry_after_s": ing.retry_after_s},
        ray_actor_options=ing.ray_actor_options.model_dump(exclude_none=True),
    ).bind(group_handles, [i.model_dump(mode="json") for i in infos], settings.model_dump(mode="json"))
