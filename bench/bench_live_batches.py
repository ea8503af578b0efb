"""The live scheduler's batches without the server: N sessions' windows scored in one process, and
what a busy neighbour on the same cores does to them.

    python bench/bench_live_batches.py [--model DIR] [--dtype bf16] [--sessions 4,6,8]
                                       [--background 0,0.2] [--seconds 15] [--batch-costs 1,2,4,8]

For each background load and session count, a fresh process loads the engine and runs the live
scheduler (live/scheduler.py) as the server does, without its front: each session's windows (3 s,
a 0.5 s hop, slid features) become due at real time, the sessions' phases spread over one hop at
random (seed 1, the same in every run), and each window's delay is the time from becoming due to
its result. `--background D` runs, beside it, a process that keeps one core busy a share D of the
time in 2 ms bursts (of wall time: when the model's threads preempt it, it gets less): what the
server's front (WebSocket frames, resampling, the take's file) does to the model's two threads.
Reports the delays, the mean batch and the model's busy share (model time over the time from the
first window due to the last result). First,
for each neighbour's load, what a batch of each of `--batch-costs` sizes costs (the next hop of
that many streams, medians of 12 calls). DIR defaults to checkpoints/plus_large_random
(built if missing). Prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORKER = r"""
import json, sys, threading, time
import numpy as np
from emotion_app import Engine
from emotion_app.live.scheduler import LiveScheduler

folder, dtype, sessions, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
engine = Engine(model=folder, device="cpu", dtype=dtype)
scheduler = LiveScheduler(engine)
rng = np.random.default_rng(1)
n, hop = 48000, 8000
streams = [(0.05 * rng.standard_normal(int((seconds + 4) * 16000))).astype(np.float32) for _ in range(sessions)]
for key in range(sessions):  # each session's first window (all its conv features), and the warm-up
    scheduler.submit(key, streams[key][:n], time.perf_counter(), n).result()
start = time.perf_counter() + 0.2
phases = rng.uniform(0, 0.5, sessions)
due = sorted((start + phases[s] + k * 0.5, s, k) for s in range(sessions) for k in range(1, int(seconds / 0.5)))
delays, failed, last, lock = [], [], [start], threading.Lock()
batches0, windows0, busy0 = scheduler.stats.batches, scheduler.stats.windows, scheduler.stats.busy_s

def record(future, at):
    with lock:
        last[0] = time.perf_counter()
        (failed if future.exception() is not None else delays).append(last[0] - at)

for at, s, k in due:
    time.sleep(max(0.0, at - time.perf_counter()))
    end = n + k * hop
    scheduler.submit(s, streams[s][end - n : end], at, end).add_done_callback(lambda f, at=at: record(f, at))
while len(delays) + len(failed) < len(due) and time.perf_counter() < due[-1][0] + 30:
    time.sleep(0.05)
stats = scheduler.stats
span = last[0] - start  # to the last result: a model that fell behind works past the last window's due time
print(json.dumps({
    "p50": float(np.median(delays)), "p95": float(np.percentile(delays, 95)), "max": float(max(delays)),
    "windows": len(delays), "expected": len(due), "failed": len(failed),
    "mean_batch": (stats.windows - windows0) / max(stats.batches - batches0, 1),
    "busy": (stats.busy_s - busy0) / span,
}))
"""

COSTS = r"""
import json, sys, time
import numpy as np
from emotion_app import Engine
from emotion_app.model.sliding import FeatureCache, StreamWindow

engine = Engine(model=sys.argv[1], device="cpu", dtype=sys.argv[2])
rng = np.random.default_rng(0)
n, hop, out = 48000, 8000, {}
for b in [int(x) for x in sys.argv[3].split(",")]:
    streams = [(0.05 * rng.standard_normal(n + 14 * hop)).astype(np.float32) for _ in range(b)]
    caches = [FeatureCache() for _ in streams]
    def run(end):
        engine.run_windows([StreamWindow(s[end - n : end], end, c) for s, c in zip(streams, caches)])
    run(n)
    times = []
    for k in range(1, 13):
        t = time.perf_counter(); run(n + k * hop); times.append(time.perf_counter() - t)
    out[b] = float(np.median(times))
print(json.dumps(out))
"""

BACKGROUND = r"""
import sys, time
duty, period, until = float(sys.argv[1]), 0.002 / float(sys.argv[1]), time.time() + float(sys.argv[2])
while time.time() < until:
    t = time.perf_counter()
    while time.perf_counter() - t < 0.002:
        pass
    time.sleep(period - 0.002)
"""


def batch_costs(args, background: float) -> dict[str, float]:
    """Seconds per batch of each size in `--batch-costs`, beside a neighbour this busy."""
    cmd = [sys.executable, "-c", COSTS, str(args.model), args.dtype, args.batch_costs]
    return json.loads(beside(cmd, background, 900).strip().splitlines()[-1])


def beside(cmd: list[str], background: float, timeout: float) -> str:
    """Run `cmd` (a worker) with a neighbour keeping one core busy `background` of the time; its stdout."""
    neighbour = None
    if background > 0:
        neighbour = subprocess.Popen([sys.executable, "-c", BACKGROUND, str(background), str(timeout)])
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=timeout)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    if done.returncode != 0:
        raise SystemExit(f"the worker failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def run(args, sessions: int, background: float) -> dict:
    cmd = [sys.executable, "-c", WORKER, str(args.model), args.dtype, str(sessions), str(args.seconds)]
    return json.loads(beside(cmd, background, args.seconds + 300).strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=ROOT / "checkpoints" / "plus_large_random")
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--sessions", default="4,6,8")
    p.add_argument("--background", default="0,0.2", help="shares of one core kept busy beside the model")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--batch-costs", default="1,2,4,8", help="batch sizes to time first (empty: none)")
    args = p.parse_args()
    if not (args.model / "model.pt").exists():
        from emotion_app.tools.random_checkpoint import build_random_checkpoint

        build_random_checkpoint(args.model, "plus_large", training_state=True)
    backgrounds = [float(b) for b in args.background.split(",")]
    if not all(0 <= b <= 1 for b in backgrounds):
        raise SystemExit(f"--background: shares of one core, from 0 to 1 (got {args.background})")
    costs = {b: batch_costs(args, b) for b in backgrounds} if args.batch_costs else {}
    rows = []
    for background in backgrounds:
        for sessions in [int(s) for s in args.sessions.split(",")]:
            r = run(args, sessions, background)
            rows.append(
                f"| {background:.0%} | {sessions} | {r['p50']:.2f} s | {r['p95']:.2f} s | {r['max']:.2f} s | "
                f"{r['mean_batch']:.1f} | {r['busy']:.0%} | {r['windows']} of {r['expected']}"
                + (f", {r['failed']} failed" if r["failed"] else "")
                + " |"
            )
            print(rows[-1], file=sys.stderr, flush=True)
    print(f"\n{args.model.name}, {args.dtype}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"3 s windows every 0.5 s for {args.seconds:g} s\n")  # fmt: skip
    if costs:
        sizes = args.batch_costs.split(",")
        print("| neighbour's load (one core) | " + " | ".join(f"batch of {b} (a window)" for b in sizes) + " |")
        print("|---|" + "---|" * len(sizes))
        for background, times in costs.items():
            cells = [f"{times[b] * 1e3:.0f} ms ({times[b] / int(b) * 1e3:.1f} ms)" for b in sizes]
            print(f"| {background:.0%} | " + " | ".join(cells) + " |")
        print()
    print("| neighbour's load (one core) | sessions | p50 delay | p95 delay | max | mean batch | model busy | windows |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
