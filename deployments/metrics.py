"""Custom Prometheus metrics of the service, through `ray.serve.metrics` (Serve adds the deployment, replica
and application tags). Each node's Ray metrics agent exports them on its metrics export port as
`ray_reelscope_*`, next to Serve's own `ray_serve_*` metrics; cluster/grafana-reelscope.json charts both.

The metric objects are made on first use inside each replica process: Serve's tags come from the replica
context, which only exists there.
"""

from __future__ import annotations

from functools import cache
from typing import Any

LATENCY_BUCKETS_S = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]
REALTIME_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32]
ANALYZER_TAGS = ("analyzer", "group")


@cache
def _metrics() -> dict[str, Any]:
    from ray.serve.metrics import Counter, Gauge, Histogram

    return {
        "analyzer_seconds": Histogram(
            "reelscope_analyzer_seconds", "Wall time of one analyzer on one video, by outcome.",
            boundaries=LATENCY_BUCKETS_S, tag_keys=(*ANALYZER_TAGS, "status")),
        "analyzer_outcomes": Counter(
            "reelscope_analyzer_outcomes", "Analyzer runs by outcome (ok, error, unavailable, skipped).",
            tag_keys=(*ANALYZER_TAGS, "status")),
        "analyzer_errors": Counter(
            "reelscope_analyzer_errors", "Analyzer runs that raised or timed out.", tag_keys=ANALYZER_TAGS),
        "analyzer_unavailable": Counter(
            "reelscope_analyzer_unavailable", "Analyzer runs answered `unavailable` (no usable model).", tag_keys=ANALYZER_TAGS),
        "analyzer_loaded": Gauge(
            "reelscope_analyzer_loaded", "1 when this replica loaded the analyzer's model, 0 when it could not.",
            tag_keys=ANALYZER_TAGS),
        "reports": Counter("reelscope_reports", "Finished reports.", tag_keys=("outcome",)),
        "video_seconds": Counter("reelscope_video_seconds_processed", "Seconds of video analyzed (sum of durations)."),
        "realtime_factor": Histogram(
            "reelscope_realtime_factor", "Report wall time / video duration (below 1: faster than realtime).",
            boundaries=REALTIME_BUCKETS),
        "report_seconds": Histogram(
            "reelscope_report_seconds", "Wall time of a whole report, decode included.", boundaries=LATENCY_BUCKETS_S),
    }


def record_loaded(group: str, slots: dict[str, Any]) -> None:
    """Per replica at start: which models loaded (AnalyzerGroup.slots)."""
    gauge = _metrics()["analyzer_loaded"]
    for name, slot in slots.items():
        gauge.set(1 if slot.analyzer is not None else 0, tags={"analyzer": name, "group": group})


def record_outcome(group: str, analyzer: str, outcome: Any) -> None:
    """One analyzer run (an AnalyzerOutcome) in a group replica."""
    m = _metrics()
    status = outcome.status.value if hasattr(outcome.status, "value") else str(outcome.status)
    tags = {"analyzer": analyzer, "group": group}
    m["analyzer_outcomes"].inc(1, tags={**tags, "status": status})
    if outcome.seconds is not None:
        m["analyzer_seconds"].observe(outcome.seconds, tags={**tags, "status": status})
    if status == "error":
        m["analyzer_errors"].inc(1, tags=tags)
    elif status == "unavailable":
        m["analyzer_unavailable"].inc(1, tags=tags)


def record_report(report: Any) -> None:
    """One finished AnalysisReport in the ingress."""
    m = _metrics()
    failed = any(o.status.value == "error" for o in report.analyzers.values())
    m["reports"].inc(1, tags={"outcome": "with_errors" if failed else "ok"})
    if report.video.duration > 0:
        m["video_seconds"].inc(report.video.duration)
    if report.realtime_factor > 0:
        m["realtime_factor"].observe(report.realtime_factor)
    m["report_seconds"].observe(report.total_seconds)


def add_served_by_header(app: Any) -> None:
    """Responses name the replica and node that served them (`X-Reelscope-Replica`, `X-Reelscope-Node`): for
    tracing a request in logs and metrics, and for tests that need answers from every replica."""

    @app.middleware("http")
    async def _served_by(request, call_next):
        response = await call_next(request)
        try:
            import ray
            from ray import serve

            response.headers["X-Reelscope-Replica"] = serve.get_replica_context().replica_tag
            response.headers["X-Reelscope-Node"] = ray.get_runtime_context().get_node_id()
        except Exception:  # outside a replica (unit tests of the app): no header
            pass
        return response
