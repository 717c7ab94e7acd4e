"""Request -> analyzers to run -> what each one waits for.

Pure logic, no Ray: the ingress asks the planner what to run, what each analyzer must wait for (its upstream
analyzers that run in this request), and what to report without running (not implemented, not deployed, no
audio, upstream failed). The ingress starts every analyzer the moment its own inputs exist - its media and its
upstream results - rather than stage by stage: on 2 cores a stage barrier held speech_emotion back until
text_overlay, the longest analyzer, had finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analyzers.base import AnalyzerStatus, FrameSpec
from deployments.schema import AnalyzerInfo, AnalyzerOutcome


class UnknownAnalyzers(ValueError):
    def __init__(self, names: list[str]):
        super().__init__(f"unknown analyzers: {', '.join(names)}")
        self.names = names


@dataclass
class Plan:
    requested: list[str]
    stages: list[list[str]]  # analyzers to run in dependency levels: a topological order (the sequential baseline's)
    preset: dict[str, AnalyzerOutcome] = field(default_factory=dict)  # reported without running
    waits_for: dict[str, list[str]] = field(default_factory=dict)  # analyzer -> upstream analyzers that run in this request

    @property
    def to_run(self) -> list[str]:
        return [name for stage in self.stages for name in stage]


def expand(requested: list[str] | None, infos: dict[str, AnalyzerInfo]) -> list[str]:
    """The requested analyzers (all when None) plus, recursively, the upstream analyzers they need."""
    names = list(infos) if not requested else list(dict.fromkeys(requested))
    unknown = [n for n in names if n not in infos]
    if unknown:
        raise UnknownAnalyzers(unknown)
    out: list[str] = []

    def visit(name: str) -> None:
        if name in out:
            return
        for dep in infos[name].needs.upstream:
            visit(dep)
        out.append(name)

    for name in names:
        visit(name)
    return out


def make_plan(requested: list[str] | None, infos: dict[str, AnalyzerInfo], has_audio: bool) -> Plan:
    names = expand(requested, infos)
    preset: dict[str, AnalyzerOutcome] = {}
    for name in names:
        info = infos[name]
        if not info.implemented:
            preset[name] = AnalyzerOutcome(status=AnalyzerStatus.not_implemented, error="not built yet")
        elif info.group is None:
            preset[name] = AnalyzerOutcome(status=AnalyzerStatus.unavailable, error="not deployed in this profile")
        elif info.needs.audio and not has_audio:
            preset[name] = AnalyzerOutcome(status=AnalyzerStatus.skipped, error="the video has no audio track", group=info.group)
    # An analyzer whose required upstream cannot run is skipped too (transitively, in dependency order).
    for name in names:
        blocked = [dep for dep in infos[name].needs.upstream if dep in preset]
        if name not in preset and blocked:
            preset[name] = AnalyzerOutcome(
                status=AnalyzerStatus.skipped, error=f"needs {blocked[0]}, which is {preset[blocked[0]].status.value}",
                group=infos[name].group,
            )
    runnable = [n for n in names if n not in preset]
    stages: list[list[str]] = []
    placed: set[str] = set()
    while len(placed) < len(runnable):
        stage = [
            n for n in runnable
            if n not in placed
            and all(d in placed for d in infos[n].needs.upstream)
            # optional upstream: wait for it only when it runs in this request
            and all(d in placed or d not in runnable for d in infos[n].needs.optional_upstream)
        ]
        if not stage:
            raise ValueError(f"dependency cycle among {sorted(set(runnable) - placed)}")
        stages.append(stage)
        placed.update(stage)
    waits_for = {
        n: [d for d in (*infos[n].needs.upstream, *infos[n].needs.optional_upstream) if d in placed] for n in runnable
    }
    return Plan(requested=names, stages=stages, preset=preset, waits_for=waits_for)


def frame_specs(names: list[str], infos: dict[str, AnalyzerInfo]) -> set[FrameSpec]:
    return {infos[n].needs.frames for n in names if infos[n].needs.frames is not None}


def needs_audio(names: list[str], infos: dict[str, AnalyzerInfo]) -> bool:
    return any(infos[n].needs.audio for n in names)
