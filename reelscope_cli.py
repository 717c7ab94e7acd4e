"""`reelscope`: start the embedded service, or analyze videos against a running one (or one started here).

  reelscope serve [--config serve_config.cpu.yaml] [--port 8000]
  reelscope analyze VIDEO... [--analyzers a,b] [--server http://127.0.0.1:8000 | --local] [--out DIR] [--html]

`analyze` streams each video to `POST /analyze?stream=true` and draws a progress bar per video and per
analyzer as the outcomes arrive, then prints each report's summary and a table over all videos.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent
DEFAULT_SERVER = "http://127.0.0.1:8000"
STATUS_STYLE = {"ok": "green", "error": "red", "unavailable": "yellow", "skipped": "yellow", "not_implemented": "dim"}


def serve_command(args: argparse.Namespace) -> int:
    from deployments.launch import config_env_vars, deploy, load_config, start_local_ray

    config = load_config(args.config)
    if args.port:
        config.setdefault("http_options", {})["port"] = args.port
    if args.decoder:
        config = with_decoder(config, args.decoder)
    started = time.perf_counter()
    # Logical GPUs let the production group shapes (fractional num_gpus) schedule on a CPU-only machine.
    start_local_ray(num_cpus=args.num_cpus, num_gpus=args.logical_gpus, env_vars=config_env_vars(config))
    deploy(config)
    port = config.get("http_options", {}).get("port", 8000)
    print(f"reelscope is up on http://127.0.0.1:{port} after {time.perf_counter() - started:.1f} s "
          f"(Ray dashboard: http://127.0.0.1:8265). Ctrl-C stops it.", flush=True)
    if args.ready_file:
        Path(args.ready_file).write_text(str(port))
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        while not stop["now"]:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()  # our own cluster, by its own handle
    return 0


def with_decoder(config: dict, decoder: str) -> dict:
    """The config with every application's ingress decoding on `decoder`: the production profile decodes on NVDEC,
    which a CPU machine running its shape on logical GPUs does not have (the ingress would refuse to start)."""
    for app in config.get("applications", []):
        app.setdefault("args", {}).setdefault("ingress", {})["decoder"] = decoder
    return config


def analyze_command(args: argparse.Namespace) -> int:
    if args.local:
        with LocalService(args.config) as server:
            return analyze_videos(args, server)
    return analyze_videos(args, args.server)


class LocalService:
    """A private Ray on 127.0.0.1 with the config deployed on a free port, for the length of one command."""

    def __init__(self, config_path: str):
        self.config_path = config_path

    def __enter__(self) -> str:
        from deployments.launch import config_env_vars, deploy, load_config, start_local_ray

        config = load_config(self.config_path)
        port = _free_port()
        config.setdefault("http_options", {})["port"] = port
        print(f"starting a local service on 127.0.0.1:{port} (models load once; about a minute on 2 cores)...", file=sys.stderr)
        start_local_ray(dashboard=False, env_vars=config_env_vars(config))
        deploy(config)  # returns once every deployment is running
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: Any) -> None:
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()  # our own cluster, by its own handle


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def expected_analyzers(catalogue: list[dict], requested: list[str] | None) -> list[str]:
    """What a report will hold: the requested analyzers (all when none) plus the upstream ones they need."""
    needs = {a["name"]: list((a.get("needs") or {}).get("upstream") or []) for a in catalogue}
    out: list[str] = []

    def visit(name: str) -> None:
        if name in out or name not in needs:
            return
        for dep in needs[name]:
            visit(dep)
        out.append(name)

    for name in requested or list(needs):
        visit(name)
    return out


def analyze_videos(args: argparse.Namespace, server: str) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    out_dir = Path(args.out) if args.out else (Path(".") if args.html else None)
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    requested = [n.strip() for n in args.analyzers.split(",") if n.strip()] if args.analyzers else None
    progress_console = Console(stderr=True)
    rows: list[dict[str, Any]] = []
    with httpx.Client(base_url=server, timeout=httpx.Timeout(args.timeout, connect=10)) as client:
        try:
            catalogue = client.get("/analyzers").raise_for_status().json()
        except httpx.HTTPError as exc:
            print(f"reelscope: cannot reach {server}: {exc}", file=sys.stderr)
            return 2
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=progress_console, transient=False) as progress:
            for video in args.videos:
                rows.append(_analyze_one(client, progress, Path(video), requested, catalogue, args.refresh))
        for row in rows:
            report = row.get("report")
            if report is None:
                continue
            print(summarize(report))
            if out_dir:
                stem = Path(row["video"]).stem
                (out_dir / f"{stem}.json").write_text(json.dumps(report, indent=2))
                row["saved"] = str(out_dir / f"{stem}.json")
                if args.html:
                    from deployments.report_html import render_report

                    (out_dir / f"{stem}.html").write_text(render_report(report))
                    row["saved"] = str(out_dir / f"{stem}.html")
    Console(width=max(Console().width, 120)).print(summary_table(rows))
    return 1 if any(row.get("report") is None for row in rows) else 0


def _analyze_one(client: httpx.Client, progress: Any, path: Path, requested: list[str] | None, catalogue: list[dict],
                 refresh: bool) -> dict[str, Any]:
    names = expected_analyzers(catalogue, requested)
    overall = progress.add_task(f"[bold]{path.name}[/bold]", total=len(names))
    per_analyzer = {n: progress.add_task(f"  {n}", total=1) for n in names}
    row: dict[str, Any] = {"video": str(path)}
    data = {"analyzers": ",".join(requested)} if requested else {}
    params = {"stream": "true", **({"refresh": "true"} if refresh else {})}
    try:
        with path.open("rb") as f, client.stream("POST", "/analyze", params=params, files={"file": (path.name, f)}, data=data) as r:
            if r.status_code != 200:
                r.read()
                row["error"] = f"HTTP {r.status_code}: {_error_message(r)}"
            else:
                for line in r.iter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event["type"] == "outcome":
                        name, status = event["analyzer"], event["outcome"]["status"]
                        if name not in per_analyzer:  # the server knows better than our expansion
                            per_analyzer[name] = progress.add_task(f"  {name}", total=1)
                            progress.update(overall, total=len(per_analyzer))
                        style = STATUS_STYLE.get(status, "white")
                        progress.update(per_analyzer[name], completed=1, description=f"  {name} [{style}]{status}[/{style}]")
                        progress.advance(overall)
                    elif event["type"] == "report":
                        row["report"] = event["report"]
                    elif event["type"] == "error":
                        row["error"] = f"{event['error']['code']}: {event['error']['message']}"
    except (OSError, httpx.HTTPError) as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
    for task in per_analyzer.values():
        progress.update(task, visible=False)  # keep one line per finished video on screen
    done = "[green]done[/green]" if "report" in row else f"[red]failed[/red] {row.get('error', '')[:80]}"
    progress.update(overall, description=f"[bold]{path.name}[/bold] {done}")
    if "report" in row:
        progress.update(overall, completed=progress.tasks[overall].total)
    else:
        print(f"{path.name}: {row.get('error', 'no report')}", file=sys.stderr)
    return row


def _error_message(response: httpx.Response) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def summary_table(rows: list[dict[str, Any]]):
    from rich.table import Table

    table = Table(title="reelscope")
    for column in ("video", "duration", "ok", "not ok", "time", "rt factor", "cached", "saved"):
        table.add_column(column, justify="right" if column in ("duration", "time", "rt factor") else "left")
    for row in rows:
        report = row.get("report")
        if report is None:
            table.add_row(Path(row["video"]).name, "", "", f"[red]{row.get('error', 'failed')[:60]}[/red]", "", "", "", "")
            continue
        statuses = [o["status"] for o in report["analyzers"].values()]
        not_ok = sorted({f"{statuses.count(s)} {s}" for s in statuses if s != "ok"})
        table.add_row(
            Path(row["video"]).name, f"{report['video']['duration']:.1f} s", f"{statuses.count('ok')}/{len(statuses)}",
            ", ".join(not_ok), f"{report['total_seconds']:.2f} s", f"{report['realtime_factor']:.3f}",
            "yes" if report.get("cached") else "no", Path(row["saved"]).name if row.get("saved") else "",
        )
    return table


def summarize(report: dict) -> str:
    """A readable summary of a report: one line per analyzer, plus the headline findings."""
    video = report["video"]
    lines = [
        f"{report['source']['filename']}: {video['duration']:.1f} s, {video['width']}x{video['height']}, "
        f"{video['fps']:.2f} fps, audio={'yes' if video['has_audio'] else 'no'}",
        f"  analyzed in {report['total_seconds']:.2f} s (decode {report['decode_seconds']:.2f} s), "
        f"realtime factor {report['realtime_factor']:.3f}; stored at {report['results_file']}",
    ]
    for name, outcome in report["analyzers"].items():
        seconds = f"{outcome['seconds']:.2f} s" if outcome.get("seconds") is not None else ""
        detail = headline(name, outcome["result"]) if outcome["status"] == "ok" else (outcome.get("error") or "")
        lines.append(f"  {name:<24} {outcome['status']:<16} {seconds:>8}  {detail[:110]}")
    return "\n".join(lines)


def headline(name: str, result: dict) -> str:
    if name == "cut_analysis":
        return f"{result['cut_count']} cuts at frames {[c['frame'] for c in result['cuts']][:10]}"
    if name == "speech_transcription":
        return f"[{result['language']}] {result['text']!r}"
    if name == "speech_rate":
        return f"{result['words_per_minute']} words/min, {result['pause_count']} pauses"
    if name == "color_analysis":
        return f"{result['temperature']}, palette {[s['hex'] for s in result['palette']]}"
    if name == "audio_analysis":
        return f"{result['integrated_lufs']} LUFS, tempo {result['tempo_bpm']} bpm, silence {result['silence_ratio']:.0%}"
    keys = [k for k, v in result.items() if isinstance(v, (int, float, str, bool))]
    return ", ".join(f"{k}={result[k]}" for k in keys[:4])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reelscope", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start a private local Ray on 127.0.0.1 and deploy a serve config")
    serve.add_argument("--config", default=str(REPO / "serve_config.cpu.yaml"))
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--num-cpus", type=float, default=None, help="CPUs Ray may use (default: all)")
    serve.add_argument("--logical-gpus", type=float, default=0, help="logical GPUs to declare (for GPU-shaped configs on CPU)")
    serve.add_argument("--decoder", choices=["cpu", "nvdec"], default=None,
                       help="override ingress.decoder (cpu: run serve_config.yaml's shape on a machine without NVDEC)")
    serve.add_argument("--ready-file", help="write the port here once the service answers")
    serve.set_defaults(func=serve_command)
    analyze = sub.add_parser("analyze", help="analyze videos with progress bars and print a summary")
    analyze.add_argument("videos", nargs="+")
    analyze.add_argument("--analyzers", help="comma-separated subset")
    where = analyze.add_mutually_exclusive_group()
    where.add_argument("--server", default=DEFAULT_SERVER, help="a running service")
    where.add_argument("--local", action="store_true", help="start a private service here for this command, stop it after")
    analyze.add_argument("--config", default=str(REPO / "serve_config.cpu.yaml"), help="serve config for --local")
    analyze.add_argument("--out", help="folder for the JSON reports (and HTML with --html)")
    analyze.add_argument("--html", action="store_true", help="also write a self-contained HTML report per video")
    analyze.add_argument("--refresh", action="store_true", help="analyze again even when a stored report matches")
    analyze.add_argument("--timeout", type=float, default=900, help="seconds to wait for data from the server")
    analyze.set_defaults(func=analyze_command)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
