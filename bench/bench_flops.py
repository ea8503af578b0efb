"""The physical limit of one 10 s clip on this CPU: the model's FLOPs against the machine's measured
matmul rates in fp32, bf16 and int8, beside the measured time of each mode.

    python bench/bench_flops.py [--model DIR] [--seconds 10]

FLOPs: torch's FlopCounterMode over one fp32 forward pass (every matmul, linear, conv and the
attention products, 2 FLOPs per multiply-add), split into the transformer's linear layers, the conv
feature extractor and positional convs, and attention. Rates: the median of 7 runs of the largest
linear layer's product at the clip's size ((500 x 1024) x (1024 x 4096)) in fp32 and bf16 (torch
matmul), and in int8 (torch's dynamic int8 linear, as --dtype int8 runs it, activations quantized per
call). The bound for a mode = each part's FLOPs at the rate of the dtype it runs in (int8 runs its
convs in fp32). Measured: the steady 10 s clip through Engine.predict (median of 3). Prints markdown.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def median_s(fn, runs: int = 7) -> float:
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def model_flops(model, samples: int) -> dict[str, float]:
    """FLOPs of one forward pass by part: linear (transformer + projection), conv, attention."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    wav = torch.zeros(1, samples)
    wav.normal_(0, 0.1)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(wav, torch.tensor([samples]))
    by_op = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    attention = sum(n for op, n in by_op.items() if "attention" in op or "bmm" in op or "baddbmm" in op)
    conv = sum(n for op, n in by_op.items() if "conv" in op)
    total = sum(by_op.values())
    # the extractor's strided convs run as matmuls (convs.strided_conv): count them as conv
    extractor = extractor_flops(model, samples)
    linear = total - attention - conv - extractor
    if attention == 0:  # the counter has no formula for the CPU's SDPA kernel: Q K^T and A V by hand
        attention = attention_flops(model, samples)
        total += attention
    return {"linear": linear, "conv": conv + extractor, "attention": attention, "total": total}


def attention_flops(model, samples: int) -> float:
    """Q K^T and A V of every block: 2 products of (T x D) by (D x T) work, 2 FLOPs per multiply-add."""
    cfg, n = model.cfg, samples
    for _, kernel, stride in cfg.feature_layers:
        n = (n - kernel) // stride + 1
    return (cfg.depth + cfg.prenet_depth) * 2 * 2.0 * n * n * cfg.embed_dim


def extractor_flops(model, samples: int) -> float:
    n, flops, in_dim = samples, 0.0, 1
    for dim, kernel, stride in model.cfg.feature_layers:
        n = (n - kernel) // stride + 1
        flops += 2.0 * n * dim * in_dim * kernel
        in_dim = dim
    return flops


def rates(t: int = 500, d: int = 1024, h: int = 4096) -> dict[str, float]:
    """FLOP/s of a (t x d) x (d x h) product in fp32, bf16 and int8 (dynamic, as --dtype int8 runs)."""
    import torch

    from emotion_app.model.quantize import quantize_linears

    x, lin = torch.randn(t, d), torch.nn.Linear(d, h)
    flops = 2.0 * t * d * h
    out = {}
    with torch.inference_mode():
        out["fp32"] = flops / median_s(lambda: lin(x))
        xb, lb = x.bfloat16(), torch.nn.Linear(d, h).bfloat16()
        out["bf16"] = flops / median_s(lambda: lb(xb))
        q = quantize_linears(torch.nn.Sequential(torch.nn.Linear(d, h)))
        out["int8"] = flops / median_s(lambda: q(x))
    return out


def measured(model_dir: str, dtype: str, seconds: float) -> float:
    from audio_files import speechlike

    from emotion_app import Engine

    engine = Engine(model=model_dir, device="cpu", dtype=dtype)
    x = speechlike(seconds, seed=10)
    return statistics.median([_timed(engine, x) for _ in range(4)][1:])


def _timed(engine, x: np.ndarray) -> float:
    t = time.perf_counter()
    engine.predict(x, sample_rate=16000)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "checkpoints" / "plus_large_random"))
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    import torch

    from emotion_app.model.torch_backend import load_model

    model, _ = load_model(Path(args.model), torch.device("cpu"), torch.float32)
    f = model_flops(model, int(args.seconds * 16000))
    del model
    r = rates()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; a {args.seconds:g} s clip\n")  # fmt: skip
    print("| part | GFLOP |\n|---|---|")
    for k in ("linear", "conv", "attention", "total"):
        print(f"| {k} | {f[k] / 1e9:.1f} |")
    print("\n| matmul (500x1024)x(1024x4096) | GFLOP/s |\n|---|---|")
    for k, v in r.items():
        print(f"| {k} | {v / 1e9:.0f} |")
    print("\n| mode | bound: FLOPs at those rates | measured (Engine.predict) | share of the bound |\n|---|---|---|---|")
    for mode, lin, rest in (("fp32", "fp32", "fp32"), ("bf16", "bf16", "bf16"), ("int8", "int8", "fp32")):
        bound = f["linear"] / r[lin] + (f["conv"] + f["attention"]) / r[rest]
        took = measured(args.model, mode, args.seconds)
        print(f"| {mode} | {bound * 1000:.0f} ms | {took * 1000:.0f} ms | {bound / took:.0%} |", flush=True)


if __name__ == "__main__":
    main()
