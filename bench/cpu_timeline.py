"""Where the 2 cores go during one graph request, second by second: a diagnostic, not a benchmark.

    .venv/bin/python bench/cpu_timeline.py                  # the embedded default, the 30 s bench clip
    .venv/bin/python bench/cpu_timeline.py --interval 0.1   # finer, but the sampling itself then costs ~0.3 core

Starts the embedded default on a private Ray (as bench_e2e.py does), sends two warm-up requests, then samples every
thread of every process of that Ray from /proc during a third and prints, per second, the cores used by each kind
of thread: the critical path (pinned to the first core), each group's background analyzers (SCHED_IDLE), the
replicas' other threads (the ingress's decode among them: its threads are neither pinned nor idle-class) and Ray's
own processes. It also shows, per second, the run state of each critical thread sample (R running or runnable,
S sleeping): a critical thread that sleeps while the cores are full waits for something (the GIL, a lock, input).
This is how the niceness fix in deployments/launch.py was found (BENCHMARKS.md, "Fourth pass").
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import psutil  # noqa: E402

from bench.bench_e2e import CLIPS, CpuAccount, post, start_service  # noqa: E402
from bench.clips import social_clip  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
SCHED_IDLE = 5


def threads_now() -> dict[tuple[int, int], tuple[str, str, float, str]]:
    """(pid, tid) -> (kind, role, CPU seconds so far, run state) for every thread of our Ray's processes."""
    out = {}
    for proc in psutil.Process().children(recursive=True):
        role = CpuAccount.role(proc)
        try:
            tids = os.listdir(f"/proc/{proc.pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                stat = Path(f"/proc/{proc.pid}/task/{tid}/stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                cpu = (int(fields[11]) + int(fields[12])) / TICKS
                policy, cores = int(fields[38]), len(os.sched_getaffinity(int(tid)))
            except (OSError, ValueError):
                continue  # the thread ended between listing and reading
            if policy == SCHED_IDLE:
                kind = "background " + role.removeprefix("replica:")
            elif cores == 1 and role.startswith("replica:"):
                kind = "critical"
            elif role.startswith("replica:"):
                kind = "replica, other threads"
            else:
                kind = "ray's own processes"
            out[(proc.pid, int(tid))] = (kind, role, cpu, fields[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30, help="clip length (bench/clips.py social clip)")
    parser.add_argument("--interval", type=float, default=0.25, help="sampling interval, seconds")
    parser.add_argument("--port", type=int, default=8680)
    args = parser.parse_args()
    clip = social_clip(CLIPS / f"social_{int(args.seconds)}s_720x1280.mp4", args.seconds)

    import ray
    from ray import serve

    print(f"service started in {start_service(args.port):.1f} s", flush=True)
    samples: list[tuple[float, dict]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.perf_counter(), threads_now()))
            stop.wait(args.interval)

    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=1800) as client:
            post(client, clip)
            post(client, clip)
            started = time.perf_counter()
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            latency, report = post(client, clip)
            stop.set()
            sampler.join()
    finally:
        serve.shutdown()
        ray.shutdown()

    cores: dict[int, dict[str, float]] = {}
    states: dict[int, list[str]] = {}
    for (_, before), (at, after) in zip(samples, samples[1:]):
        second = int(at - started)
        for key, (kind, _, cpu, state) in after.items():
            spent = cpu - before.get(key, after[key])[2]
            if spent > 0:
                cores.setdefault(second, {}).setdefault(kind, 0.0)
                cores[second][kind] += spent
            if kind == "critical" and (spent > 0 or state == "R"):
                states.setdefault(second, []).append(state)
    kinds = sorted({k for row in cores.values() for k in row}, key=lambda k: -sum(r.get(k, 0) for r in cores.values()))
    print(f"request {latency:.2f} s, decode {report['decode_seconds']:.2f} s; cores used per second:")
    print("| s | all | " + " | ".join(kinds) + " | critical thread states |")
    print("|---" * (len(kinds) + 3) + "|")
    for second in sorted(cores):
        row = cores[second]
        print(f"| {second} | {sum(row.values()):.2f} | " + " | ".join(f"{row.get(k, 0):.2f}" for k in kinds)
              + f" | {''.join(states.get(second, []))} |")
    print("| total CPU s | " + f"{sum(sum(r.values()) for r in cores.values()):.2f} | "
          + " | ".join(f"{sum(r.get(k, 0) for r in cores.values()):.2f}" for k in kinds) + " | |")
    print("analyzer seconds:", {n: o["seconds"] for n, o in report["analyzers"].items() if o["seconds"] is not None})


if __name__ == "__main__":
    main()
