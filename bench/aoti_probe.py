"""AOTInductor probe (issue 30, item 1): is an ahead-of-time compiled package of the model faster
than the eager graph on the CPU, and does it start fast?

    python bench/aoti_probe.py build --dtype bf16 --variant VARIANT [--preset plus_large] [--work /tmp/aoti]
    python bench/aoti_probe.py time  --dtype bf16 --variants plain,frozen,upper,upper_frozen [--pairs 9] [--graph]
    python bench/aoti_probe.py start --dtype bf16 --mode eager|VARIANT

`build` writes the random checkpoint (`build_random_checkpoint(..., seed=5)`, as the test fixture)
once under WORK, loads it with the project's loader (torch_backend.load_model) in DTYPE (bf16: the
weights cast to bf16, as TorchModel does), wraps it in the ONNX export's tensorised graph
(onnx_export.ExportGraph, with the casts bf16 needs and a channels-last extractor), exports it with
dynamic batch and length (torch.export) and compiles it into WORK/PRESET_DTYPE_VARIANT.pt2
(aoti_compile_and_package), printing the export and compile times. Variants: `plain` (the whole
graph, waveform in), `frozen` (the same with inductor's freezing: weights prepacked for oneDNN,
linear + GELU / + residual fused), `upper` and `upper_frozen` (the graph above the conv extractor,
which stays eager: features in).

`time` (a fresh process) loads the packages with their C++ loader, times their first call, then
interleaves eager and package calls, the order rotated each round, on a 10 s clip, a 3 s clip and a
padded batch of a 10 s and a 6 s clip (one package for every shape: no recompilation), and reports
min / median per call and the parity of the utterance and frame probabilities against the eager
graph in fp32 and in DTYPE. `start` is one process from start to two results (a 4 s and a 10 s
clip), torch's import included. Inductor's caches go to $TORCHINDUCTOR_CACHE_DIR (default here
/tmp/aoti_cache), never into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

T_START = time.perf_counter()  # `start` counts from here: torch's import included

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", "/tmp/aoti_cache")
os.environ.setdefault("EMOTION_APP_CACHE", "/tmp/aoti/emotion_cache")  # converted weights

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from emotion_app.model.graph import layer_norm_fp32  # noqa: E402
from emotion_app.model.torch_backend import load_model  # noqa: E402
from emotion_app.tools.onnx_export import ExportGraph, frame_counts, masked_normalize  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
SR = 16000


class TypedGraph(ExportGraph):
    """ExportGraph in the model's dtype: the waveform normalised in fp32 and cast before the convs
    (as Emotion2vec.extract), the attention bias in the model's dtype (as attention_bias), the mean
    and the head in fp32 (as classify). In fp32 every cast is a no-op."""

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor):
        cfg = self.model.cfg
        dtype = self.model.extra_tokens.dtype
        samples = (torch.arange(waveform.shape[1], device=waveform.device)[None, :] < lengths[:, None]).float()
        x = waveform * samples
        if cfg.normalize:
            x = masked_normalize(x, samples, lengths.clamp_min(1)[:, None].float())
        return self.upper(self.conv_features(x.to(dtype), lengths), frame_counts(lengths, cfg.feature_layers))

    def upper(self, x: torch.Tensor, frames: torch.Tensor):
        """Everything above the conv extractor (Emotion2vec.run_features): (B, T, C) features and
        (B,) real frames -> (utterance probs, frame probs, mean, frames)."""
        m, cfg = self.model, self.model.cfg
        dtype = m.extra_tokens.dtype
        e = cfg.num_extra_tokens
        x = m.feature_proj(layer_norm_fp32(x, m.feature_norm, m.feature_proj.in_features))
        mask = torch.arange(x.shape[1], device=x.device)[None, :] < frames[:, None]
        pad = ~mask
        x = x + m.pos_conv(x, pad)
        x = torch.cat([m.extra_tokens.expand(x.shape[0], -1, -1), x], dim=1)
        x = m.prenet_norm(x)
        keys = F.pad(pad, (e, 0)).unsqueeze(1).unsqueeze(1)
        neg = torch.zeros(keys.shape, device=x.device).masked_fill(keys, float("-inf"))
        for i, blk in enumerate([*m.prenet, *m.blocks]):
            if i == 0 or cfg.alibi_scale_per_layer:
                bias = (self.alibi(mask.shape[1], i) + neg if cfg.use_alibi else neg).to(dtype)
            x = blk(x, bias)
        x = x[:, e:].float()
        weights = mask.unsqueeze(-1).float()
        mean = (x * weights).sum(1) / frames.clamp_min(1)[:, None].float()
        utterance = torch.softmax(F.linear(mean, self.head_weight, self.head_bias), -1)
        frame = torch.softmax(F.linear(x, self.head_weight, self.head_bias), -1)
        return utterance, frame, mean, frames

    def conv_features(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, T, C) channels-last, each conv a few GEMMs over strided views (as the eager
        FeatureExtractor._run, batched): F.conv1d in (B, C, T) cost 2.4x the eager model in bf16,
        most of it in the transposes around each LayerNorm. The GroupNorm extractor: ExportGraph's."""
        fe = self.model.features
        if not fe.layer_norm:
            return super().conv_features(x, lengths)
        x = x.unsqueeze(-1)  # (B, N, 1)
        for conv, norm in zip(fe.convs, fe.norms, strict=True):
            x = F.gelu(layer_norm_fp32(batched_strided_conv(x, conv.weight, conv.stride[0]), norm, conv.out_channels))
        return x


def batched_strided_conv(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """convs.strided_conv without its loop over the batch: (B, N, Cin) -> (B, T, Cout). The taps'
    strided views come from `unfold` (no copy), whose frame count export derives itself (slicing
    `x[:, j : j + stride * (T - 1) + 1 : stride]` raised a guard it could not prove), and each tap
    is a `bmm` (matmul's fold of (B, T) into rows raised another, on the views' strides)."""
    c_out, c_in, k = weight.shape
    if c_in == 1:  # one small im2col GEMM
        return torch.bmm(x[:, :, 0].unfold(1, k, stride), weight.reshape(c_out, k).T.unsqueeze(0).expand(x.shape[0], -1, -1))
    taps = x.unfold(1, k, stride)  # (B, T, Cin, k)
    out = None
    for j in range(k):
        w = weight[:, :, j].T.unsqueeze(0).expand(x.shape[0], -1, -1)  # (B, Cin, Cout)
        out = torch.bmm(taps[..., j], w) if out is None else torch.baddbmm(out, taps[..., j], w)
    return out


class UpperGraph(torch.nn.Module):
    """TypedGraph.upper as a module's forward: the package of the `upper` variants, fed by the eager
    extractor (Emotion2vec.extract: strided GEMMs over the unbatched items, tiles of 5 s)."""

    def __init__(self, graph: TypedGraph):
        super().__init__()
        self.typed = graph  # not `graph`: the exported GraphModule has its own

    def forward(self, features: torch.Tensor, frames: torch.Tensor):
        return self.typed.upper(features, frames)


def checkpoint(work: Path, preset: str) -> Path:
    model_dir = work / f"{preset}_model"
    if not (model_dir / "model.pt").exists():
        from emotion_app.tools.random_checkpoint import build_random_checkpoint

        build_random_checkpoint(model_dir, preset, seed=5)
    return model_dir


def load(model_dir: Path, dtype: str):
    model, tokens = load_model(model_dir, torch.device("cpu"), DTYPES[dtype])
    keep = [i for i, t in enumerate(tokens) if not t.startswith("unuse")]
    return model, keep


VARIANTS = ("plain", "frozen", "upper", "upper_frozen")  # the whole graph or above the extractor; frozen or not


def package_path(args, variant: str) -> Path:
    return Path(args.work) / f"{args.preset}_{args.dtype}_{variant}.pt2"


def clip(seconds: float, seed: int) -> torch.Tensor:
    return 0.1 * torch.randn(int(seconds * SR), generator=torch.Generator().manual_seed(seed))


def batch(clips: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(c) for c in clips])
    wav = torch.zeros(len(clips), int(lengths.max()))
    for i, c in enumerate(clips):
        wav[i, : len(c)] = c
    return wav, lengths


def build(args) -> None:
    from torch.export import Dim

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model_dir = checkpoint(work, args.preset)
    model, keep = load(model_dir, args.dtype)
    graph = TypedGraph(model, keep).eval()
    inputs = batch([clip(4, 1), clip(2.5, 2)])  # padded: the mask path is what gets exported
    b = Dim("batch", min=1, max=64)
    # two frames at least: export specialises a size of 1 (one frame would need the eager graph)
    n = Dim("samples", min=model.cfg.min_samples() + model.cfg.frame_stride, max=SR * 60)
    shapes = ({0: b, 1: n}, {0: b})
    if args.variant.startswith("upper"):
        with torch.inference_mode():
            inputs = tuple(t.clone() for t in model.extract(*inputs))
        graph = UpperGraph(graph).eval()
        shapes = ({0: b, 1: Dim("frames", min=2, max=50 * 60)}, {0: b})
    t0 = time.perf_counter()
    with torch.inference_mode():
        eager = graph(*inputs)
    with torch.no_grad():
        ep = torch.export.export(graph, inputs, dynamic_shapes=shapes, strict=False)
    t_export = time.perf_counter() - t0
    print(f"export: {t_export:.1f} s", flush=True)
    configs = {"max_autotune": False}
    if args.variant.endswith("frozen"):
        configs.update({"freezing": True, "cpp.weight_prepack": True})
    t0 = time.perf_counter()
    with torch.no_grad():  # inductor freezes the weights only with grad off
        out_path = str(package_path(args, args.variant))
        path = torch._inductor.aoti_compile_and_package(ep, package_path=out_path, inductor_configs=configs)
    t_compile = time.perf_counter() - t0
    print(f"compile: {t_compile:.1f} s -> {path} ({Path(path).stat().st_size / 1e6:.0f} MB)", flush=True)
    compiled = torch._inductor.aoti_load_package(path)
    with torch.inference_mode():
        out = compiled(*inputs)
    dp = max(float((a - b).abs().max()) for a, b in zip(out[:2], eager[:2], strict=True))
    print(json.dumps({"export_s": t_export, "compile_s": t_compile, "configs": configs, "dp_vs_graph": dp}))


def eager_probs(model, keep, wav, lengths):
    out = model(wav, lengths)
    return torch.softmax(out.utterance_logits, -1)[:, keep], torch.softmax(out.frame_logits, -1)[..., keep]


def timed(fn, *a):
    t0 = time.perf_counter()
    out = fn(*a)
    return time.perf_counter() - t0, out


def package_loader(path: Path, model=None):
    """The package's C++ loader, as torch._inductor.package.load_package calls it, without that
    module's Python (importing it and its first call cost 2.3 s on the tiny model, the loader 3 ms).
    With `model`: an `upper` package, fed by the model's eager extractor."""
    loader = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1)
    if model is not None:
        return lambda wav, lengths: loader.run(list(model.extract(wav, lengths)))
    return lambda wav, lengths: loader.run([wav, lengths])


def time_package(args) -> None:
    torch.set_num_threads(args.threads)
    model_dir = checkpoint(Path(args.work), args.preset)
    report = {"threads": args.threads}
    contenders = {}
    for variant in args.variants.split(","):
        if not variant.startswith("upper"):
            path = package_path(args, variant)
            report[f"load_s_{variant}"], contenders[f"aoti_{variant}"] = timed(package_loader, path)
    cases = {
        "10s": batch([clip(10, 3)]),
        "3s": batch([clip(3, 4)]),
        "10s+6s": batch([clip(10, 5), clip(6, 6)]),
    }
    report["eager_load_s"], (model, keep) = timed(load, model_dir, args.dtype)
    for variant in args.variants.split(","):
        if variant.startswith("upper"):
            path = package_path(args, variant)
            report[f"load_s_{variant}"], contenders[f"aoti_{variant}"] = timed(package_loader, path, model)
    with torch.inference_mode():
        for name, fn in contenders.items():
            report[f"first_call_s_{name}"], _ = timed(fn, *cases["10s"])
        report["first_call_s_eager"], _ = timed(eager_probs, model, keep, *cases["10s"])
        ref32, _ = load(model_dir, "fp32")
        for name, (wav, lengths) in cases.items():
            for variant, fn in contenders.items():
                out = fn(wav, lengths)
                frames = out[3].tolist()
                for ref_name, ref in (("fp32", ref32), (args.dtype, model)):
                    u, f = eager_probs(ref, keep, wav, lengths)
                    du = float((out[0] - u).abs().max())
                    df = max(float((out[1][i, :t] - f[i, :t]).abs().max()) for i, t in enumerate(frames))
                    report[f"dp_{variant}_{name}_vs_eager_{ref_name}"] = [round(du, 6), round(df, 6)]
        del ref32
        calls = {"eager": lambda w, n: eager_probs(model, keep, w, n), **contenders}
        if args.graph:  # the tensorised graph run eagerly: what the conv1d extractor etc. cost alone
            graph = TypedGraph(model, keep).eval()
            calls["graph_eager"] = graph
        for name, (wav, lengths) in cases.items():
            rounds = 3 if name == "10s+6s" else args.pairs
            times = {k: [] for k in calls}
            for fn in calls.values():  # warm each
                fn(wav, lengths)
            order = list(calls)
            for i in range(rounds):  # interleaved, the order rotated each round
                for k in order[i % len(order) :] + order[: i % len(order)]:
                    times[k].append(timed(calls[k], wav, lengths)[0])
            row = {}
            for k, t in times.items():
                row[k] = [round(min(t), 4), round(statistics.median(t), 4)]
                if k != "eager":
                    row[f"{k}/eager"] = [
                        round(min(t) / min(times["eager"]), 3),
                        round(statistics.median(t) / statistics.median(times["eager"]), 3),
                    ]
            report[name] = row
            print(name, json.dumps(row), flush=True)
    print(json.dumps(report, indent=1))


def start(args) -> None:
    """Process start to two results (a 4 s and a 10 s clip), one mode per process, as bench_start."""
    t0 = T_START
    torch.set_num_threads(args.threads)
    if args.mode == "eager" or args.mode.startswith("upper"):
        model, keep = load(checkpoint(Path(args.work), args.preset), args.dtype)
        fn = lambda w, n: eager_probs(model, keep, w, n)  # noqa: E731
    if args.mode != "eager":
        fn = package_loader(package_path(args, args.mode), model if args.mode.startswith("upper") else None)
    t_load = time.perf_counter() - t0
    with torch.inference_mode():
        for seconds in (4, 10):
            fn(*batch([clip(seconds, seconds)]))
    total = time.perf_counter() - t0
    print(json.dumps({"mode": args.mode, "dtype": args.dtype, "import_and_load_s": t_load, "two_clips_s": total}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["build", "time", "start"])
    parser.add_argument("--dtype", choices=list(DTYPES), default="bf16")
    parser.add_argument("--preset", default="plus_large")
    parser.add_argument("--variant", choices=VARIANTS, default="plain", help="build: what to package (frozen: weights prepacked)")
    parser.add_argument("--work", default="/tmp/aoti")
    parser.add_argument("--pairs", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", default="plain", help=f"time: packages to load, of {','.join(VARIANTS)}")
    parser.add_argument("--graph", action="store_true", help="time: the tensorised graph eagerly too")
    parser.add_argument("--mode", default="eager", choices=["eager", *VARIANTS], help="start: eager or a package")
    args = parser.parse_args()
    {"build": build, "time": time_package, "start": start}[args.what](args)


if __name__ == "__main__":
    main()
