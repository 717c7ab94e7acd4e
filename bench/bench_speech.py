"""speech_transcription vs faster-whisper run directly, side by side, on every reference transcript.

    .venv/bin/python bench/bench_speech.py               # offline:tiny.en and offline:base, in-process
    .venv/bin/python bench/bench_speech.py --graph       # also through the Serve graph over HTTP

Each audio file is muxed under a still picture (the service analyzes videos), decoded by the service's own
decoder, and given (a) to the analyzer and (b) to faster-whisper's WhisperModel.transcribe with the same
model and options. Word error rate uses tests/truth.py's normalization (numbers as spoken, no punctuation).
Writes bench/out/speech.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analyzers.media import decode  # noqa: E402
from analyzers.speech_transcription import SpeechTranscription, resolve_model  # noqa: E402
from tests.synth import SHARED_MEDIA, still_with_audio  # noqa: E402
from tests.truth import transcripts, word_error_rate  # noqa: E402


def clips(workdir: Path) -> dict[str, Path]:
    out = {}
    for name in transcripts():
        source = SHARED_MEDIA / ("video" if name.endswith(".mpg") else "audio") / name
        out[name] = source if name.endswith(".mpg") else still_with_audio(source, workdir / f"{Path(name).stem}.mp4")
    return out


def direct(model, samples, options) -> tuple[str, float]:
    started = time.perf_counter()
    segments, _ = model.transcribe(samples, condition_on_previous_text=False, word_timestamps=True, **options)
    text = " ".join(s.text.strip() for s in segments)
    return text, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="offline:tiny.en,offline:base")
    parser.add_argument("--graph", action="store_true", help="also send each clip through the Serve graph")
    parser.add_argument("--out", default=str(REPO / "bench/out/speech.json"))
    args = parser.parse_args()
    from faster_whisper import WhisperModel

    refs = transcripts()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        videos = clips(Path(tmp))
        bundles = {name: decode(path, set(), want_audio=True) for name, path in videos.items()}
        for model_name in [m for m in args.models.split(",") if m]:
            analyzer = SpeechTranscription({"model": model_name, "cpu_threads": 2})
            analyzer.load("cpu")
            s = analyzer.settings
            model = WhisperModel(resolve_model(model_name), device="cpu", compute_type="int8", cpu_threads=2)
            options = dict(beam_size=s.beam_size, language=s.language, vad_filter=s.vad_filter)
            for name, bundle in bundles.items():
                analyzer.analyze(bundle, {})  # warm both once per clip length class: first calls pay setup costs
                direct(model, bundle.audio.samples, options)
                t = time.perf_counter()
                ours = analyzer.analyze(bundle, {})
                ours_s = time.perf_counter() - t
                theirs, theirs_s = direct(model, bundle.audio.samples, options)
                rows.append({"model": model_name, "file": name, "duration": round(bundle.audio.duration, 2),
                             "wer_analyzer": round(word_error_rate(refs[name], ours.text), 4),
                             "wer_direct": round(word_error_rate(refs[name], theirs), 4),
                             "analyzer_s": round(ours_s, 3), "direct_s": round(theirs_s, 3),
                             "text": ours.text})
                print(json.dumps(rows[-1]), flush=True)
        if args.graph:
            rows_graph = graph_pass(videos)
        else:
            rows_graph = []
    doc = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": "2-core CPU dev machine",
           "rows": rows, "graph": rows_graph}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2))
    print(markdown(doc))


def graph_pass(videos: dict[str, Path]) -> list[dict]:
    """The same clips through the embedded default over HTTP: end-to-end latency and the analyzer's own time."""
    import httpx
    import ray
    from ray import serve

    from deployments.launch import config_env_vars, deploy, load_config, start_local_ray

    config = load_config(REPO / "serve_config.cpu.yaml")
    config["http_options"]["port"] = 8650
    start_local_ray(num_cpus=2, dashboard=False, env_vars=config_env_vars(config))
    rows = []
    try:
        deploy(config)
        with httpx.Client(base_url="http://127.0.0.1:8650", timeout=600) as client:
            for name, path in videos.items():
                for attempt in range(2):  # second one counts
                    started = time.perf_counter()
                    with path.open("rb") as f:
                        report = client.post("/analyze", params={"refresh": "true"}, files={"file": (path.name, f)},
                                             data={"analyzers": "speech_transcription"}).json()
                    latency = time.perf_counter() - started
                outcome = report["analyzers"]["speech_transcription"]
                rows.append({"file": name, "latency_s": round(latency, 3), "analyzer_s": outcome["seconds"],
                             "decode_s": report["decode_seconds"],
                             "wer": round(word_error_rate(transcripts()[name], outcome["result"]["text"]), 4)})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    return rows


def markdown(doc: dict) -> str:
    lines = [f"{doc['date']} · {doc['machine']}", "",
             "| model | file | s | WER analyzer | WER faster-whisper direct | analyzer s | direct s |", "|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        lines.append(f"| {r['model']} | {r['file']} | {r['duration']} | {r['wer_analyzer']:.3f} | {r['wer_direct']:.3f} | "
                     f"{r['analyzer_s']} | {r['direct_s']} |")
    by_model: dict[str, list] = {}
    for r in doc["rows"]:
        by_model.setdefault(r["model"], []).append(r)
    lines += ["", "| model | mean WER analyzer | mean WER direct | total analyzer s | total direct s |", "|---|---|---|---|---|"]
    for m, rs in by_model.items():
        n = len(rs)
        lines.append(f"| {m} | {sum(r['wer_analyzer'] for r in rs) / n:.3f} | {sum(r['wer_direct'] for r in rs) / n:.3f} | "
                     f"{sum(r['analyzer_s'] for r in rs):.2f} | {sum(r['direct_s'] for r in rs):.2f} |")
    if doc["graph"]:
        lines += ["", "| file (graph, offline:tiny.en) | end-to-end s | analyzer s | decode s | WER |", "|---|---|---|---|---|"]
        lines += [f"| {r['file']} | {r['latency_s']} | {r['analyzer_s']} | {r['decode_s']} | {r['wer']:.3f} |" for r in doc["graph"]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
