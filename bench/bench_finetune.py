"""Fine-tuning (issue 28): the frozen part's caching pass, the time per epoch and the peak RSS, for
LoRA on the top 2 and 4 blocks and for --unfreeze 2, on the plus_large layout.

    python bench/bench_finetune.py [--model DIR] [--clips 200] [--epochs 2] [--device cpu|cuda] [--precision auto]

DIR defaults to checkpoints/plus_large_random (made first if missing: random weights in the exact
plus_large layout, 12 blocks). The set is `--clips` speech-like clips of 3-8 s (tests/audio_files.py
`speechlike`), two labels, 8 speakers, written as WAV with a CSV into a temporary folder. Each
configuration runs in a fresh process (its peak RSS is its own) with an empty feature cache for its
cut, so the caching pass is measured for each cut (K = 2: cut 10, K = 4: cut 8; --unfreeze 2 shares
K = 2's cut and is run after it, so its pass comes from the cache: the table says so):

- caching pass: every clip once through the frozen lower part (seconds, clips per second);
- time per epoch: the mean of the training card's per-epoch seconds over `--epochs` epochs (the
  top K blocks and the head over the cached tokens, with validation);
- peak RSS of the process (VmHWM), and on CUDA the GPU's peak memory;
- the peak RSS of each phase (load, caching pass, the probe's pass, each epoch, evaluation, merge
  and write): the peak is reset at each phase's start (`5` into /proc/self/clear_refs, Linux) and
  read at its end; the phases are the functions fine_tune calls, wrapped here.

Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

CONFIGS = {  # name -> FineTuneOptions fields; run in this order (unfreeze-2 reuses lora-2's cache)
    "lora-2": {"top": 2},
    "lora-4": {"top": 4},
    "unfreeze-2": {"unfreeze": 2},
}
LABELS = ("calm", "tense")
SPEAKERS = 8


def write_set(folder: Path, n: int) -> tuple[Path, float]:
    """`n` clips of 3-8 s in `folder` and set.csv (path,label,speaker); (the CSV, seconds of audio)."""
    import numpy as np
    from audio_files import speechlike, write_audio

    rng = np.random.default_rng(0)
    rows, seconds = ["path,label,speaker"], 0.0
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        length = float(rng.uniform(3.0, 8.0))
        write_audio(folder / f"{i:04d}.wav", speechlike(length, seed=i), 16000)
        rows.append(f"{i:04d}.wav,{LABELS[i % len(LABELS)]},s{i % SPEAKERS}")
        seconds += length
    table = folder / "set.csv"
    table.write_text("\n".join(rows) + "\n")
    return table, seconds


def ensure_model(model: str) -> None:
    """A local folder without model.pt gets the random plus_large checkpoint."""
    if not (Path(model) / "model.pt").exists():
        from emotion_app.tools.random_checkpoint import build_random_checkpoint

        build_random_checkpoint(Path(model), "plus_large")


PHASES = {  # fine_tune's steps: (module, function) -> phase name
    ("emotion_app.model.torch_backend", "load_model"): "load",
    ("emotion_app.finetune.run", "lower_features"): "caching pass",
    ("emotion_app.finetune.run", "pooled"): "probe's pass",
    ("emotion_app.finetune.run", "scores"): "evaluation",
    ("emotion_app.finetune.lora", "merge_lora"): "merge",
    ("emotion_app.finetune.run", "model_files"): "write",
    ("emotion_app.finetune.run", "write_model"): "write",
}


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def watch_phases(peaks: dict[str, float]) -> None:
    """Wrap fine_tune's steps so that each one's peak RSS lands in `peaks` (MB; several calls of a
    step: their highest; "between": the highest between steps)."""
    import importlib

    from bench_engine import peak_rss_mb

    def wrapped(f, name):
        def call(*args, **kwargs):
            peaks["between"] = max(peaks.get("between", 0.0), peak_rss_mb())  # since the last phase
            reset_peak()
            try:
                return f(*args, **kwargs)
            finally:
                peaks[name] = max(peaks.get(name, 0.0), peak_rss_mb())
                reset_peak()

        return call

    for (module, attr), name in PHASES.items():
        mod = importlib.import_module(module)
        setattr(mod, attr, wrapped(getattr(mod, attr), name))


def worker(config: str, data: str, model: str, cache: str, out: str, epochs: int, device: str, precision: str) -> dict:
    """In a fresh process: one fine-tune of `config`; its caching pass, epochs and peak memory."""
    from bench_engine import peak_rss_mb

    from emotion_app.finetune.run import FineTuneOptions, fine_tune

    opts = FineTuneOptions(epochs=epochs, patience=0, device=device, precision=precision, **CONFIGS[config])
    phases: dict[str, float] = {}
    watch_phases(phases)

    def on_epoch(record: dict) -> None:  # an epoch: from the end of the one before (or of the probe)
        phases[f"epoch {record['epoch']}"] = peak_rss_mb()
        reset_peak()

    t0 = time.perf_counter()
    run = fine_tune(data, out=out, model=model, options=opts, cache_root=Path(cache), on_epoch=on_epoch)
    wall = time.perf_counter() - t0
    card = run.card
    result = {
        "config": config, "wall_s": wall, "features_s": card["seconds"]["features"],
        "computed": card["features"]["computed"], "cached": card["features"]["cached"],
        "epoch_s": sum(r["seconds"] for r in card["curve"]) / max(len(card["curve"]), 1),
        "epochs": len(card["curve"]), "trainable": card["trained"]["trainable_parameters"],
        "train_clips": card["data"]["counts"]["train"]["clips"], "phases_mb": phases,
        "peak_rss_mb": max([peak_rss_mb(), *phases.values()]),  # the phases reset VmHWM
    }  # fmt: skip
    if device.startswith("cuda"):
        import torch

        result["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def table(runs: list[dict], clips: int) -> list[str]:
    rows = [
        "| configuration | trainable parameters | caching pass | time per epoch | peak RSS | GPU peak |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        if "error" in r:
            rows.append(f"| {r['config']} | failed: {r['error']} | | | | |")
            continue
        if r["computed"]:
            caching = f"{r['features_s']:.1f} s ({r['computed'] / r['features_s']:.1f} clips/s)"
        else:
            caching = f"from the cache ({r['cached']} clips, {r['features_s']:.1f} s)"
        gpu = f"{r['gpu_peak_mb']:.0f} MB" if "gpu_peak_mb" in r else "-"
        rows.append(
            f"| {r['config']} | {r['trainable'] / 1e6:.2f} M | {caching} | {r['epoch_s']:.1f} s ({r['train_clips']} clips) "
            f"| {r['peak_rss_mb']:.0f} MB | {gpu} |"
        )
    rows += ["", "Peak RSS by phase (MB):", ""]
    for r in runs:
        if "phases_mb" in r:
            rows.append(f"- {r['config']}: " + ", ".join(f"{k} {v:.0f}" for k, v in r["phases_mb"].items()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / "checkpoints" / "plus_large_random"))
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds one configuration may take")
    parser.add_argument("--worker", choices=list(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.worker, args.data, args.model, args.cache, args.out, args.epochs, args.device, args.precision)
        print(json.dumps(result))
        return
    ensure_model(args.model)
    with tempfile.TemporaryDirectory(prefix="bench_finetune_") as tmp:
        tmp = Path(tmp)
        data, seconds = write_set(tmp / "set", args.clips)
        runs = []
        for config in CONFIGS:
            cmd = [sys.executable, __file__, "--worker", config, "--data", str(data), "--model", args.model,
                   "--cache", str(tmp / "cache"), "--out", str(tmp / "models" / config), "--epochs", str(args.epochs),
                   "--device", args.device, "--precision", args.precision]  # fmt: skip
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=os.environ.copy())
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else
                            {"config": config, "error": (done.stderr.strip().splitlines() or ["?"])[-1]})  # fmt: skip
            except subprocess.TimeoutExpired:
                runs.append({"config": config, "error": f"over {args.timeout:.0f} s"})
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, device {args.device}")
    print(f"Model: {args.model}; precision {args.precision}; {args.epochs} epochs each")
    audio = f"{seconds / 60:.1f} min of audio, {len(LABELS)} labels, {SPEAKERS} speakers"
    print(f"Set: {args.clips} speech-like clips of 3-8 s, {audio}\n")
    print("\n".join(table(runs, args.clips)))


if __name__ == "__main__":
    main()
