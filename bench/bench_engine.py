"""Engine benchmark: ours against FunASR 1.4.16 in the same run, each scenario in a fresh process.

    python bench/bench_engine.py [--model DIR] [--device cpu|cuda] [--dtype fp32|fp16]

DIR defaults to checkpoints/plus_large_random, built first if missing with
`python -m emotion_app make-checkpoint DIR --preset plus_large --training-state` (1.95 GB, like
the real file). Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def clip(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like test signal (harmonics of a gliding pitch under a syllable envelope)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from audio_files import speechlike

    return speechlike(seconds, seed=seed)


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: ru_maxrss survives exec, so a worker started
    by a parent holding a model would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(impl: str, scenario: str, model: str, device: str, dtype: str, backend: str = "torch") -> dict:
    """Runs in a fresh process; returns timings and this process's peak RSS."""
    t0 = time.perf_counter()
    out: dict = {}
    if impl == "ours":
        from emotion_app import Engine

        out["import_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        engine = Engine(model=model, device=device, dtype=dtype, backend=backend)
        out["load_s"] = time.perf_counter() - t1

        def run(x):
            return engine.predict(x, sample_rate=16000)
    else:
        from funasr import AutoModel

        out["import_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        fm = AutoModel(
            model=model, disable_update=True, device=device, disable_pbar=True, log_level="ERROR", ncpu=os.cpu_count() or 1
        )  # FunASR's default is 4 threads: on 2 cores that runs a 10 s clip in 30 s instead of 1.5 s
        out["load_s"] = time.perf_counter() - t1

        def run(x):
            return fm.generate(input=x, granularity="utterance", extract_embedding=False)

    def sync():
        if device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    if scenario == "cold":
        t2 = time.perf_counter()
        run(clip(10.0))
        sync()
        out["first_s"] = time.perf_counter() - t2
        out["cold_total_s"] = time.perf_counter() - t0
    elif scenario == "steady":
        for seconds in (3, 10, 30):
            x = clip(seconds, seed=seconds)
            run(x)  # warm-up
            times = []
            for _ in range(3):
                sync()
                t = time.perf_counter()
                run(x)
                sync()
                times.append(time.perf_counter() - t)
            out[f"steady_{seconds}s"] = float(np.median(times))
    elif scenario.startswith("throughput"):
        n = int(scenario.split(":")[1])
        rng = np.random.default_rng(0)
        clips = [clip(float(d), seed=i) for i, d in enumerate(rng.uniform(1, 30, n))]
        audio_s = sum(len(c) for c in clips) / 16000
        if impl == "ours":
            engine.predict_batch([(16000, clips[0])])  # warm-up
            sync()
            t = time.perf_counter()
            engine.predict_batch([(16000, c) for c in clips])
        else:
            run(clips[0])
            sync()
            t = time.perf_counter()
            for c in clips:  # FunASR runs inputs one at a time
                run(c)
        sync()
        out["throughput_x"] = audio_s / (time.perf_counter() - t)
        out["throughput_audio_s"] = audio_s
    elif scenario == "long":
        x = clip(300.0, seed=5)
        t = time.perf_counter()
        run(x)
        sync()
        out["long_300s"] = time.perf_counter() - t
    out["peak_rss_mb"] = peak_rss_mb()
    if device.startswith("cuda"):
        import torch

        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def spawn(impl: str, scenario: str, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        impl,
        scenario,
        "--model",
        args.model,
        "--device",
        args.device,
        "--dtype",
        args.dtype,
        "--backend",
        getattr(args, "backend", "torch"),
    ]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["process_wall_s"] = wall
    return res


def fmt(v, unit="s"):
    if v is None:
        return "-"
    return f"{v:.2f} {unit}" if unit == "s" else f"{v:.0f}{unit}" if unit == "x" else f"{v:.0f} {unit}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / "checkpoints" / "plus_large_random"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--backend", default="torch", help="torch, or onnx (--model: an export-onnx folder)")
    parser.add_argument("--worker", nargs=2, metavar=("IMPL", "SCENARIO"))
    parser.add_argument("--throughput-clips", type=int, default=-1, help="mixed 1-30 s set size (default: 200 on CUDA, 0 on CPU)")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.model, args.device, args.dtype, args.backend)))
        return
    model = Path(args.model)
    if not (model / "model.pt").exists():
        from emotion_app.tools.random_checkpoint import build_random_checkpoint

        build_random_checkpoint(model, "plus_large", training_state=True)
    from emotion_app.model.checkpoint import _cache_dir

    cache = _cache_dir(model / "model.pt")
    for f in ("source.json", "model.safetensors"):
        (cache / f).unlink(missing_ok=True)
    rows = {}
    rows["ours first load (converts model.pt)"] = spawn("ours", "cold", args)
    rows["ours cold start (cached weights)"] = spawn("ours", "cold", args)
    rows["funasr cold start"] = spawn("funasr", "cold", args)
    ours_steady, fun_steady = spawn("ours", "steady", args), spawn("funasr", "steady", args)
    ours_long = spawn("ours", "long", args)
    clips = args.throughput_clips if args.throughput_clips >= 0 else (200 if args.device.startswith("cuda") else 0)
    if clips:
        ours_tp, fun_tp = spawn("ours", f"throughput:{clips}", args), spawn("funasr", f"throughput:{clips}", args)

    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, device {args.device} {args.dtype}")
    print(f"Model: {model} ({(model / 'model.pt').stat().st_size / 1e9:.2f} GB model.pt)\n")
    print("| scenario | emotion_app | FunASR 1.4.16 | FunASR / ours |")
    print("|---|---|---|---|")
    fun = rows["funasr cold start"]

    def row(label, ours, theirs, unit="s"):
        ratio = f"{theirs / ours:.2f}x" if ours and theirs else "-"
        if unit == "x" and ours and theirs:  # a rate: higher is better
            ratio = f"{ours / theirs:.2f}x faster"
        print(f"| {label} | {fmt(ours, unit)} | {fmt(theirs, unit)} | {ratio} |")

    def phases(r):
        return " / ".join(fmt(r.get(k)) for k in ("import_s", "load_s", "first_s"))

    for label in ("ours first load (converts model.pt)", "ours cold start (cached weights)"):
        r = rows[label]
        row(f"{label}: import to first 10 s result", r.get("cold_total_s"), fun.get("cold_total_s"))
        print(f"| &nbsp;&nbsp;import / load / first clip | {phases(r)} | {phases(fun)} | |")
    for s in (3, 10, 30):
        row(f"steady latency, {s} s clip", ours_steady.get(f"steady_{s}s"), fun_steady.get(f"steady_{s}s"))
    long_note = "not run: one 300 s pass needs ~14 GB per attention matrix"
    print(f"| 5-minute recording (30 s windows) | {fmt(ours_long.get('long_300s'))} | {long_note} | - |")
    cold = rows["ours cold start (cached weights)"]
    row("peak RSS, cold start + 10 s clip", cold.get("peak_rss_mb"), fun.get("peak_rss_mb"), "MB")
    row("peak RSS, steady 3/10/30 s clips", ours_steady.get("peak_rss_mb"), fun_steady.get("peak_rss_mb"), "MB")
    row("peak RSS, 5-minute recording", ours_long.get("peak_rss_mb"), None, "MB")
    if clips:
        name = f"batched throughput, {clips} clips of 1-30 s (x real time; FunASR: one at a time)"
        row(name, ours_tp.get("throughput_x"), fun_tp.get("throughput_x"), "x")
    if args.device.startswith("cuda"):
        row("GPU peak memory, steady", ours_steady.get("gpu_peak_mb"), fun_steady.get("gpu_peak_mb"), "MB")
    runs = {**rows, "steady ours": ours_steady, "steady funasr": fun_steady, "long": ours_long}
    if clips:
        runs.update({"throughput ours": ours_tp, "throughput funasr": fun_tp})
    errors = {k: v["error"] for k, v in runs.items() if "error" in v}
    if errors:
        print("\nErrors:", json.dumps(errors, indent=1))


if __name__ == "__main__":
    main()
