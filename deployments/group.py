"""AnalyzerGroup: one Serve deployment hosting the analyzers of one group.

Each replica loads its analyzers' models once, at start. A call runs the requested analyzers on the
media it is handed (object references, resolved here, zero-copy), each one timed and isolated: an
exception becomes that analyzer's `error`, a missing model its `unavailable`, and the others still run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import ray
from pydantic import BaseModel

from analyzers.base import Analyzer, AnalyzerStatus, AnalyzerUnavailable, own_cuda_stream, pick_device
from analyzers.media import MediaBundle
from analyzers.registry import analyzer_class
from deployments.launch import keep_replica_grpc_on_loopback
from deployments.metrics import record_loaded, record_outcome
from deployments.schema import AnalyzerOutcome, GroupCall, MediaRefs

logger = logging.getLogger("ray.serve")


@dataclass
class Slot:
    """One analyzer in this replica, how its load went, and the thread(s) it lives on.

    Every call of an analyzer - load, warm-up, analyze, ask - runs on the slot's own thread: a single one for
    life. That serializes requests per model (most model objects are not thread-safe) and keeps thread-bound
    state on one thread: torch.compile's CUDA graphs are recorded per thread, and a model called from a fresh
    pool thread re-recorded them mid-request, breaking the other models' CUDA calls (seen on the H100, c=8).
    An analyzer that batches calls itself (`concurrent_calls` > 1, video_llava's decoder, which keeps its
    model on its own thread) gets that many threads, so its callers can wait together."""

    name: str
    analyzer: Analyzer | None
    state: AnalyzerStatus  # ok (loaded), unavailable, error
    reason: str | None
    load_seconds: float
    thread: ThreadPoolExecutor | None  # None when the analyzer could not even be built


def place_thread(background: bool | None) -> None:
    """Keep a request's critical path (see graph.AppConfig.critical_path) ahead of everything else. The calling
    thread, and the worker threads it starts later (onnxruntime, torch and CTranslate2 pools made in load() inherit
    both settings), either keep the first core (critical analyzers) or go into Linux's SCHED_IDLE class on every
    core, which gives way to any normal thread (background analyzers). None: leave the thread as it is.
    Measured on 2 cores (BENCHMARKS.md, "End to end, CPU"): pinned, the critical analyzer is not woken onto a core
    full of background threads (−1 s); a niceness step is weak, as Ray starts every worker at niceness 15 already
    (15 -> 19 is only 2.4:1). Background threads once also kept off the first core; since composition_analysis left
    the chain, that left the first core idle after text_overlay while the second still had seconds of work."""
    if background is None:
        return
    tid = threading.get_native_id()
    try:
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2:
            return
        if background:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        else:
            os.sched_setaffinity(tid, cores[:1])
    except (OSError, AttributeError) as exc:  # not Linux: the analyzer still runs, unplaced
        logger.warning("could not place %s: %s", threading.current_thread().name, exc)


def start_analyzer_thread(background: bool | None, device: str) -> None:
    place_thread(background)
    own_cuda_stream(device)


def load_slot(name: str, settings: dict[str, Any] | None, device: str, background: bool | None = None) -> Slot:
    started = time.perf_counter()
    thread = None
    try:
        analyzer = analyzer_class(name)(settings)
        thread = ThreadPoolExecutor(max_workers=analyzer.concurrent_calls, thread_name_prefix=f"analyzer-{name}",
                                    initializer=start_analyzer_thread, initargs=(background, device))
        thread.submit(analyzer.load, device).result()
        return Slot(name, analyzer, AnalyzerStatus.ok, None, time.perf_counter() - started, thread)
    except AnalyzerUnavailable as exc:
        return Slot(name, None, AnalyzerStatus.unavailable, public(str(exc)), time.perf_counter() - started, thread)
    except Exception as exc:  # a broken model must not take the other analyzers of the group down
        logger.exception("loading analyzer %s failed", name)
        reason = f"model failed to load: {type(exc).__name__}: {public(str(exc))[:300]}"
        return Slot(name, None, AnalyzerStatus.error, reason, time.perf_counter() - started, thread)


class AnalyzerGroup:
    def __init__(self, group: str, analyzers: list[str], settings: dict[str, dict[str, Any]], timeouts: dict[str, float],
                 background: list[str] | None = None, switch_interval_s: float | None = None):
        keep_replica_grpc_on_loopback()
        self.group = group
        if switch_interval_s is not None:  # before any analyzer thread starts (graph.GroupConfig says why)
            sys.setswitchinterval(switch_interval_s)
        self.device = pick_device()
        self.timeouts = timeouts
        # background None: no critical path configured, threads stay where the OS puts them
        self.slots = {name: load_slot(name, settings.get(name), self.device, None if background is None else name in background)
                      for name in analyzers}
        self._fatal: str | None = None
        for slot in self.slots.values():
            logger.info("group %s: %s %s in %.1f s %s", group, slot.name, slot.state.value, slot.load_seconds, slot.reason or "")
        record_loaded(group, self.slots)

    async def run_stream(self, call: GroupCall) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Run `call.analyzers` on the call's media, yielding (name, AnalyzerOutcome as a dict) as each finishes,
        so the ingress can stream every analyzer's result the moment it exists."""
        media = await self._resolve(call.media, call.analyzers)
        for name in call.analyzers:
            outcome = await self._run_one(name, media, call.upstream)
            record_outcome(self.group, name, outcome)
            yield name, outcome.model_dump(mode="json")

    async def run(self, call: GroupCall) -> dict[str, dict[str, Any]]:
        """The same, all at once: name -> AnalyzerOutcome as a dict."""
        return {name: outcome async for name, outcome in self.run_stream(call)}

    async def _resolve(self, refs: MediaRefs, names: list[str]) -> MediaBundle:
        """Fetch only the frame sets and audio that these analyzers need (ObjectRefs are awaitable)."""
        bundle = MediaBundle(metadata=refs.metadata)
        wanted_specs = {self.slots[n].analyzer.needs.frames for n in names if n in self.slots and self.slots[n].analyzer}
        for spec in wanted_specs:
            if spec is not None and spec.key in refs.frame_refs:
                bundle.frame_sets[spec] = await refs.frame_refs[spec.key]
        wants_audio = any(self.slots[n].analyzer.needs.audio for n in names if n in self.slots and self.slots[n].analyzer)
        if wants_audio and refs.audio_ref is not None:
            bundle.audio = await refs.audio_ref
        return bundle

    async def _run_one(self, name: str, media: MediaBundle, upstream: dict[str, dict[str, Any]]) -> AnalyzerOutcome:
        slot = self.slots.get(name)
        if slot is None:
            return AnalyzerOutcome(status=AnalyzerStatus.error, error=f"{name} is not hosted by group {self.group}", group=self.group)
        if slot.analyzer is None:
            return AnalyzerOutcome(status=slot.state, error=slot.reason, group=self.group)
        analyzer = slot.analyzer
        try:
            typed_upstream = _typed_upstream(analyzer, upstream)
        except Exception as exc:
            return AnalyzerOutcome(status=AnalyzerStatus.error, error=f"bad upstream result: {exc}", group=self.group)
        started = time.perf_counter()
        try:
            result: BaseModel = await _exclusive(slot, self.timeouts.get(name), analyzer.analyze, media, typed_upstream)
            status, payload, error = AnalyzerStatus.ok, result.model_dump(mode="json"), None
        except AnalyzerUnavailable as exc:
            status, payload, error = AnalyzerStatus.unavailable, None, public(str(exc))
        except asyncio.TimeoutError:
            status, payload, error = AnalyzerStatus.error, None, f"timed out after {self.timeouts.get(name)} s"
        except Exception as exc:
            logger.exception("analyzer %s failed", name)
            status, payload, error = AnalyzerStatus.error, None, f"{type(exc).__name__}: {public(str(exc))[:300]}"
            if _is_fatal(exc):
                self._fatal = f"{name}: {error}"
        return AnalyzerOutcome(
            status=status, seconds=round(time.perf_counter() - started, 4), result=payload, error=error,
            model=public(analyzer.model_in_use), group=self.group,
        )

    async def ask(self, analyzer_name: str, media_refs: MediaRefs, question: str) -> dict[str, Any]:
        """A free question about a video, for analyzers that answer questions (video_llava)."""
        slot = self.slots.get(analyzer_name)
        if slot is None or slot.analyzer is None:
            raise AnalyzerUnavailable(slot.reason if slot else f"{analyzer_name} is not hosted by {self.group}")
        media = await self._resolve(media_refs, [analyzer_name])
        answer = await _exclusive(slot, self.timeouts.get(analyzer_name), slot.analyzer.ask, media, question)
        return answer.model_dump(mode="json")

    def describe(self) -> dict[str, dict[str, Any]]:
        """Model state per analyzer, for GET /analyzers and /health."""
        gpu_ids = [str(i) for i in ray.get_gpu_ids()]  # the card(s) Ray assigned this replica (logical on CPU machines)
        return {
            name: {
                "state": slot.state.value,
                "reason": slot.reason,
                "model": public(slot.analyzer.model_in_use) if slot.analyzer else None,
                "load_seconds": round(slot.load_seconds, 3),
                "device": self.device,
                "gpu_ids": gpu_ids,
            }
            for name, slot in self.slots.items()
        }

    def check_health(self) -> None:
        """Serve calls this periodically; raising makes Serve replace the replica (e.g. after a CUDA fault)."""
        if self._fatal:
            raise RuntimeError(f"replica of {self.group} is unusable: {self._fatal}")


async def _exclusive(slot: Slot, timeout: float | None, fn, *args):
    """Run `fn(*args)` on the slot's own thread (see Slot). A timed-out call cannot be stopped: it keeps the
    thread, so the next request for this model waits behind it instead of sharing the model."""
    future = asyncio.get_running_loop().run_in_executor(slot.thread, fn, *args)
    # an abandoned call's error is retrieved here, so it is not reported as unhandled
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return await asyncio.wait_for(asyncio.shield(future), timeout)


_PATH = re.compile(r"(?<![\w.~])(?:/[^\s/'\"`:,;()\[\]{}]+){2,}")


def public(text: str | None) -> str | None:
    """Text for clients: absolute server paths (model files, folders) shortened to their last part."""
    if not text:
        return text
    return _PATH.sub(lambda m: ".../" + m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


def _typed_upstream(analyzer: Analyzer, upstream: dict[str, dict[str, Any]]) -> dict[str, BaseModel]:
    wanted = (*analyzer.needs.upstream, *analyzer.needs.optional_upstream)
    return {name: analyzer_class(name).Result.model_validate(upstream[name]) for name in wanted if name in upstream}


def _is_fatal(exc: BaseException) -> bool:
    """Errors after which a replica's models cannot be trusted (CUDA faults); ordinary bugs are not fatal."""
    text = f"{type(exc).__name__} {exc}"
    return "CUDA error" in text or "cudaError" in text or "device-side assert" in text
