"""What an output folder's files cost to make, beside the model: scores.png, timeline.png and
result.json's text, for frame results of several lengths.

    python bench/bench_charts.py [--seconds 3,60,600] [--calls 9]

Each row is the median of `--calls` calls after one that fills the texts' cache (charts_png renders
each text once), on seeded random frame probabilities, one thread of this process. result.json is
written both ways: `outputs.result_text` (the one writer) and `json.dumps(indent=2)` (before it).
The end-to-end effect, seen by a client, is `bench_serve.py` on this tree against an older one
(docs/benchmarks.md says how). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def median_ms(call, calls: int) -> float:
    call()  # the texts' cache, the first allocations
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def frames_result(probs: np.ndarray, labels) -> dict:
    """A result.json-shaped dict with one record per frame, as a frame result has them."""

    def scores(p):
        return {k: round(float(v), 3) for k, v in zip(labels, p)}

    frames = [
        {"start": round(i * 0.02, 2), "end": round((i + 1) * 0.02, 2), "emotion": labels[int(p.argmax())],
         "confidence": round(float(p.max()), 4), "scores": scores(p), "smoothed_emotion": labels[int(p.argmax())],
         "smoothed_confidence": round(float(p.max()), 4), "smoothed_scores": scores(p)}
        for i, p in enumerate(probs)
    ]  # fmt: skip
    return {"schema_version": 1, "emotion": labels[0], "scores": scores(probs.mean(0)), "frames": frames}


def row(seconds: float, rng: np.random.Generator, calls: int) -> list[float]:
    """The four times (ms) for a frame result of `seconds`."""
    from emotion_app.analysis import charts_png
    from emotion_app.constants import LABEL_KEYS
    from emotion_app.outputs import result_text

    frames = int(seconds * 50)
    probs = np.cumsum(rng.dirichlet(np.full(9, 0.3), size=frames), 0)  # a smooth-ish timeline: 25-frame running means
    probs = (probs - np.vstack([np.zeros((25, 9)), probs[:-25]])) / np.minimum(np.arange(1, frames + 1), 25)[:, None]
    times, dominant = np.arange(frames) * 0.02, probs.argmax(1)
    utterance = dict(zip(LABEL_KEYS, probs.mean(0).tolist()))
    result = frames_result(probs, LABEL_KEYS)
    return [
        median_ms(lambda: charts_png.scores_png(utterance, "en"), calls),
        median_ms(lambda: charts_png.timeline_png(times, probs, LABEL_KEYS, dominant, [seconds / 3], "en"), calls),
        median_ms(lambda: result_text(result), calls),
        median_ms(lambda: json.dumps(result, ensure_ascii=False, indent=2), calls),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", default="3,60,600", help="frame results of these lengths (50 frames a second)")
    p.add_argument("--calls", type=int, default=9)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    print("| result | scores.png | timeline.png | result.json (result_text) | result.json (indent=2, before) |")
    print("|---|---|---|---|---|")
    for seconds in (float(s) for s in args.seconds.split(",")):
        times = row(seconds, rng, args.calls)
        print(f"| {seconds:g} s frames | " + " | ".join(f"{ms:.1f} ms" for ms in times) + " |")


if __name__ == "__main__":
    main()
