"""`reelscope`: start the embedded service, or analyze videos against a running one.

  reelscope serve [--config serve_config.cpu.yaml] [--port 8000]
  reelscope analyze VIDEO... [--analyzers a,b] [--server http://127.0.0.1:8000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent
DEFAULT_SERVER = "http://127.0.0.1:8000"


def serve_command(args: argparse.Namespace) -> int:
    from deployments.launch import config_env_vars, deploy, load_config, start_local_ray

    config = load_config(args.config)
    if args.port:
        config.setdefault("http_options", {})["port"] = args.port
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


def analyze_command(args: argparse.Namespace) -> int:
    out_dir = Path(args.out) if args.out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    with httpx.Client(base_url=args.server, timeout=args.timeout) as client:
        for video in args.videos:
            path = Path(video)
            data = {"analyzers": args.analyzers} if args.analyzers else {}
            with path.open("rb") as f:
                response = client.post("/analyze", files={"file": (path.name, f)}, data=data)
            if response.status_code != 200:
                failures += 1
                print(f"{path.name}: HTTP {response.status_code}: {response.json().get('error', {}).get('message')}", file=sys.stderr)
                continue
            report = response.json()
            if out_dir:
                (out_dir / f"{path.stem}.json").write_text(json.dumps(report, indent=2))
            print(summarize(report))
    return 1 if failures else 0


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
    serve.add_argument("--ready-file", help="write the port here once the service answers")
    serve.set_defaults(func=serve_command)
    analyze = sub.add_parser("analyze", help="send videos to a running service and print a summary")
    analyze.add_argument("videos", nargs="+")
    analyze.add_argument("--analyzers", help="comma-separated subset")
    analyze.add_argument("--server", default=DEFAULT_SERVER)
    analyze.add_argument("--out", help="folder for the JSON reports")
    analyze.add_argument("--timeout", type=float, default=900)
    analyze.set_defaults(func=analyze_command)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
