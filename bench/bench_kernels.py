"""What each CPU kernel change under eager bf16 is worth: the C heap kept between calls
(model/heap.py), linear weights packed for oneDNN (model/packed.py), the positional convs over the
rows' channels-last view and the extractor's taps kept, the tokens padded to a multiple of 32 rows,
the positional convs' weights packed for oneDNN and their long items' rows padded to a multiple of
16 (graph.py), each added to the one before.

    python bench/bench_kernels.py [--model DIR] [--dtype bf16] [--threads 2] [--rounds 3] [--calls 9]
    python bench/bench_kernels.py --attention-rows 150-167,176,192 [--dtype bf16] [--threads 2]
    python bench/bench_kernels.py --conv-rows 40 [--threads 2]

Each configuration runs in a fresh process (the heap's thresholds are process-wide), the
configurations in turn, `--rounds` times; each process times, after two warm-up calls, `--calls`
calls of: a 10 s clip (`run_chunks`), a 3 s clip (the live window, scored whole), and 8 live
streams' next hop (`run_windows`: the new 0.5 s of conv features, the 3 s window's transformer;
what the live meter's batches cost, per window). Medians over all rounds; the outputs of every
configuration are compared with the first's (max |dp| on the probabilities). DIR defaults to
checkpoints/plus_large_random (built if missing). Prints a markdown table for docs/benchmarks.md.

`--attention-rows` times only torch's attention kernel (`scaled_dot_product_attention` with a
(1, H, T, T) bias, as the blocks call it) for 8 items of 16 heads of 64 at each token count T:
why graph.py pads the tokens to a multiple of 32 in bf16 (medians of 15 calls).

`--conv-rows N` times only one positional conv of plus_large (1024 channels, kernel 19, 16 groups,
bf16, convs.conv_rows) at N row counts drawn from 41-1600 (seeded), for 1 and 8 items: with its
weight plain, packed (model/packed.py), and packed with the rows padded as graph.py pads them
(medians of 7 calls).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = {  # name: the changes switched off in that process
    "none of them": ["heap", "packed", "conv", "align", "convpack", "convpad"],
    "+ heap kept": ["packed", "conv", "align", "convpack", "convpad"],
    "+ packed linears": ["conv", "align", "convpack", "convpad"],
    "+ channels-last convs, taps kept": ["align", "convpack", "convpad"],
    "+ tokens padded to 32 rows": ["convpack", "convpad"],
    "+ positional convs' weights packed": ["convpad"],
    "+ their long items' rows padded to 16 (main)": [],
}

WORKER = r"""
import json, sys, time
import numpy as np
off = set(sys.argv[4].split(",")) - {""}
from emotion_app.model import graph, torch_backend
if "heap" in off:
    torch_backend.keep_freed_memory = lambda: False
if "packed" in off:
    import emotion_app.model.packed as packed
    packed.pack_linears = lambda model: 0
if "conv" in off:
    def conv1d_rows(conv, x):
        return conv(x.transpose(1, 2)).transpose(1, 2)
    def fresh_taps(self):
        return [c.weight.permute(2, 1, 0).contiguous() for c in self.convs]
    graph.conv_rows = conv1d_rows
    graph.FeatureExtractor._taps = fresh_taps
if "align" in off:
    graph._aligned_rows = lambda x: x.shape[1]
if "convpack" in off:
    import emotion_app.model.packed as packed
    packed._conv_packing_works = lambda: False
if "convpad" in off:
    from emotion_app.model import convs
    convs.CONV_ALIGN_FROM = 1 << 30
from emotion_app.model.sliding import FeatureCache, StreamWindow
model = torch_backend.TorchModel(sys.argv[1], "cpu", sys.argv[2], threads=int(sys.argv[3]))
calls = int(sys.argv[5])
rng = np.random.default_rng(0)
clip10, clip3 = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (160000, 48000)]
n, hop = 48000, 8000
streams = [(0.05 * rng.standard_normal(n + (calls + 4) * hop)).astype(np.float32) for _ in range(8)]
caches = [FeatureCache() for _ in streams]
step = [0]

def windows():
    end = n + step[0] * hop
    step[0] += 1
    return model.run_windows([StreamWindow(s[end - n : end], end, c) for s, c in zip(streams, caches)])

out = {}
for name, run in (("10 s clip", lambda: model.run_chunks([clip10])), ("3 s clip", lambda: model.run_chunks([clip3])),
                  ("8 windows", windows)):
    run(); run()
    times = []
    for _ in range(calls):
        t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
    out[name] = times
out["probabilities"] = [o.probabilities.tolist() for o in model.run_chunks([clip10, clip3])]
print(json.dumps(out))
"""


def run_config(args, off: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, "-c", WORKER, str(args.model), args.dtype, str(args.threads), ",".join(off), str(args.calls)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"the worker failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def attention_rows(spec: str, dtype: str, threads: int) -> None:
    """Print the attention kernel's time at each token count of `spec` ("150-167,176")."""
    import time

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    rows = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        rows += range(int(lo), int(hi or lo) + 1)
    kind = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    print(f"\nscaled_dot_product_attention, 8 x 16 heads x 64, {dtype}, {threads} threads; medians of 15 calls\n")
    print("| tokens | ms |\n|---|---|")
    for t in rows:
        q, k, v = torch.randn(3, 8, 16, t, 64).to(kind).unbind(0)
        bias = torch.randn(1, 16, t, t).to(kind)
        times = []
        for _ in range(17):
            t0 = time.perf_counter()
            F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            times.append(time.perf_counter() - t0)
        print(f"| {t} | {statistics.median(times[2:]) * 1e3:.2f} |")


def conv_rows(count: int, threads: int) -> None:
    """Print one positional conv's time at `count` row counts: with the weight plain, packed, and
    packed with the rows padded as graph.py pads them."""
    import random
    import time

    import torch

    from emotion_app.model import convs, packed

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(1024, 1024, 19, padding=9, groups=16).to(torch.bfloat16)
    rows = sorted(random.Random(1).sample(range(41, 1601), count))
    works, pad_from = packed._conv_packing_works, convs.CONV_ALIGN_FROM
    variants = {  # name: (packed, pad from)
        "plain weight": (False, 1 << 30),
        "packed": (True, 1 << 30),
        f"packed, padded to {convs.CONV_ALIGN} past {pad_from} rows (convs.py)": (True, pad_from),
    }
    print(f"\npositional conv (1024 ch, kernel 19, 16 groups), bf16, {threads} threads; medians of 7 calls\n")
    print("| items | rows | " + " | ".join(variants) + " |\n|---|---|" + "---|" * len(variants))
    totals: dict[int, list[float]] = {}
    for items in (1, 8):
        for t in rows:
            x = torch.randn(items, t, 1024, dtype=torch.bfloat16)
            ms = []
            for pack, pad in variants.values():
                packed._conv_packing_works, convs.CONV_ALIGN_FROM = (works if pack else lambda: False), pad
                with torch.inference_mode():
                    times = []
                    for _ in range(9):
                        t0 = time.perf_counter()
                        convs.conv_rows(conv, x)
                        times.append(time.perf_counter() - t0)
                ms.append(statistics.median(times[2:]) * 1e3)
            packed._conv_packing_works, convs.CONV_ALIGN_FROM = works, pad_from
            totals[items] = [a + b for a, b in zip(totals.get(items, [0.0] * len(ms)), ms)]
            print(f"| {items} | {t} | " + " | ".join(f"{v:.2f} ms" for v in ms) + " |")
    for items, sums in totals.items():
        print(f"| {items} | all {count} | " + " | ".join(f"{v:.1f} ms" for v in sums) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=ROOT / "checkpoints" / "plus_large_random")
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=9)
    p.add_argument("--attention-rows", help="only time the attention kernel at these token counts (150-167,176)")
    p.add_argument("--conv-rows", type=int, metavar="N", help="only time a positional conv at N row counts")
    args = p.parse_args()
    if args.attention_rows:
        attention_rows(args.attention_rows, args.dtype, args.threads)
        return
    if args.conv_rows:
        conv_rows(args.conv_rows, args.threads)
        return
    if not (args.model / "model.pt").exists():
        from emotion_app.tools.random_checkpoint import build_random_checkpoint

        build_random_checkpoint(args.model, "plus_large", training_state=True)
    times: dict[str, dict[str, list[float]]] = {name: {} for name in CONFIGS}
    probs: dict[str, list] = {}
    for _ in range(args.rounds):
        for name, off in CONFIGS.items():
            out = run_config(args, off)
            probs[name] = out.pop("probabilities")
            for what, ts in out.items():
                times[name].setdefault(what, []).extend(ts)
    first = next(iter(CONFIGS))
    print(f"\n{args.model.name}, {args.dtype}, {args.threads} threads, {platform.processor() or platform.machine()}; "
          f"medians of {args.rounds} x {args.calls} calls\n")  # fmt: skip
    print("| configuration | 10 s clip | 3 s clip | 8 live windows (per window) | max \\|dp\\| against the first |")
    print("|---|---|---|---|---|")
    for name in CONFIGS:
        med = {what: statistics.median(ts) for what, ts in times[name].items()}
        dp = max(abs(a - b) for pa, pb in zip(probs[name], probs[first]) for a, b in zip(pa, pb))
        print(
            f"| {name} | {med['10 s clip'] * 1e3:.1f} ms | {med['3 s clip'] * 1e3:.1f} ms | "
            f"{med['8 windows'] * 1e3:.1f} ms ({med['8 windows'] / 8 * 1e3:.1f} ms) | {dp:.2g} |"
        )


if __name__ == "__main__":
    main()
