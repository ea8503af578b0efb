"""Fast CPU modes against fp32 and FunASR 1.4.16, in one run: torch fp32 / bf16 / int8, onnx fp32 / int8.

    python bench/bench_fast.py [--model DIR] [--modes torch-fp32,torch-bf16,torch-int8,onnx-fp32,onnx-int8]
                               [--clips 200] [--recording-minutes 60] [--no-funasr]

Each scenario runs in a fresh process (bench_engine.py and bench_batch.py workers): import to the
first 10 s result, steady 3/10/30 s clips (median of 3), a batch of `--clips` WAV files of 1-30 s
through the batch tool's path, a spoken recording of `--recording-minutes` with VAD, and the peak
RSS of each. FunASR runs the cold start, steady clips and the batch (one file at a time, its only
way) on the same checkpoint. DIR defaults to checkpoints/plus_large_random (built if missing); the
ONNX modes export it once to DIR_onnx (and DIR_onnx_int8 with --int8). onnxruntime has no bf16
kernels for these ops on the CPU, so there is no onnx-bf16 mode. Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

import bench_batch  # noqa: E402
import bench_engine  # noqa: E402
from bench_engine import fmt  # noqa: E402

MODES = {
    "torch-fp32": ("torch", "fp32"),
    "torch-bf16": ("torch", "bf16"),
    "torch-int8": ("torch", "int8"),
    "onnx-fp32": ("onnx", "fp32"),
    "onnx-int8": ("onnx", "int8"),
    "torch-fp16": ("torch", "fp16"),  # CUDA only (bench/gpu.sh)
}
CPU_MODES = [m for m in MODES if m != "torch-fp16"]


def prepare(model: Path, modes: list[str]) -> dict[str, str]:
    """The model folder of each mode: the checkpoint, or its ONNX export (made once)."""
    if not (model / "model.pt").exists():
        from emotion_app.tools.random_checkpoint import build_random_checkpoint

        build_random_checkpoint(model, "plus_large", training_state=True)
    folders = {m: str(model) for m in modes}
    for mode, suffix, extra in (("onnx-fp32", "_onnx", []), ("onnx-int8", "_onnx_int8", ["--int8"])):
        if mode in modes:
            onnx_dir = model.parent / f"{model.name}{suffix}"
            if not (onnx_dir / "model.onnx").exists():
                from emotion_app.cli.main import main as cli

                assert cli(["export-onnx", str(onnx_dir), "--model", str(model), *extra]) == 0
            folders[mode] = str(onnx_dir)
    return folders


def run_mode(name: str, folder: str, data: Path, recording: Path | None) -> dict:
    backend, dtype = MODES[name]
    args = SimpleNamespace(model=folder, device="cpu", dtype=dtype, backend=backend)
    out = {"cold": bench_engine.spawn("ours", "cold", args), "steady": bench_engine.spawn("ours", "steady", args)}
    out["batch"] = bench_batch.spawn("ours", "batch", str(data), args)
    if recording is not None:
        out["recording"] = bench_batch.spawn("ours", "recording", str(recording), args)
    return out


def run_funasr(model: str, data: Path) -> dict:
    args = SimpleNamespace(model=model, device="cpu", dtype="fp32", backend="torch")
    return {
        "cold": bench_engine.spawn("funasr", "cold", args),
        "steady": bench_engine.spawn("funasr", "steady", args),
        "batch": bench_batch.spawn("funasr", "batch", str(data), args),
    }


def table(results: dict[str, dict], clips: int, minutes: float) -> None:
    names = list(results)
    print("| scenario | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")

    def row(label, get):
        print(f"| {label} | " + " | ".join(get(results[n]) for n in names) + " |")

    row("import to first 10 s result", lambda r: fmt(r["cold"].get("cold_total_s")))
    row("process start to exit, one 10 s clip", lambda r: fmt(r["cold"].get("process_wall_s")))
    for s in (3, 10, 30):
        row(f"steady, {s} s clip", lambda r, s=s: fmt(r["steady"].get(f"steady_{s}s")))
    row(f"batch of {clips} clips: x real time", lambda r: f"{r['batch'].get('x_real_time', 0):.1f}x")
    row(f"batch of {clips} clips: wall time", lambda r: fmt(r["batch"].get("wall_s")))
    if minutes:

        def rec(r):
            x = r.get("recording")
            if not x or "error" in x:
                return "-" if not x else f"error: {x['error']}"
            return f"{x['wall_s']:.0f} s ({x['audio_s'] / x['wall_s']:.1f}x real time)"

        row(f"{minutes:g}-minute recording, VAD", rec)
    row("peak RSS, cold start + 10 s clip", lambda r: fmt(r["cold"].get("peak_rss_mb"), "MB"))
    row("peak RSS, batch", lambda r: fmt(r["batch"].get("peak_rss_mb"), "MB"))
    if minutes:
        row("peak RSS, recording", lambda r: fmt((r.get("recording") or {}).get("peak_rss_mb"), "MB"))
    errors = {f"{n} {k}": v["error"] for n in names for k, v in results[n].items() if isinstance(v, dict) and "error" in v}
    if errors:
        print("\nErrors:", errors)


def profile(model: str, dtype: str, rows: int = 12) -> None:
    """Where the time of one steady 10 s clip goes (torch profiler, self CPU time per op)."""
    import torch

    from emotion_app import Engine

    engine = Engine(model=model, device="cpu", dtype=dtype)
    x = bench_engine.clip(10.0, seed=10)
    engine.predict(x, sample_rate=16000)  # warm-up
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        engine.predict(x, sample_rate=16000)
    print(f"\nProfile of a 10 s clip, torch {dtype}:\n")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / "checkpoints" / "plus_large_random"))
    parser.add_argument("--modes", default=",".join(CPU_MODES))
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--recording-minutes", type=float, default=60.0)
    parser.add_argument("--no-funasr", action="store_true")
    parser.add_argument("--profile", metavar="DTYPE", help="only profile a steady 10 s clip in this torch dtype")
    args = parser.parse_args()
    if args.profile:
        prepare(Path(args.model), [])
        profile(args.model, args.profile)
        return
    modes = [m for m in args.modes.split(",") if m]
    folders = prepare(Path(args.model), modes)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench_fast_") as tmp:
        data = Path(tmp)
        bench_batch.write_clips(data, args.clips)
        minutes = args.recording_minutes
        recording = bench_batch.write_recording(data / "rec.flac", minutes) if minutes else None
        for name in modes:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results[name] = run_mode(name, folders[name], data, recording)
        if not args.no_funasr:
            print("running FunASR ...", file=sys.stderr, flush=True)
            results["FunASR 1.4.16"] = run_funasr(args.model, data)
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; model {args.model}\n")
    table(results, args.clips, minutes)


if __name__ == "__main__":
    main()
