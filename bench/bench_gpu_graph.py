"""The production graph under Ray Serve on one GPU vs the same analyzers run one after another in one process.

    python bench/bench_gpu_graph.py --out $OUT/graph.json --clip .gpu-carry/graph/social_30s_1080x1920.mp4   # H100
    .venv/bin/python bench/bench_gpu_graph.py --smoke --out bench/out/graph_smoke.json                       # CPU check

Graph = serve_config.yaml as deployed (same groups, replicas, GPU fractions and CPU shares) on a private Ray
with num_gpus=1, requests by `video_path` (JSON, so no multipart package is needed) with ?refresh=true.
Baseline = the replaced system's shape, in a child process (so its GPU memory is returned before the graph
starts): probe + decode once, then every loaded analyzer one after another, on the device its group would get
(cuda for the GPU groups, cpu for cpu_parallel). Both run the same analyzer code and settings; each is measured
after a first, unmeasured request, so model warm-ups count for neither.

Models are the production architectures at production size with RANDOM weights, because no machine of this
project can download checkpoints: video_llava = LLaVA-NeXT-Video-7B built locally (bench_video_llava_gpu),
object_detection = yolo11m.yaml, background_segmentation = yolo11n-seg.yaml. Times and memory are those of
production; the outputs mean nothing. Analyzers whose libraries or models are not on the machine report
`unavailable`/`error`; the results list exactly which ran.

`--set PATH=VALUE` changes a value of the app's args (both sides); `--variant NAME:PATH=VALUE;...` runs the graph
again after the first with those values added, each on a fresh private Ray, so configurations compare within one
lease (leases of the same card differed by ~30 % at c=8 on 2026-12-04).

`--max-ongoing stage1_gpu_heavy=1` overrides a group's max_ongoing_requests (on 2026-11-25 the production value 4
failed at c=8: CUDA-graph capture of the compiled video_llava decode on one thread broke the YOLO calls on another).
`--compile-mode` defaults to max-autotune, production's: int8 weights (production's precision) decode ~10x slower
under reduce-overhead (measured; the settings refuse it). Compiling costs ~90 s in each of the two processes.

`--mps` runs everything as clients of a CUDA MPS server of its own (private pipe and log folders, started before
anything touches CUDA, told to quit at the end): without it the card time-slices between the replicas' processes,
so at c=8 a decode waits for its share behind four other processes' kernels (BENCHMARKS.md, seventh run). It changes
no setting of the card. Run it as its own invocation (`--mps --skip-baseline`) beside a plain one in the same lease.

GPU memory: per replica from torch inside each replica actor (`__ray_call__`), plus nvidia-smi sampled every
0.5 s (per process and the card's total), since torch counters cannot be read across processes.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False"}
os.environ.update(OFFLINE_ENV)  # no machine here reaches a hub: fail at once instead of waiting on the network

NOTE = ("RANDOM WEIGHTS: production architectures at production size (LLaVA-NeXT-Video-7B, yolo11m, yolo11n-seg); "
        "timings and memory only, outputs are meaningless.")


def production_config(ckpt: Path, clip: Path, data_dir: Path, port: int, smoke: bool, compile_mode: str,
                      max_ongoing: dict[str, int] | None = None, placement: str = "one_gpu",
                      decode_loop: str | None = None, overrides: list[str] = ()) -> dict:
    """serve_config.yaml with only what this machine forces changed: local random-weight models, offline, paths;
    the groups' replicas and GPU fractions as `placement` (cluster/placements.py) says."""
    from cluster.placements import apply_placement
    from deployments.launch import load_config

    config = apply_placement(load_config(REPO / "serve_config.yaml"), placement)
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    config["proxy_location"] = "HeadOnly"
    app = config["applications"][0]
    app.setdefault("runtime_env", {}).setdefault("env_vars", {}).update(OFFLINE_ENV)
    args = app["args"]
    args["ingress"].update(media_root=str(clip.parent.resolve()), data_dir=str(data_dir))
    for group in args["groups"]:
        if group["name"] in (max_ongoing or {}):
            group["max_ongoing_requests"] = max_ongoing[group["name"]]
    settings = args["analyzers"]
    settings["object_detection"] = {"model": "yolo11n.yaml" if smoke else "yolo11m.yaml", "allow_random_weights": True}
    settings["background_segmentation"] = {"model": "yolo11n-seg.yaml", "allow_random_weights": True}
    settings["video_llava"].update(model=str(ckpt), local_files_only=True, compile_mode=compile_mode)
    if decode_loop:
        settings["video_llava"]["decode_loop"] = decode_loop
    if smoke:  # CPU: no compiled static cache, short output
        settings["video_llava"].update(precision="fp32", cache_implementation=None, compile_mode=None, warmup=False,
                                       max_new_tokens=8)
        args["ingress"].update(decode_threads=1, decode_segments=1, decoder="cpu")
    for item in overrides:  # --set ingress.decode_segments=4, groups.stage1_gpu_heavy.gil_switch_interval_ms=0.5
        dotted, _, value = item.partition("=")
        *parents, key = dotted.split(".")
        node = args
        for part in parents:  # a list of named items (groups) is entered by name
            node = next(g for g in node if g["name"] == part) if isinstance(node, list) else node.setdefault(part, {})
        if value.strip().lower() in ("~", "null"):
            node.pop(key, None)  # back to the setting's default
        else:
            node[key] = yaml.safe_load(value)
    return config


def build_llava(ckpt: Path, smoke: bool) -> dict:
    if smoke:
        from tests.tiny_llava import build_tiny_llava

        if not (ckpt / "config.json").is_file():
            build_tiny_llava(ckpt)
        return {"built": "tiny (tests/tiny_llava.py)"}
    from bench.bench_video_llava_gpu import build_checkpoint

    return build_checkpoint(ckpt, smoke=False, device="cuda")


# --------------------------------------------------------------------------- GPU memory

class GpuSampler:
    """nvidia-smi every 0.5 s: peak MiB per process and each card's peak used MiB."""

    def __init__(self):
        self.per_pid: dict[int, int] = {}
        self.total_peak = 0
        self.card_peaks: dict[int, int] = {}
        self.raw_sample = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.available = shutil.which("nvidia-smi") is not None

    def start(self) -> "GpuSampler":
        if self.available:
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                apps = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                                      capture_output=True, text=True, timeout=10).stdout
                total = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.used", "--format=csv,noheader,nounits"],
                                       capture_output=True, text=True, timeout=10).stdout
                for line in apps.strip().splitlines():
                    pid, mib = (x.strip() for x in line.split(","))
                    self.per_pid[int(pid)] = max(self.per_pid.get(int(pid), 0), int(mib))
                if apps.strip():
                    self.raw_sample = apps.strip()
                for line in total.strip().splitlines():
                    card, mib = (int(x.strip()) for x in line.split(","))
                    self.card_peaks[card] = max(self.card_peaks.get(card, 0), mib)
                self.total_peak = max(self.card_peaks.values(), default=0)
            except Exception:
                pass
            self._stop.wait(0.5)

    def stop(self) -> dict:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        return {"nvidia_smi": self.available, "card_used_peak_mib": self.total_peak, "per_card_peak_mib": self.card_peaks,
                "per_pid_peak_mib": self.per_pid, "last_compute_apps": self.raw_sample}


def _replica_gpu(replica) -> dict:
    """Runs inside a Serve replica actor (via __ray_call__): its pid and torch's own GPU peaks."""
    import os as _os
    import sys as _sys

    import ray as _ray

    out = {"pid": _os.getpid(), "gpu_ids": [str(i) for i in _ray.get_gpu_ids()]}
    torch = _sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        out.update(max_allocated_gb=round(torch.cuda.max_memory_allocated() / 2**30, 2),
                   max_reserved_gb=round(torch.cuda.max_memory_reserved() / 2**30, 2),
                   allocated_gb=round(torch.cuda.memory_allocated() / 2**30, 2))
    return out


def replica_gpu_memory() -> dict:
    import ray

    found = {}
    for entry in ray.util.list_named_actors(all_namespaces=True):
        name = entry["name"] if isinstance(entry, dict) else entry
        if not name.startswith("SERVE_REPLICA::"):
            continue
        try:
            actor = ray.get_actor(name, namespace=entry.get("namespace", "serve") if isinstance(entry, dict) else "serve")
            found[name.split("::", 1)[1]] = ray.get(actor.__ray_call__.remote(_replica_gpu), timeout=30)
        except Exception as exc:
            found[name.split("::", 1)[1]] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return found


# --------------------------------------------------------------------------- baseline (child process)

def sequential_baseline(config: dict, clip: Path, repeats: int) -> dict:
    if config["applications"][0]["args"]["ingress"].get("decoder") == "nvdec":  # first: see analyzers/_nvdec.py
        from analyzers._nvdec import unavailable_reason

        if reason := unavailable_reason():
            raise RuntimeError(f"the baseline decodes with NVDEC as the ingress does, but: {reason}")
    import torch

    from analyzers.media import decode, probe
    from analyzers.registry import ANALYZER_NAMES, analyzer_class, is_implemented
    from deployments.planner import make_plan
    from graph import AppConfig, analyzer_infos

    app = AppConfig.model_validate(config["applications"][0]["args"])
    infos = {i.name: i for i in analyzer_infos(app)}
    on_gpu = {a for g in app.groups if g.ray_actor_options.num_gpus > 0 for a in g.analyzers}
    cuda = torch.cuda.is_available()
    loaded, load_s, not_loaded = {}, {}, {}
    for name in ANALYZER_NAMES:
        if not is_implemented(name) or infos[name].group is None:
            continue
        device = "cuda" if cuda and name in on_gpu else "cpu"
        started = time.perf_counter()
        try:
            analyzer = analyzer_class(name)(app.analyzers.get(name, {}))
            analyzer.load(device)
            loaded[name] = analyzer
        except Exception as exc:  # the graph's replicas isolate a failed load the same way
            not_loaded[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
        load_s[name] = round(time.perf_counter() - started, 2)
        print(f"baseline load {name}: {'ok' if name in loaded else not_loaded[name]} ({load_s[name]} s)", flush=True)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        meta = probe(clip)
        plan = make_plan(list(loaded), infos, meta.has_audio)
        specs = {infos[n].needs.frames for n in plan.to_run if infos[n].needs.frames}
        bundle = decode(clip, specs, any(infos[n].needs.audio for n in plan.to_run), meta,
                        threads=app.ingress.decode_threads, segments=app.ingress.decode_segments,
                        decoder=app.ingress.decoder)  # as the ingress decodes
        decode_s = time.perf_counter() - started
        results, per, failed = {}, {}, {}
        for name in plan.to_run:
            if name not in loaded:  # an upstream the plan added that could not load (the graph reports it unavailable)
                continue
            a = loaded[name]
            if any(u not in results for u in a.needs.upstream):  # the graph skips these too
                continue
            t = time.perf_counter()
            try:
                wanted = (*a.needs.upstream, *a.needs.optional_upstream)
                results[name] = a.analyze(bundle, {u: results[u] for u in wanted if u in results})
            except Exception as exc:
                failed[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
            per[name] = round(time.perf_counter() - t, 4)
        if cuda:
            torch.cuda.synchronize()
        runs.append({"decode_s": round(decode_s, 3), "total_s": round(time.perf_counter() - started, 3),
                     "per_analyzer_s": per, "failed": failed, "duration": meta.duration})
        print(f"baseline run: {runs[-1]['total_s']} s", flush=True)
        del bundle
    out = runs[-1] | {"first_run_total_s": runs[0]["total_s"], "loaded": sorted(loaded), "not_loaded": not_loaded,
                      "load_s": load_s, "devices": {n: loaded[n].device for n in loaded}}
    if cuda:
        out["torch_max_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        out["torch_max_reserved_gb"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
    return out


# --------------------------------------------------------------------------- graph

def post(base: str, video_path: str) -> tuple[float, dict]:
    body = json.dumps({"video_path": video_path}).encode()
    request = urllib.request.Request(f"{base}/analyze?refresh=true", data=body, method="POST",
                                     headers={"content-type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=1800) as response:
        report = json.loads(response.read())
    return time.perf_counter() - started, report


def summarize(latency: float, report: dict) -> dict:
    return {"latency_s": round(latency, 3), "decode_s": report["decode_seconds"], "total_s": report["total_seconds"],
            "realtime_factor": report["realtime_factor"],
            "per_analyzer_s": {n: o["seconds"] for n, o in report["analyzers"].items()},
            "status": {n: o["status"] for n, o in report["analyzers"].items()},
            "errors": {n: o["error"] for n, o in report["analyzers"].items() if o.get("error")},
            "model": {n: o.get("model") for n, o in report["analyzers"].items() if o.get("model")}}


def run_graph(config: dict, clip: Path, concurrency: list[int], repeats: int, rec: "Recorder", smoke: bool,
              num_gpus: int = 1, slot: str = "graph") -> None:
    """One graph on a fresh private Ray, its figures in rec.doc[slot] ("graph", or "variant <name>")."""
    import ray
    from ray import serve

    from deployments.launch import config_env_vars, deploy, start_local_ray

    port = config["http_options"]["port"]
    base = f"http://127.0.0.1:{port}"
    env = config_env_vars(config) | {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env |= {k: os.environ[k] for k in ("CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY") if k in os.environ}  # --mps
    sampler = GpuSampler().start()
    started = time.perf_counter()
    # logical CPUs: the production shares need 16, more than a 2-core smoke machine has
    start_local_ray(num_cpus=max(16, os.cpu_count() or 1), num_gpus=num_gpus, dashboard=False, env_vars=env)
    graph = rec.doc[slot] = {"ray_init_s": round(time.perf_counter() - started, 2)}
    try:
        deploy(config)
        graph["startup_s"] = round(time.perf_counter() - started, 2)  # ray.init + every replica loaded
        rec.flush()
        with urllib.request.urlopen(f"{base}/analyzers", timeout=60) as response:
            graph["analyzers"] = {a["name"]: {k: a.get(k) for k in ("group", "status", "model", "reason", "error", "gpu_ids")
                                                         if a.get(k) is not None}
                                             for a in json.loads(response.read())}
        first, report = post(base, clip.name)
        graph["first_request"] = summarize(first, report)
        rec.flush()
        print(f"graph first request: {first:.2f} s", flush=True)
        runs = []
        for _ in range(repeats):
            latency, report = post(base, clip.name)
            runs.append(summarize(latency, report))
            print(f"graph c=1: {latency:.2f} s", flush=True)
        best = sorted(runs, key=lambda r: r["latency_s"])[len(runs) // 2]  # the median run, whole
        graph["c1"] = best | {"latencies_s": [r["latency_s"] for r in runs]}
        rec.flush()
        graph["throughput"] = []
        for n in concurrency:
            with cf.ThreadPoolExecutor(n) as pool:
                t0 = time.perf_counter()
                results = list(pool.map(lambda _: post(base, clip.name), range(n)))
                wall = time.perf_counter() - t0
            lat = sorted(r[0] for r in results)
            row = {"concurrency": n, "wall_s": round(wall, 2), "video_s": round(n * report["video"]["duration"], 2),
                   "aggregate_x_realtime": round(n * report["video"]["duration"] / wall, 2),
                   "videos_per_min": round(n / wall * 60, 2), "p50_s": round(statistics.median(lat), 2),
                   "max_s": round(lat[-1], 2),
                   "llava_s": sorted(r[1]["analyzers"].get("video_llava", {}).get("seconds") or 0 for r in results),
                   # what bounds the wall: each request's decode, and each analyzer's longest run over the requests
                   "decode_s": sorted(r[1]["decode_seconds"] for r in results),
                   "per_analyzer_max_s": {a: max(r[1]["analyzers"][a]["seconds"] or 0 for r in results)
                                          for a in results[0][1]["analyzers"]},
                   "statuses_same_as_c1": all(summarize(*r)["status"] == best["status"] for r in results),
                   "errors_per_request": [{n: e[:160] for n, e in summarize(*r)["errors"].items()
                                           if n not in best.get("errors", {})} for r in results]}
            graph["throughput"].append(row)
            rec.flush()
            print(json.dumps(row), flush=True)
        graph["replica_gpu"] = replica_gpu_memory()
    finally:
        graph["gpu_sampler"] = sampler.stop()
        rec.flush()
        try:
            serve.shutdown()
        finally:
            ray.shutdown()


# --------------------------------------------------------------------------- output

class Recorder:
    def __init__(self, out: Path, doc: dict):
        self.out, self.doc = out, doc
        out.parent.mkdir(parents=True, exist_ok=True)
        self.flush()

    def flush(self) -> None:
        self.out.write_text(json.dumps(self.doc, indent=1, default=str))  # a run cut short keeps what it measured


def markdown(doc: dict) -> str:
    env, b, g = doc["env"], doc.get("baseline", {}), doc.get("graph", {})
    c1 = g.get("c1", {})
    dur = b.get("duration") or (c1 and c1["latency_s"] / c1["realtime_factor"] if c1.get("realtime_factor") else None)
    lines = [f"**{NOTE}**", "", f"{doc['date']} · {env.get('device')} · torch {env.get('torch')} · "
             f"transformers {env.get('transformers')} · clip {doc['clip']} ({dur} s) · placement {doc.get('placement', 'one_gpu')}", "",
             "| analyzer | graph status | graph s (c=1) | sequential s | model |", "|---|---|---|---|---|"]
    for name in sorted(c1.get("per_analyzer_s", {})):
        gs, bs = c1["per_analyzer_s"][name], b.get("per_analyzer_s", {}).get(name)
        status = c1["status"][name] + (f" ({c1['errors'][name][:90]})" if name in c1.get("errors", {}) else "")
        lines.append(f"| {name} | {status} | {gs if gs is not None else '-'} | {bs if bs is not None else '-'} | "
                     f"{c1.get('model', {}).get(name, '-')} |")
    lines += ["", "| measure | graph (Ray Serve) | sequential baseline |", "|---|---|---|"]
    if c1:  # the baseline column reads "-" when it was skipped (e.g. a placement measured after it in one lease)
        bt = b.get("total_s")
        lines += [f"| decode s | {c1['decode_s']} | {b.get('decode_s', '-')} |",
                  f"| end to end s, c=1 (warm) | {c1['latency_s']} | {bt or '-'} |",
                  f"| realtime factor c=1 (s per video s) | {round(c1['latency_s'] / dur, 3)} | {round(bt / dur, 3) if bt else '-'} |",
                  f"| speed-up, c=1 | {round(bt / c1['latency_s'], 2) if bt else '-'}x | 1x |"]
        for t in g.get("throughput", []):
            lines.append(f"| aggregate, c={t['concurrency']} | {t['aggregate_x_realtime']}x realtime ({t['videos_per_min']} videos/min, "
                         f"p50 {t['p50_s']} s, max {t['max_s']} s) | {round(dur / bt, 2) if bt else '-'}x realtime (one at a time) |")
            if bt:
                lines.append(f"| throughput speed-up, c={t['concurrency']} | {round(t['aggregate_x_realtime'] / (dur / bt), 2)}x | 1x |")
        lines += [f"| first request s | {g.get('first_request', {}).get('latency_s')} | {b.get('first_run_total_s', '-')} |",
                  f"| start s (Ray + replicas loaded / models loaded) | {g.get('startup_s')} | {round(sum(b.get('load_s', {}).values()), 1) if b else '-'} |",
                  f"| GPU memory | peak per card {g.get('gpu_sampler', {}).get('per_card_peak_mib')} MiB (nvidia-smi) | "
                  f"torch peak {b.get('torch_max_allocated_gb', '-')} GB, card peak {b.get('gpu_sampler', {}).get('card_used_peak_mib', '-')} MiB |"]
    reps = g.get("replica_gpu", {})
    if reps:
        lines += ["", "| replica | pid | GPU ids | torch max allocated GB | torch max reserved GB | nvidia-smi peak MiB |", "|---|---|---|---|---|---|"]
        per_pid = {int(k): v for k, v in g.get("gpu_sampler", {}).get("per_pid_peak_mib", {}).items()}
        for name, r in sorted(reps.items()):
            lines.append(f"| {name} | {r.get('pid', '-')} | {','.join(r.get('gpu_ids', [])) or '-'} | {r.get('max_allocated_gb', '-')} | {r.get('max_reserved_gb', '-')} | "
                         f"{per_pid.get(r.get('pid'), '-')} |")
    variants = {k.removeprefix("variant "): v for k, v in doc.items() if k.startswith("variant ")}
    if variants:
        lines += ["", "| graph | --set added | c=1 s | video_llava s (c=1) | decode s (c=1) | aggregate at the highest c | p50 / max there |",
                  "|---|---|---|---|---|---|---|"]
        for name, v in {"as configured": g | {"set": []}, **variants}.items():
            vc1, t8 = v.get("c1", {}), (v.get("throughput") or [{}])[-1]
            lines.append(f"| {name} | {'; '.join(v.get('set', [])) or '-'} | {vc1.get('latency_s', v.get('error', '-'))} | "
                         f"{vc1.get('per_analyzer_s', {}).get('video_llava', '-')} | {vc1.get('decode_s', '-')} | "
                         f"{t8.get('aggregate_x_realtime', '-')}x | {t8.get('p50_s', '-')} / {t8.get('max_s', '-')} s |")
    if b.get("not_loaded"):
        lines += ["", "Not loaded (sequential baseline):"] + [f"- {n}: {why[:200]}" for n, why in sorted(b["not_loaded"].items())]
    return "\n".join(lines) + "\n"


def environment() -> dict:
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "device": (f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}" if torch.cuda.is_available()
                       else f"cpu ({os.cpu_count()} cores)"),
            "cpus": os.cpu_count(), "ffprobe": shutil.which("ffprobe") is not None, "host": platform.node()}


class MpsServer:
    """A CUDA MPS control daemon private to this bench: its pipe and log folders are fresh temp dirs, and this
    process's environment points at them, so the Ray workers and the baseline child it starts connect to it."""

    def __init__(self) -> None:
        import tempfile

        self.binary = shutil.which("nvidia-cuda-mps-control")
        if self.binary is None:
            raise SystemExit("--mps: nvidia-cuda-mps-control is not on this machine (it comes with the NVIDIA driver)")
        self.env = {"CUDA_MPS_PIPE_DIRECTORY": tempfile.mkdtemp(prefix="rs-mps-pipe-"),
                    "CUDA_MPS_LOG_DIRECTORY": tempfile.mkdtemp(prefix="rs-mps-log-")}

    def __enter__(self) -> "MpsServer":
        if "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized():
            raise SystemExit("--mps: CUDA was initialized before the MPS server started; this process would not use it")
        subprocess.run([self.binary, "-d"], env=os.environ | self.env, check=True, timeout=30)
        os.environ.update(self.env)
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run([self.binary], input="quit\n", text=True, env=os.environ | self.env, timeout=60, check=False)
        log = Path(self.env["CUDA_MPS_LOG_DIRECTORY"]) / "control.log"
        if log.is_file():
            print("MPS control log (last lines):\n" + "\n".join(log.read_text().splitlines()[-5:]), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--smoke", action="store_true", help="CPU: tiny llava, yolo11n, 10 s 720x1280 clip, c=1,2")
    ap.add_argument("--clip", type=Path, default=None)
    ap.add_argument("--concurrency", default=None, help="default 8 (2 with --smoke)")
    ap.add_argument("--repeats", type=int, default=None, help="measured c=1 requests after the first (default 2, 1 smoke)")
    ap.add_argument("--compile-mode", default="max-autotune")
    ap.add_argument("--weights-dir", type=Path, default=None)
    ap.add_argument("--port", type=int, default=8660)
    ap.add_argument("--baseline-child", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--under-mps", action="store_true", help=argparse.SUPPRESS)  # --mps, once its server runs
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--mps", action="store_true", help="run every GPU process as a client of a private CUDA MPS server")
    ap.add_argument("--max-ongoing", default="", help="group=N,...: override a group's max_ongoing_requests")
    ap.add_argument("--placement", default="one_gpu", help="cluster/placements.py name: replicas and GPU fractions per group")
    ap.add_argument("--decode-loop", default=None, help="override video_llava's decode_loop (generate | static_greedy)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:PATH=VALUE[;PATH=VALUE...]",
                    help="after the graph, the graph again with these --set values added (same lease, same baseline), "
                         "e.g. 'no_seek:ingress.seek_first=[]' (repeatable)")
    ap.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                    help="override a value of the app's args, e.g. ingress.decode_segments=4 or "
                         "analyzers.video_llava.max_new_tokens=150 (repeatable; the baseline gets the same)")
    args = ap.parse_args(argv)
    if args.mps and not args.baseline_child:  # the child inherits the environment that points at the server
        with MpsServer():
            return main([a for a in (argv if argv is not None else sys.argv[1:]) if a != "--mps"] + ["--under-mps"])
    ckpt = args.weights_dir or Path("/tmp/llava_tiny_graph" if args.smoke else "/tmp/llava_next_video_7b_random")
    if args.clip is None:
        from bench.clips import social_clip

        args.clip = (social_clip(REPO / "bench/out/clips/social_10s_720x1280.mp4", 10, 720, 1280) if args.smoke
                     else social_clip(REPO / "bench/out/clips/social_30s_1080x1920.mp4", 30, 1080, 1920))
    data_dir = Path(f"/tmp/rs-graph-bench-{os.getpid()}")
    max_ongoing = {k: int(v) for k, v in (x.split("=") for x in args.max_ongoing.split(",") if x)}
    config = production_config(ckpt, args.clip, data_dir, args.port, args.smoke, args.compile_mode, max_ongoing,
                               args.placement, args.decode_loop, args.set)

    if args.baseline_child:  # the child: baseline only, result as JSON
        sampler = GpuSampler().start()
        result = sequential_baseline(config, args.clip, repeats=2)
        result["gpu_sampler"] = sampler.stop()
        args.baseline_child.write_text(json.dumps(result, default=str))
        return 0

    doc = {"note": NOTE, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "env": environment(),
           "placement": args.placement, "cuda_mps": args.under_mps,
           "clip": args.clip.name, "settings": config["applications"][0]["args"]["analyzers"],
           "groups": config["applications"][0]["args"]["groups"], "argv": sys.argv[1:]}
    rec = Recorder(args.out, doc)
    print(json.dumps(doc["env"]), flush=True)
    t = time.perf_counter()
    doc["llava_checkpoint"] = build_llava(ckpt, args.smoke) | {"seconds": round(time.perf_counter() - t, 1)}
    rec.flush()
    if not args.skip_baseline:
        child_out = data_dir.with_suffix(".baseline.json")
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--out", str(args.out.with_suffix(".child.json")),
               "--clip", str(args.clip), "--compile-mode", args.compile_mode, "--weights-dir", str(ckpt),
               "--baseline-child", str(child_out), "--max-ongoing", args.max_ongoing, "--placement", args.placement] + \
              (["--decode-loop", args.decode_loop] if args.decode_loop else []) + (["--smoke"] if args.smoke else []) + \
              [f"--set={item}" for item in args.set]
        t = time.perf_counter()
        subprocess.run(cmd, check=False)
        if child_out.is_file():
            doc["baseline"] = json.loads(child_out.read_text()) | {"wall_s": round(time.perf_counter() - t, 1)}
        else:
            doc["baseline"] = {"error": "the baseline process wrote no result (see its output above)"}
        rec.flush()
        print(json.dumps({k: v for k, v in doc["baseline"].items() if k not in ("per_analyzer_s", "gpu_sampler")}), flush=True)
    concurrency = [int(c) for c in (args.concurrency or ("2" if args.smoke else "8")).split(",") if c]
    repeats = args.repeats or (1 if args.smoke else 2)
    try:
        from cluster.placements import gpus_needed

        run_graph(config, args.clip, concurrency, repeats, rec, args.smoke, gpus_needed(args.placement))
        for variant in args.variant:
            name, _, sets = variant.partition(":")
            extra = [item for item in sets.split(";") if item]
            varied = production_config(ckpt, args.clip, data_dir, args.port, args.smoke, args.compile_mode, max_ongoing,
                                       args.placement, args.decode_loop, [*args.set, *extra])
            try:
                run_graph(varied, args.clip, concurrency, repeats, rec, args.smoke, gpus_needed(args.placement),
                          slot=f"variant {name}")
                doc[f"variant {name}"]["set"] = extra
            except Exception as exc:  # the main graph's figures stand; say what this one did
                doc[f"variant {name}"] = {"set": extra, "error": f"{type(exc).__name__}: {str(exc)[:1000]}"}
            rec.flush()
    except Exception as exc:
        doc.setdefault("graph", {})["error"] = f"{type(exc).__name__}: {str(exc)[:1000]}"
        rec.flush()
        raise
    finally:
        table = markdown(doc)
        args.out.with_suffix(".md").write_text(table)
        print(table, flush=True)
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
