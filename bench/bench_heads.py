"""Your own labels (issue 13): embedding extraction speed, head training time, cross-validated metrics.

    python bench/bench_heads.py [--model DIR] [--clips 500] [--device cpu|cuda] [--dtype auto] [--batch-size 0]

DIR defaults to checkpoints/plus_large_random (made first if missing, as with `python -m emotion_app
make-checkpoint DIR --preset plus_large`: random weights in the exact plus_large layout). The set is
written into a temporary folder: `--clips` espeak-ng sentences of 1-4 s as a CSV with speakers,
label = speaking rate (slow 90, mid 170, fast 260 words per minute), speaker = one of 12 voices
(4 espeak voices x 3 pitches). Then, in this process:
- extraction: `evaluate` of the 9-class head with an empty embedding cache (files per second and
  seconds of audio per second), then again with the cache filled by the first run;
- training: `train-head` logistic regression and MLP on the cached features: 5-fold
  speaker-grouped cross-validation, then the fit on all files (seconds, and WA/UA/macro F1).
Prints a markdown table for docs/benchmarks.md. On random weights the metrics show the pipeline
works (speaking rate is learnable from any features); the real model's come with `--model
iic/emotion2vec_plus_large`.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

WORDS = (
    "morning evening station window garden letter market river coffee ticket doctor teacher "
    "yellow quiet early later often never always maybe really simply slowly finally tomorrow"
).split()
RATES = {"slow": 90, "mid": 170, "fast": 260}
VOICES = [(v, p) for v in ("en", "en-us", "en-gb", "en-gb-x-rp") for p in (30, 50, 70)]


def write_set(folder: Path, n: int) -> Path:
    """`n` clips in folder/<label>/, and set.csv (path,label,speaker) beside them."""
    import subprocess

    rng = np.random.default_rng(0)
    rows = ["path,label,speaker"]
    labels = list(RATES)
    for i in range(n):
        label = labels[i % len(labels)]
        voice, pitch = VOICES[rng.integers(len(VOICES))]
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 8))))
        path = folder / label / f"{i:04d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        cmd = ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(RATES[label]), "-w", str(path), text]
        subprocess.run(cmd, check=True)
        rows.append(f"{label}/{path.name},{label},{voice}-{pitch}")
    table = folder / "set.csv"
    table.write_text("\n".join(rows) + "\n")
    return table


def audio_seconds(paths) -> float:
    import soundfile as sf

    return sum(sf.info(str(p)).duration for p in paths)


def ensure_model(model: str) -> None:
    """A local folder without model.pt gets the random plus_large checkpoint; a hub id is left to the engine."""
    path = Path(model)
    is_hub_id = not path.exists() and model.count("/") == 1 and not model.startswith((".", "/"))
    if not is_hub_id and not (path / "model.pt").exists():
        from emotion_app.tools.random_checkpoint import build_random_checkpoint

        build_random_checkpoint(path, "plus_large")


def table(n: int, seconds: float, extract: tuple, cached: tuple, runs: dict) -> list[str]:
    """The markdown rows: extraction (empty cache, filled cache) and each head's training."""
    (cold, t_cold), (warm, t_warm) = extract, cached
    rows = ["| step | time | rate | result |", "|---|---|---|---|"]
    rate = f"{n / t_cold:.1f} files/s, {seconds / t_cold:.1f}x real time"
    rows.append(
        f"| embeddings, empty cache ({cold['embeddings']['computed']} files) | {t_cold:.1f} s | {rate} "
        f"| 9-class head: WA {cold['wa']:.3f}, UA {cold['ua']:.3f} |"
    )
    rows.append(
        f"| embeddings, cache filled ({warm['embeddings']['cached']} files) | {t_warm:.2f} s | {n / t_warm:.0f} files/s | |"
    )
    for kind, (m, wall) in runs.items():
        cv = m["cv"]
        names = (("WA", "wa"), ("UA", "ua"), ("F1", "macro_f1"))
        scores = ", ".join(f"{name} {cv[k]['mean']:.3f} ± {cv[k]['std']:.3f}" for name, k in names)
        step = f"train-head {kind}: {cv['folds']}-fold {cv['grouping']} CV + fit on all"
        rows.append(f"| {step} | {m['seconds']['training']:.2f} s (whole run {wall:.2f} s) | | {scores} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / "checkpoints" / "plus_large_random"))
    parser.add_argument("--clips", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--batch-size", type=int, default=0)
    args = parser.parse_args()
    ensure_model(args.model)

    from emotion_app import Engine
    from emotion_app.heads.cache import EmbeddingCache
    from emotion_app.heads.dataset import read_dataset
    from emotion_app.heads.evaluate import evaluate_dataset
    from emotion_app.heads.train import TrainOptions, train_head

    with tempfile.TemporaryDirectory(prefix="bench_heads_") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        data = read_dataset(write_set(tmp / "set", args.clips))
        made = time.perf_counter() - t
        seconds = audio_seconds(i.path for i in data.items)
        engine = Engine(model=args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size)
        cache = EmbeddingCache.for_engine(engine, root=tmp / "cache")  # empty: the first pass measures extraction
        passes = []
        for _ in range(2):
            t = time.perf_counter()
            report = evaluate_dataset(engine, data, label_map="slow=sad,mid=neutral,fast=happy", cache=cache).report
            passes.append((report, time.perf_counter() - t))
        runs = {}
        for kind in ("logreg", "mlp"):
            t = time.perf_counter()
            metrics = train_head(engine, data, name=kind, options=TrainOptions(kind=kind), cache=cache).metrics
            runs[kind] = (metrics, time.perf_counter() - t)

    n = len(data.items)
    print(
        f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, device {engine.device} ({engine.dtype})"
    )
    print(f"Model: {args.model} ({engine.embed_dim}-d features)")
    print(
        f"Set: {n} espeak-ng clips, {seconds:.0f} s of audio ({seconds / n:.2f} s a clip), 3 labels, "
        f"{len(data.speakers)} speakers; written in {made:.1f} s\n"
    )
    print("\n".join(table(n, seconds, passes[0], passes[1], runs)))


if __name__ == "__main__":
    main()
