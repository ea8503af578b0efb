"""Export emotion2vec+ (encoder and head) to one ONNX graph that onnxruntime runs without torch.

`python -m emotion_app export-onnx OUT_DIR --model ...` writes OUT_DIR with:

- `model.onnx` (plus `model.onnx.data` when the weights pass 2 GB, the protobuf limit):
  inputs `waveform (batch, samples)` float32 at 16 kHz, zero-padded, and `lengths (batch,)` int64;
  outputs `utterance_probabilities (batch, V)`, `frame_probabilities (batch, frames, V)`,
  `embedding (batch, D)` (mean real frame feature), `num_frames (batch,)` int64 and, with
  `--frame-embeddings`, `frame_embeddings (batch, frames, D)`. Batch and length are dynamic.
- with `--int8`, `model.onnx` holds int8 weights for the linear layers (onnxruntime's dynamic
  quantizer, per output channel; the convs, attention products and the head stay fp32): a third of
  the file, a faster load, and labels.json says `"dtype": "int8"`.
- `labels.json` (the V labels in output order, model id, embed dim, sample rate, fingerprint),
  `head.npz` (the head's weight and bias, to score a mean feature with numpy) and `README.md`.

The folder format is owned by `emotion_app.model.onnx_backend`, which reads it without torch.
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..audio.vad import ONNX_NAME as VAD_ONNX
from ..audio.vad import silero_onnx_file
from ..constants import FRAME_HOP, SAMPLE_RATE, label_for_token
from ..errors import ModelLoadError
from ..model.graph import Emotion2vec, alibi_slopes, layer_norm_fp32
from ..model.onnx_backend import (
    FORMAT,
    FORMAT_VERSION,
    FRAME_EMBEDDINGS,
    HEAD_FILE,
    INPUTS,
    ONNX_DATA_FILE,
    ONNX_FILE,
    OUTPUTS,
    README_FILE,
    head_fingerprint,
)
from ..optional import ONNX_INSTALL_HINT
from .onnx_quantize import MAX_INLINE_BYTES, place, quantize_export, write_labels

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17  # LayerNormalization is a single op from opset 17
MIN_OPSET = 14  # scaled_dot_product_attention exports from opset 14
CHECK_TOLERANCE = 1e-4  # |dp| between onnxruntime and torch fp32 (measured: ~1e-6)
INT8_CHECK_TOLERANCE = 0.1  # the same for an int8 export (measured on plus_large: ~0.01; tests/test_int8.py)


def frame_counts(lengths: torch.Tensor, layers) -> torch.Tensor:
    """(B,) samples -> (B,) frames of the conv stack, as `ModelConfig.num_frames`, in tensor ops."""
    n = lengths
    for _, k, s in layers:
        n = torch.where(n >= k, torch.div((n - k).clamp_min(0), s, rounding_mode="floor") + 1, torch.zeros_like(n))
    return n


def masked_normalize(x: torch.Tensor, mask: torch.Tensor, count: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Normalise x over its last axis where mask is true (mean 0, biased variance 1); 0 elsewhere.

    x: (..., L); mask: (..., L) float 0/1; count: (..., 1) float, the number of ones (>= 1).
    """
    mean = (x * mask).sum(-1, keepdim=True) / count
    centred = (x - mean) * mask
    var = (centred * centred).sum(-1, keepdim=True) / count
    return centred / torch.sqrt(var + eps)


class ExportGraph(nn.Module):
    """`Emotion2vec` rewritten shape-polymorphic, for tracing: (waveform, lengths) -> outputs.

    `Emotion2vec.forward` is tuned for eager CPU: per-item loops, tiles of the conv stack, a
    strided-view conv that unfolds the waveform, and no mask at all when nothing is padded. All of
    these read lengths and shapes as Python numbers, which a trace freezes at their example values.
    Here every length-dependent quantity (waveform normalisation, frame counts, padding mask,
    ALiBi bias) is a tensor op on `lengths`, the convs are plain `conv1d`, and the weights are the
    model's own modules, so the numbers are the eager model's within float rounding (tested).
    """

    def __init__(self, model: Emotion2vec, keep: list[int], frame_embeddings: bool = False):
        super().__init__()
        self.model = model
        self.frame_embeddings = frame_embeddings
        # The engine masks `unuse*` labels to -inf, softmaxes and drops them: the same numbers as
        # a softmax over the kept labels' logits only, which is what the graph computes.
        self.register_buffer("head_weight", model.head.weight.detach()[keep].float().clone())
        self.register_buffer("head_bias", model.head.bias.detach()[keep].float().clone())
        self.register_buffer("slopes", torch.tensor(alibi_slopes(model.cfg.num_heads))[:, None, None])

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor):
        m, cfg = self.model, self.model.cfg
        e = cfg.num_extra_tokens
        samples = (torch.arange(waveform.shape[1], device=waveform.device)[None, :] < lengths[:, None]).float()
        x = waveform * samples  # (B, N): whatever is past an item's length reads as zero padding
        if cfg.normalize:
            x = masked_normalize(x, samples, lengths.clamp_min(1)[:, None].float())
        x = self.conv_features(x, lengths)  # (B, T, C)
        x = m.feature_proj(layer_norm_fp32(x, m.feature_norm, m.feature_proj.in_features))  # (B, T, D)
        frames = frame_counts(lengths, cfg.feature_layers)  # (B,)
        mask = torch.arange(x.shape[1], device=x.device)[None, :] < frames[:, None]  # (B, T)
        pad = ~mask
        x = x + m.pos_conv(x, pad)
        x = torch.cat([m.extra_tokens.expand(x.shape[0], -1, -1), x], dim=1)  # (B, E+T, D)
        x = m.prenet_norm(x)
        keys = F.pad(pad, (e, 0)).unsqueeze(1).unsqueeze(1)  # (B, 1, 1, E+T)
        neg = torch.zeros_like(keys, dtype=x.dtype).masked_fill(keys, float("-inf"))
        for i, blk in enumerate([*m.prenet, *m.blocks]):
            if i == 0 or cfg.alibi_scale_per_layer:
                bias = self.alibi(mask.shape[1], i) + neg if cfg.use_alibi else neg  # (B, H or 1, E+T, E+T)
            x = blk(x, bias)
        x = x[:, e:]  # (B, T, D)
        weights = mask.unsqueeze(-1).float()
        mean = (x * weights).sum(1) / frames.clamp_min(1)[:, None].float()  # (B, D)
        utterance = torch.softmax(F.linear(mean, self.head_weight, self.head_bias), -1)  # (B, V)
        frame = torch.softmax(F.linear(x, self.head_weight, self.head_bias), -1)  # (B, T, V)
        out = (utterance, frame, mean, frames)
        return (*out, x) if self.frame_embeddings else out

    def conv_features(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, N) normalised waveform -> (B, T, C), as `FeatureExtractor` computes it."""
        fe = self.model.features
        x = x.unsqueeze(1)  # (B, 1, N)
        for i, conv in enumerate(fe.convs):
            x = F.conv1d(x, conv.weight, stride=conv.stride[0])  # (B, C, T_i)
            if fe.layer_norm:
                x = layer_norm_fp32(x.transpose(1, 2), fe.norms[i], conv.out_channels).transpose(1, 2)
            elif i == 0:  # GroupNorm, a group per channel, over each item's own frames only
                n = frame_counts(lengths, fe.cfg.feature_layers[:1])
                valid = (torch.arange(x.shape[2], device=x.device)[None, :] < n[:, None]).float().unsqueeze(1)
                norm = fe.norms[0]
                x = masked_normalize(x, valid, n.clamp_min(1)[:, None, None].float(), norm.eps)
                x = x * norm.weight[:, None] + norm.bias[:, None]
            x = F.gelu(x)
        return x.transpose(1, 2)

    def alibi(self, t: int, layer: int) -> torch.Tensor:
        """(1, H, E+T, E+T) scaled ALiBi over frames, 0 for the extra tokens (as `attention_bias`)."""
        cfg, e = self.model.cfg, self.model.cfg.num_extra_tokens
        pos = torch.arange(t, device=self.slopes.device)
        dist = -(pos[None, :] - pos[:, None]).abs().float()  # (T, T)
        scale = self.model.alibi_scale[layer if cfg.alibi_scale_per_layer else 0].clamp_min(0).float()[0]  # (H or 1, 1, 1)
        return F.pad(dist * self.slopes * scale, (e, 0, e, 0)).unsqueeze(0)


README_TEXT = """# {model_id} as ONNX

Exported by emotion_app (`python -m emotion_app export-onnx`). One graph holds the whole model:
waveform normalisation, conv feature extractor, transformer and the emotion head.

| | shape | |
|---|---|---|
| input `waveform` | (batch, samples) float32 | 16 kHz mono in [-1, 1], zero-padded to the longest item |
| input `lengths` | (batch,) int64 | real samples per item (at least 400 = one frame) |
| output `utterance_probabilities` | (batch, {num_labels}) | softmax over the labels of labels.json, in its order |
| output `frame_probabilities` | (batch, frames, {num_labels}) | 50 Hz: frame t covers samples [320 t, 320 t + 400) |
| output `embedding` | (batch, {embed_dim}) | mean frame feature (the utterance embedding) |
| output `num_frames` | (batch,) int64 | real frames per item; rows past it are padding |
{frame_row}
`vad.onnx` (when present) is Silero VAD's own ONNX model (MIT licence), copied from the installed
silero-vad package so that `--backend onnx` can cut long recordings without torch.

Batch size and length are free; each item gives the numbers it gives alone. emotion_app feeds
the model at most 30 s at a time: for longer audio run pieces, average their `embedding` weighted
by `num_frames`, and score that mean with the head in `head.npz` (`weight` (labels, dim), `bias`):
`softmax(mean @ weight.T + bias)`.

An int8 export (`export-onnx --int8`) multiplies uint8 activations by int8 weights (MatMulInteger).
On a CPU without int8 dot products (no VNNI: AMD Zen 1-3, older Intel) onnxruntime adds those
products in 16 bits, which saturate; emotion_app loads such a graph there with each int8 weight and
zero point of its MatMulInteger nodes as uint8, plus 128 (the same products). Running it yourself on
such a CPU, pass `emotion_app.model.onnx_int8.unsigned_weights("model.onnx")` (the edited graph, as
bytes) to `ort.InferenceSession` in place of the file name.

```python
import json, numpy as np, onnxruntime as ort

session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
labels = [label["key"] for label in json.load(open("labels.json", encoding="utf-8"))["labels"]]
clips = [np.random.default_rng(0).uniform(-0.3, 0.3, 16000 * 3).astype(np.float32),  # your 16 kHz audio
         np.sin(2 * np.pi * 220 * np.arange(16000) / 16000).astype(np.float32)]
waveform = np.zeros((len(clips), max(map(len, clips))), np.float32)
for i, clip in enumerate(clips):
    waveform[i, : len(clip)] = clip
lengths = np.array([len(clip) for clip in clips], dtype=np.int64)
probs, frames, embedding, num_frames = session.run(None, {{"waveform": waveform, "lengths": lengths}})[:4]
for p, t in zip(probs, num_frames):
    print(labels[p.argmax()], f"{{p.max():.1%}}", f"{{t}} frames")
```
"""


def label_entries(tokens: list[str], keep: list[int]) -> list[dict]:
    entries = []
    for i in keep:
        label = label_for_token(tokens[i])
        entries.append({"key": label.key, "zh": label.zh, "emoji": label.emoji, "token": tokens[i]})
    return entries


def trace(graph: ExportGraph, path: Path, opset: int) -> None:
    """Trace `graph` on a padded 2-item batch into `path`, with batch and length dynamic."""
    min_samples = graph.model.cfg.min_samples()
    n = max(SAMPLE_RATE, 4 * min_samples)
    gen = torch.Generator().manual_seed(0)
    waveform = 0.1 * torch.randn(2, n, generator=gen)
    lengths = torch.tensor([n, n * 3 // 5])  # padded: the mask path is what gets traced
    names = [*OUTPUTS, FRAME_EMBEDDINGS] if graph.frame_embeddings else list(OUTPUTS)
    axes = {INPUTS[0]: {0: "batch", 1: "samples"}, INPUTS[1]: {0: "batch"}}
    axes.update({name: {0: "batch", 1: "frames"} if name.startswith("frame") else {0: "batch"} for name in names})
    with torch.no_grad():
        # The TorchScript exporter: this graph needs no control flow, and it traces in seconds
        # without onnxscript. Its deprecation and constant-folding notes are not for our users; a
        # TracerWarning means a length or shape was frozen into the graph, which must not pass.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.onnx.export(
                graph,
                (waveform, lengths),
                str(path),
                dynamo=False,
                input_names=list(INPUTS),
                output_names=names,
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
            )
    frozen = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    if frozen:
        raise RuntimeError(f"the ONNX trace froze an input-dependent value (a bug in ExportGraph): {frozen[0].message}")


def import_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ModelLoadError(f"exporting to ONNX needs the onnx package ({exc}); {ONNX_INSTALL_HINT}") from exc
    return onnx


def export_model(
    model: Emotion2vec,
    tokens: list[str],
    out_dir,
    model_id: str,
    *,
    frame_embeddings: bool = False,
    opset: int = DEFAULT_OPSET,
    max_inline_bytes: int = MAX_INLINE_BYTES,
    int8: bool = False,
) -> Path:
    """Write the ONNX folder for an fp32 `model` (see the module docstring) and return its path;
    `int8`: the fp32 folder's linear layers quantized (`quantize_export`).

    The files are written to a temporary folder inside `out_dir` and moved into place at the
    end, so a failed export leaves an earlier export in `out_dir` as it was.
    """
    if int8:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".float-", dir=out_dir) as fp32:
            options = {"frame_embeddings": frame_embeddings, "opset": opset, "max_inline_bytes": max_inline_bytes}
            export_model(model, tokens, fp32, model_id, **options)
            return quantize_export(fp32, out_dir, max_inline_bytes=max_inline_bytes)
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} is too old: scaled dot-product attention needs {MIN_OPSET} or later")
    onnx = import_onnx()
    if any(p.dtype != torch.float32 or p.device.type != "cpu" for p in model.parameters()):
        model = copy.deepcopy(model).float().cpu()  # export fp32 on the CPU; the caller's model stays as it is
    keep = [i for i, t in enumerate(tokens) if not t.startswith("unuse")]
    graph = ExportGraph(model, keep, frame_embeddings).eval()
    weight, bias = graph.head_weight.numpy(), graph.head_bias.numpy()
    fingerprint = head_fingerprint(weight, bias)
    external = sum(t.numel() * t.element_size() for t in graph.state_dict().values()) > max_inline_bytes
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out) as tmp:
        tmp = Path(tmp)
        (tmp / "traced").mkdir()
        trace(graph, tmp / "traced" / ONNX_FILE, opset)
        proto = onnx.load(str(tmp / "traced" / ONNX_FILE))  # with its weights, wherever they are
        onnx.helper.set_model_props(proto, {"fingerprint": fingerprint, "model_id": model_id, "format": FORMAT})
        proto.doc_string = f"emotion2vec+ {model_id}: waveform (batch, samples) 16 kHz -> emotion probabilities"
        onnx.save_model(proto, str(tmp / ONNX_FILE), save_as_external_data=external, location=ONNX_DATA_FILE)
        del proto
        np.savez(tmp / HEAD_FILE, weight=weight, bias=bias)
        meta = labels_json(model, tokens, keep, model_id, fingerprint, frame_embeddings, opset, external)
        meta["dtype"] = "fp32"
        write_labels(tmp, meta)
        frame_row = f"| output `{FRAME_EMBEDDINGS}` | (batch, frames, {meta['embed_dim']}) | per-frame features |\n"
        readme = README_TEXT.format(
            model_id=model_id,
            num_labels=len(keep),
            embed_dim=meta["embed_dim"],
            frame_row=frame_row if frame_embeddings else "",
        )
        (tmp / README_FILE).write_text(readme, encoding="utf-8")
        vad = silero_onnx_file()  # Silero VAD (MIT) for segment=vad without torch, when installed
        if vad is not None:
            shutil.copyfile(vad, tmp / VAD_ONNX)
        place(tmp, out)
    logger.info("exported %s to %s (fingerprint %s)", model_id, out, fingerprint[:12])
    return out


def labels_json(model, tokens, keep, model_id, fingerprint, frame_embeddings, opset, external) -> dict:
    """labels.json: everything a caller needs besides the graph, in the order of its outputs."""
    cfg = model.cfg
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model_id": model_id,
        "fingerprint": fingerprint,
        "labels": label_entries(tokens, keep),
        "embed_dim": cfg.embed_dim,
        "sample_rate": SAMPLE_RATE,
        "frame_hop": FRAME_HOP,
        "min_samples": cfg.min_samples(),
        "inputs": list(INPUTS),
        "outputs": [*OUTPUTS, FRAME_EMBEDDINGS] if frame_embeddings else list(OUTPUTS),
        "frame_embeddings": frame_embeddings,
        "opset": opset,
        "external_data": external,
        "head": HEAD_FILE,
        "torch_version": torch.__version__,
    }


def export_onnx(
    model: str,
    out_dir,
    *,
    hub: str = "ms",
    frame_embeddings: bool = False,
    opset: int = DEFAULT_OPSET,
    cache_dir: str | None = None,
    int8: bool = False,
) -> tuple[Path, float]:
    """Resolve `model` (hub id, alias or local folder), load it in fp32 and export it to `out_dir`
    (`int8`: with int8 linear layers).

    Returns the folder and the largest |p_onnx - p_torch fp32| on a generated test batch (the
    export is checked with onnxruntime before it is reported done).
    """
    from ..model.hub import resolve_model
    from ..model.torch_backend import load_model

    model_dir = resolve_model(model, hub, cache_dir=cache_dir)
    native, tokens = load_model(model_dir, torch.device("cpu"), torch.float32)
    folder = export_model(native, tokens, out_dir, model, frame_embeddings=frame_embeddings, opset=opset, int8=int8)
    diff = max_difference(native, folder)
    if diff > (INT8_CHECK_TOLERANCE if int8 else CHECK_TOLERANCE):
        logger.warning("the ONNX graph differs from the torch model by %.1e in probability", diff)
    return folder, diff


def max_difference(model: Emotion2vec, folder, seconds: tuple[float, ...] = (2.0, 0.7)) -> float:
    """Largest |p_onnx - p_torch| over utterance and frame probabilities of a generated batch."""
    from ..model.onnx_backend import OnnxModel

    t = np.arange(int(max(seconds) * SAMPLE_RATE)) / SAMPLE_RATE
    chirp = (0.3 * np.sin(2 * np.pi * (100 + 400 * t) * t)).astype(np.float32)
    clips = [chirp[: int(s * SAMPLE_RATE)] for s in seconds]
    onnx_out = OnnxModel(folder).run_chunks(clips)
    lengths = torch.tensor([len(c) for c in clips])
    wav = torch.zeros(len(clips), int(lengths.max()))
    for i, c in enumerate(clips):
        wav[i, : len(c)] = torch.from_numpy(c)
    with torch.inference_mode():
        ref = model.float().cpu()(wav, lengths)
        keep = ~model.label_mask
        utt = torch.softmax(ref.utterance_logits, -1)[:, keep].numpy()
        frame = torch.softmax(ref.frame_logits, -1)[..., keep].numpy()
    diffs = [np.abs(o.probabilities - utt[i]).max() for i, o in enumerate(onnx_out)]
    diffs += [np.abs(o.frame_probabilities - frame[i, : len(o.frame_probabilities)]).max() for i, o in enumerate(onnx_out)]
    return float(max(diffs))
