"""End-to-end on this machine: the Serve graph vs a sequential in-process baseline, throughput, growth.

    .venv/bin/python bench/bench_e2e.py                      # everything (~15-25 min on 2 cores)
    .venv/bin/python bench/bench_e2e.py --concurrency 1,2 --growth 30

Baseline = the replaced system's shape: one process decodes the video, then runs the same analyzer code
one analyzer after another (models loaded beforehand, not timed). The graph = the embedded default
(serve_config.cpu.yaml) on a private local Ray. Both see the same clip, the same analyzers and settings, and
each runs once unmeasured so one-time warm-ups (JIT, lazy init) count for neither, then `--repeats` times: the
median counts (2 shared cores swing single runs by seconds).
Writes bench/out/e2e.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import yaml  # noqa: E402

from bench.clips import social_clip  # noqa: E402

CLIPS = REPO / "bench" / "out" / "clips"


def cpu_args() -> dict:
    return yaml.safe_load((REPO / "serve_config.cpu.yaml").read_text())["applications"][0]["args"]


def sequential_baseline(clip: Path, repeats: int = 3) -> dict:
    """Decode once, then every available analyzer one after another in this process, decoding as the ingress does
    (the config's decode threads and frame budget). The first run warms up; the median of the others counts."""
    from analyzers.base import AnalyzerUnavailable
    from analyzers.media import decode, probe
    from analyzers.registry import ANALYZER_NAMES, analyzer_class, is_implemented
    from deployments.planner import make_plan
    from graph import AppConfig, analyzer_infos

    import os

    from deployments.launch import config_env_vars, load_config

    os.environ.update(config_env_vars(load_config(REPO / "serve_config.cpu.yaml")))  # what every replica gets
    config = AppConfig.model_validate(cpu_args())
    infos = {i.name: i for i in analyzer_infos(config)}
    loaded = {}
    for name in ANALYZER_NAMES:
        if not is_implemented(name):
            continue
        analyzer = analyzer_class(name)(config.analyzers.get(name, {}))
        try:
            analyzer.load("cpu")
            loaded[name] = analyzer
        except AnalyzerUnavailable:
            pass
    import resource

    def cpu_seconds() -> float:  # this process's threads and its waited-for children (ffmpeg)
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    runs = []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), cpu_seconds()
        meta = probe(clip)
        plan = make_plan([n for n in loaded], infos, meta.has_audio)
        specs = {infos[n].needs.frames for n in plan.to_run if infos[n].needs.frames}
        ingress = config.ingress
        bundle = decode(clip, specs, True, meta, int(ingress.max_frame_mb * 1024 * 1024),
                        ingress.decode_threads, ingress.decode_segments)
        decode_s = time.perf_counter() - started
        results, per = {}, {}
        for name in plan.to_run:
            a = loaded[name]
            t = time.perf_counter()
            try:
                wanted = (*a.needs.upstream, *a.needs.optional_upstream)
                results[name] = a.analyze(bundle, {u: results[u] for u in wanted if u in results})
            except Exception as exc:  # same isolation as the graph
                results[name] = None
                print(f"baseline: {name} failed: {exc}", file=sys.stderr)
            per[name] = time.perf_counter() - t
        runs.append({"decode_s": decode_s, "total_s": time.perf_counter() - started, "per_analyzer_s": per,
                     "cpu_s": round(cpu_seconds() - cpu_started, 2),
                     "duration": meta.duration})
        del bundle
    measured = sorted(runs[1:] or runs, key=lambda r: r["total_s"])
    return measured[len(measured) // 2] | {"analyzers": sorted(loaded), "runs_total_s": [round(r["total_s"], 2) for r in runs]}


def start_service(port: int) -> tuple[float, callable]:
    from deployments.launch import config_env_vars, deploy, load_config, start_local_ray

    config = load_config(REPO / "serve_config.cpu.yaml")
    config["http_options"]["port"] = port
    started = time.perf_counter()
    start_local_ray(num_cpus=2, dashboard=True, env_vars=config_env_vars(config), dashboard_port=port + 1)
    deploy(config)
    return time.perf_counter() - started


def ingress_pid(dashboard: str) -> int | None:
    from ray.util.state import list_actors

    for actor in list_actors(address=dashboard, filters=[("state", "=", "ALIVE")], limit=1000):
        if (actor.class_name or "").endswith(":Ingress"):
            return actor.pid
    return None


def ingress_peak_rss_mb(dashboard: str, reset: bool = False) -> float | None:
    """High-water mark of the ingress replica's resident memory (VmHWM), read from /proc; `reset` starts a new
    high-water mark (Linux: writing 5 to clear_refs), so each growth step reports its own peak."""
    pid = ingress_pid(dashboard)
    if pid is None:
        return None
    if reset:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


class MemorySampler:
    """Peaks of the ingress's resident memory by kind while a request runs, sampled from /proc/PID/status every 50 ms:
    RssAnon is the process's own heap (decoded frames, decoder buffers); RssShmem is Ray object-store pages it wrote
    with ray.put (shared memory, owned by the store, freed when the request's references go); RssFile is mapped files
    (libraries). VmHWM, the kernel's high-water mark of their sum, is read at the end."""

    KINDS = ("RssAnon", "RssFile", "RssShmem")

    def __init__(self, pid: int):
        import threading

        self.pid, self.peaks = pid, dict.fromkeys(self.KINDS, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> dict[str, float]:
        fields = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in (*self.KINDS, "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
        return fields

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for key, mb in self._read().items():
                if key in self.peaks:
                    self.peaks[key] = max(self.peaks[key], mb)

    def __enter__(self) -> MemorySampler:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # a new VmHWM for this request
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peaks["VmHWM"] = self._read()["VmHWM"]


class CpuAccount:
    """CPU seconds (user + system) that each process of our own Ray session spends during a block, summed by role
    (the process title: ray::ServeReplica:reelscope:<group>, raylet, gcs_server, dashboard, ...). Our Ray is the only
    one started by this process, so its processes are our descendants. A process's waited-for children (ffmpeg
    runs) count with it. This is where the graph's CPU goes beyond the analyzers' own work."""

    def __init__(self):
        import psutil

        self._psutil = psutil
        self.by_role: dict[str, float] = {}

    @staticmethod
    def role(proc) -> str:
        try:
            title = (proc.cmdline() or [proc.name()])[0]
        except Exception:
            return "gone"
        title = title.split()[0] if title else proc.name()
        if title.startswith("ray::"):  # an actor's title gains the method it is running: one role per process
            return title.removeprefix("ray::").split(".")[0].replace("ServeReplica:reelscope:", "replica:")
        return Path(title).name

    def _snapshot(self) -> dict[int, tuple[str, float]]:
        snap = {}
        for proc in self._psutil.Process().children(recursive=True):
            try:
                t = proc.cpu_times()
                snap[proc.pid] = (self.role(proc), t.user + t.system + t.children_user + t.children_system)
            except self._psutil.Error:
                pass
        return snap

    def __enter__(self) -> CpuAccount:
        self._before = self._snapshot()
        return self

    def __exit__(self, *exc) -> None:
        for pid, (role, seconds) in self._snapshot().items():
            spent = seconds - self._before.get(pid, (role, 0.0))[1]
            self.by_role[role] = self.by_role.get(role, 0.0) + spent
        self.by_role = {k: round(v, 2) for k, v in sorted(self.by_role.items(), key=lambda kv: -kv[1]) if v >= 0.01}

    @property
    def total(self) -> float:
        return round(sum(self.by_role.values()), 2)


def post(client: httpx.Client, clip: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    with clip.open("rb") as f:
        r = client.post("/analyze", params={"refresh": "true"}, files={"file": (clip.name, f)})  # measure work, not the cache
    r.raise_for_status()
    return time.perf_counter() - started, r.json()


def throughput(base: str, clip: Path, n: int) -> dict:
    with httpx.Client(base_url=base, timeout=1800) as client, cf.ThreadPoolExecutor(n) as pool:
        started = time.perf_counter()
        latencies = [lat for lat, _ in pool.map(lambda _: post(client, clip), range(n))]
        wall = time.perf_counter() - started
    latencies.sort()
    return {"concurrency": n, "wall_s": round(wall, 2), "videos_per_min": round(n / wall * 60, 2),
            "p50_s": round(statistics.median(latencies), 2),
            "p95_s": round(latencies[min(n - 1, int(round(0.95 * (n - 1))))], 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--growth", default="30,120,600")
    parser.add_argument("--port", type=int, default=8640)
    parser.add_argument("--repeats", type=int, default=3, help="measured warm requests (and baseline runs): the median counts")
    parser.add_argument("--growth-only", action="store_true", help="skip the baseline, the latency pair and throughput")
    parser.add_argument("--out", default=str(REPO / "bench/out/e2e.json"))
    args = parser.parse_args()
    clip = social_clip(CLIPS / f"social_{int(args.seconds)}s_720x1280.mp4", args.seconds)
    out: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": f"{platform.node()} {platform.processor() or platform.machine()}, 2 cores",
                 "clip": clip.name}

    if not args.growth_only:
        print("baseline: sequential in-process ...", flush=True)
        out["baseline"] = sequential_baseline(clip, args.repeats + 1)
        print(json.dumps({k: v for k, v in out["baseline"].items() if k != "per_analyzer_s"}), flush=True)

    import ray
    from ray import serve

    out["startup_s"] = round(start_service(args.port), 2)
    base = f"http://127.0.0.1:{args.port}"
    dashboard = f"http://127.0.0.1:{args.port + 1}"  # our own cluster's state API, whatever else runs here
    try:
        with httpx.Client(base_url=base, timeout=1800) as client:
            first, _ = post(client, clip)  # the first request pays lazy initialisation; the median of the rest counts
            measured = sorted((post(client, clip) for _ in range(1 if args.growth_only else args.repeats)), key=lambda m: m[0])
            latency, report = measured[len(measured) // 2]
            if not args.growth_only:
                with CpuAccount() as cpu:
                    cpu_latency, _ = post(client, clip)  # one more, to see where the CPU goes (idle Ray included)
                time.sleep(10)
                with CpuAccount() as idle:  # the same Ray with nothing to do, for 10 s
                    time.sleep(10)
        if not args.growth_only:
            out["graph"] = {
                "first_request_s": round(first, 2), "latency_s": round(latency, 2), "runs_latency_s": [round(m[0], 2) for m in measured],
                "decode_s": report["decode_seconds"],
                "total_s": report["total_seconds"], "realtime_factor": report["realtime_factor"],
                "per_analyzer_s": {n: o["seconds"] for n, o in report["analyzers"].items()},
                "status": {n: o["status"] for n, o in report["analyzers"].items()},
                "ingress_peak_rss_mb": ingress_peak_rss_mb(dashboard),
                "cpu": {"latency_s": round(cpu_latency, 2), "total_s": cpu.total, "by_role_s": cpu.by_role,
                        "idle_10s_total_s": idle.total, "idle_10s_by_role_s": idle.by_role},
            }
            print(json.dumps({k: v for k, v in out["graph"].items() if k not in ("per_analyzer_s", "status")}), flush=True)
            out["throughput"] = []
            for n in [int(x) for x in args.concurrency.split(",") if x]:
                out["throughput"].append(throughput(base, clip, n))
                print(json.dumps(out["throughput"][-1]), flush=True)
        out["growth"] = []
        for seconds in [float(x) for x in args.growth.split(",") if x]:
            long_clip = social_clip(CLIPS / f"social_{int(seconds)}s_720x1280.mp4", seconds)
            with MemorySampler(ingress_pid(dashboard)) as memory, httpx.Client(base_url=base, timeout=3600) as client:
                lat, rep = post(client, long_clip)
            out["growth"].append({"seconds": seconds, "latency_s": round(lat, 2), "decode_s": rep["decode_seconds"],
                                  "realtime_factor": rep["realtime_factor"], "ingress_peak_rss_mb": memory.peaks["VmHWM"],
                                  **{f"peak_{k}_mb": round(v) for k, v in memory.peaks.items() if k != "VmHWM"}})
            print(json.dumps(out["growth"][-1]), flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(markdown(out) if not args.growth_only else growth_markdown(out))


def markdown(out: dict) -> str:
    b, g = out["baseline"], out["graph"]
    lines = [f"{out['date']} · {out['machine']} · clip {out['clip']}", "",
             "| analyzer | status (graph) | graph s | sequential s |", "|---|---|---|---|"]
    for name in sorted(g["per_analyzer_s"]):
        gs, bs = g["per_analyzer_s"][name], b["per_analyzer_s"].get(name)
        lines.append(f"| {name} | {g['status'][name]} | {gs if gs is not None else '-'} | {round(bs, 3) if bs is not None else '-'} |")
    dur = b["duration"]
    lines += ["", "| measure | graph | sequential baseline |", "|---|---|---|",
              f"| decode s | {g['decode_s']} | {round(b['decode_s'], 2)} |",
              f"| end to end s (warm, median) | {g['latency_s']} | {round(b['total_s'], 2)} |",
              f"| every measured run s | {', '.join(map(str, g.get('runs_latency_s', [])))} | {', '.join(map(str, b.get('runs_total_s', [])[1:]))} |",
              f"| realtime factor | {round(g['latency_s'] / dur, 3)} | {round(b['total_s'] / dur, 3)} |",
              f"| speed-up | {round(b['total_s'] / g['latency_s'], 2)}x | 1x |",
              f"| first request s | {g['first_request_s']} | - |", f"| service start s | {out['startup_s']} | - |",
              f"| ingress peak RSS MB | {g['ingress_peak_rss_mb']} | - |",
              f"| CPU seconds, one request (all processes) | {g['cpu']['total_s']} in {g['cpu']['latency_s']} s | {b.get('cpu_s', '-')} |",
              f"| CPU seconds of the idle service in 10 s | {g['cpu']['idle_10s_total_s']} | - |", "",
              "| process (graph) | CPU s, one request | CPU s, 10 s idle |", "|---|---|---|"]
    lines += [f"| {role} | {s} | {g['cpu']['idle_10s_by_role_s'].get(role, 0)} |" for role, s in g["cpu"]["by_role_s"].items()]
    lines += ["",
              "| concurrency | videos/min | p50 s | p95 s |", "|---|---|---|---|"]
    lines += [f"| {t['concurrency']} | {t['videos_per_min']} | {t['p50_s']} | {t['p95_s']} |" for t in out.get("throughput", [])]
    return "\n".join(lines) + "\n\n" + growth_markdown(out)


def growth_markdown(out: dict) -> str:
    lines = ["| clip s | latency s | realtime factor | decode s | ingress peak RSS MB (VmHWM, this request) "
             "| peak RssAnon MB (own heap) | peak RssShmem MB (object-store pages it wrote) | peak RssFile MB |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {x['seconds']:.0f} | {x['latency_s']} | {x['realtime_factor']} | {x['decode_s']} | {x['ingress_peak_rss_mb']:.0f} "
              f"| {x.get('peak_RssAnon_mb', '-')} | {x.get('peak_RssShmem_mb', '-')} | {x.get('peak_RssFile_mb', '-')} |"
              for x in out.get("growth", [])]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
