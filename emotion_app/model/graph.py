"""The emotion2vec inference graph in plain torch (no FunASR at run time).

It computes what FunASR 1.4.16's `Emotion2vec.extract_features` + head compute, and adds what
FunASR lacks: padded batches (every padded item gives the numbers it gives alone) and per-frame
scores. Shapes: B batch, N samples, T frames, E extra tokens, D embed_dim, H heads, V labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .convs import conv_rows, strided_conv


def alibi_slopes(heads: int) -> list[float]:
    """Per-head slopes of ALiBi, as in the ALiBi paper (and data2vec 2.0)."""

    def power_of_2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(heads).is_integer():
        return power_of_2(heads)
    closest = 2 ** math.floor(math.log2(heads))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: heads - closest]


def layer_norm_fp32(x: torch.Tensor, norm: nn.Module | None, shape: int, eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm computed in fp32 whatever the model dtype (FunASR's Fp32LayerNorm)."""
    weight = norm.weight.float() if norm is not None else None
    bias = norm.bias.float() if norm is not None else None
    if x.dtype == torch.bfloat16 and x.device.type == "cpu":
        # The CPU kernel takes bf16 input with fp32 weights and accumulates in fp32: the same
        # numbers as the casts below without two copies of the tensor (10x faster on 512-channel
        # extractor activations, the bulk of bf16's non-matmul time).
        return F.layer_norm(x, (shape,), weight, bias, eps)
    return F.layer_norm(x.float(), (shape,), weight, bias, eps).type_as(x)


class FeatureExtractor(nn.Module):
    """Strided conv stack over the waveform: (B, N) -> (B, T, C)."""

    TILE_FRAMES = 250  # 5 s of output frames per tile

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.layer_norm = cfg.extractor_mode == "layer_norm"
        self._taps_cache: tuple | None = None  # _taps()
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        in_dim = 1
        for i, (dim, kernel, stride) in enumerate(cfg.feature_layers):
            self.convs.append(nn.Conv1d(in_dim, dim, kernel, stride=stride, bias=False))
            if self.layer_norm:
                self.norms.append(nn.LayerNorm(dim))
            elif i == 0:  # "default" mode: one GroupNorm (a norm per channel) on the first layer
                self.norms.append(nn.GroupNorm(dim, dim))
            in_dim = dim

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, T, C), in tiles of TILE_FRAMES output frames.

        Every op here is local in time (strided convs, per-position LayerNorm), so tiles whose
        inputs overlap by the receptive field give exactly the untiled frames while the
        512-channel activations of a long input never exist at once (200 MB for 30 s).
        """
        t = self.cfg.num_frames(wav.shape[1])
        taps = self._taps()
        if not self.layer_norm:  # GroupNorm normalises over all of time: each item on its own
            items = [self._run(wav[i : i + 1, :n], taps) for i, n in enumerate(lengths.tolist())]
            return torch.cat([F.pad(x, (0, 0, 0, t - x.shape[1])) for x in items])
        if t <= self.TILE_FRAMES:
            return self._run(wav, taps)
        hop, field = self.cfg.frame_stride, self.cfg.min_samples()
        tiles = [
            self._run(wav[:, f0 * hop : (min(f0 + self.TILE_FRAMES, t) - 1) * hop + field], taps)
            for f0 in range(0, t, self.TILE_FRAMES)
        ]
        return torch.cat(tiles, dim=1)

    def _taps(self) -> list[torch.Tensor]:
        """Each conv's weight as (k, Cin, Cout), contiguous (strided_conv's layout). The transposed
        copy is slow (0.6 ms for a 3 x 512 x 512 weight, 2-3 ms of a call), so it is kept from call
        to call while the weights are the same tensors with the same data, unchanged, and no
        gradient is wanted; made anew otherwise. The kept copy is the size of the extractor's weights (8 MB
        in bf16 on plus_large)."""
        if torch.is_grad_enabled() and any(c.weight.requires_grad for c in self.convs):
            return [c.weight.permute(2, 1, 0).contiguous() for c in self.convs]
        weights = [c.weight for c in self.convs]
        # the same tensors, with the same data (`.float()` swaps a parameter's data, not the
        # parameter), unchanged in place (the version counter)
        state = [(w.data_ptr(), w.dtype, w.device, w._version) for w in weights]
        cached = self._taps_cache  # (weights, their state, taps): one attribute, swapped whole
        if cached is None or any(a is not b for a, b in zip(cached[0], weights)) or cached[1] != state:
            cached = (weights, state, [w.detach().permute(2, 1, 0).contiguous() for w in weights])
            self._taps_cache = cached
        return cached[2]

    def _run(self, wav: torch.Tensor, taps: list[torch.Tensor]) -> torch.Tensor:
        # Channels-last throughout: each conv is a few GEMMs and each LayerNorm runs on contiguous
        # rows, which avoids the transpose copies of the (B, C, T) layout (2x faster on CPU).
        x = wav.unsqueeze(-1)  # (B, N, 1)
        for i, conv in enumerate(self.convs):
            x = strided_conv(x, taps[i], conv.stride[0])  # (B, T_i, C)
            if self.layer_norm:
                x = layer_norm_fp32(x, self.norms[i], x.shape[-1])
            elif i == 0:  # GroupNorm with a group per channel: normalise each channel over time
                norm = self.norms[0]
                xf = x.float()
                mean, var = xf.mean(1, keepdim=True), xf.var(1, unbiased=False, keepdim=True)
                x = ((xf - mean) / torch.sqrt(var + norm.eps) * norm.weight.float() + norm.bias.float()).type_as(x)
            x = F.gelu(x)
        return x  # (B, T, C)


class PositionalConv(nn.Module):
    """Relative positional encoder: grouped convs, each + non-affine LayerNorm + GELU."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, k = cfg.embed_dim, cfg.conv_pos_kernel
        self.pre_norm = nn.LayerNorm(d) if cfg.conv_pos_pre_ln else None
        self.convs = nn.ModuleList(
            nn.Conv1d(d, d, k, padding=k // 2, groups=cfg.conv_pos_groups) for _ in range(cfg.conv_pos_depth)
        )
        self.trim = 1 if k % 2 == 0 else 0  # SamePad: an even kernel yields one frame too many

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        # x: (B, T, D); pad: (B, T) True on padding. Padded frames are zeroed before each conv so
        # that a padded item sees the zeros a lone item sees past its end (conv zero padding).
        if self.pre_norm is not None:
            x = self.pre_norm(x)
        for conv in self.convs:
            if pad is not None:
                x = x.masked_fill(pad.unsqueeze(-1), 0.0)
            y = conv_rows(conv, x)  # (B, T + trim, D)
            if self.trim:
                y = y[:, : -self.trim]
            x = F.gelu(F.layer_norm(y, (conv.out_channels,)))  # (B, T, D)
        return x


ROW_ALIGN = 32  # tokens per item in bf16 on the CPU: a multiple of this (run_blocks pads)


def _aligned_rows(x: torch.Tensor) -> int:
    """The tokens per item that the blocks run on: in bf16 on the CPU, rounded up to ROW_ALIGN.

    The CPU's flash attention in bf16 takes up to twice the time when the tokens are not a multiple
    of its 32-row blocks (8 windows of 159 tokens, a 3 s window: 4.7 ms a layer; of 160: 2.3 ms; 8
    items of 509 tokens, a 10 s clip: 27.8 ms; of 512: 19.2 ms). Padding costs the extra rows (at
    most 31) and a key mask: a 10 s clip -9 %, a live window in batches of 8 -3 %
    (bench/bench_kernels.py). fp32 gains nothing measurable and keeps its rows (the FunASR parity
    of 1e-5 stays as it was); CUDA keeps them too (not measured there).
    """
    n = x.shape[1]
    if x.dtype != torch.bfloat16 or x.device.type != "cpu":
        return n
    return -(-n // ROW_ALIGN) * ROW_ALIGN


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        # q, k, v: (B, H, T, hs); bias: (B or 1, H, T, T), ALiBi plus -inf on padded keys
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Post-LN transformer block (`layer_norm_first: false`, as in every emotion2vec config)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.embed_dim
        self.attn = Attention(d, cfg.num_heads)
        self.norm1 = nn.LayerNorm(d, eps=cfg.norm_eps, elementwise_affine=cfg.norm_affine)
        self.fc1 = nn.Linear(d, int(d * cfg.mlp_ratio))
        self.fc2 = nn.Linear(int(d * cfg.mlp_ratio), d)
        self.norm2 = nn.LayerNorm(d, eps=cfg.norm_eps, elementwise_affine=cfg.norm_affine)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x = self.norm1(x + self.attn(x, bias))
        return self.norm2(x + self.fc2(F.gelu(self.fc1(x))))


@dataclass
class ModelOutput:
    frames: torch.Tensor  # (B, T, D) frame features (extra tokens removed)
    mask: torch.Tensor  # (B, T) True on real frames
    mean: torch.Tensor  # (B, D) fp32 mean of the real frames: the utterance embedding
    frame_logits: torch.Tensor  # (B, T, V) fp32
    utterance_logits: torch.Tensor  # (B, V) fp32: head over the mean real frame


class Emotion2vec(nn.Module):
    """emotion2vec backbone + linear head. `forward(wav, lengths)` on raw 16 kHz samples."""

    def __init__(self, cfg: ModelConfig, num_labels: int):
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.features = FeatureExtractor(cfg)
        c = cfg.feature_layers[-1][0]
        self.feature_norm = nn.LayerNorm(c)
        self.feature_proj = nn.Linear(c, d)
        self.pos_conv = PositionalConv(cfg)
        self.extra_tokens = nn.Parameter(torch.zeros(1, cfg.num_extra_tokens, d))
        n_scales = cfg.prenet_depth + cfg.depth if cfg.alibi_scale_per_layer else 1
        n_heads = cfg.num_heads if cfg.alibi_scale_per_head else 1
        self.alibi_scale = nn.Parameter(torch.full((n_scales, 1, n_heads, 1, 1), cfg.alibi_scale))
        self.prenet_norm = nn.LayerNorm(d, eps=cfg.norm_eps, elementwise_affine=cfg.norm_affine)
        self.prenet = nn.ModuleList(Block(cfg) for _ in range(cfg.prenet_depth))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.head = nn.Linear(d, num_labels)
        self.register_buffer("label_mask", torch.zeros(num_labels, dtype=torch.bool), persistent=False)

    def normalize(self, wav: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Layer-normalise each waveform over its own length; padding becomes 0. (B, N) fp32."""
        out = torch.zeros_like(wav, dtype=torch.float32)
        for i, n in enumerate(lengths.tolist()):
            out[i, :n] = F.layer_norm(wav[i, :n].float(), (n,)) if self.cfg.normalize else wav[i, :n]
        return out

    def attention_bias(self, t: int, pad: torch.Tensor | None, layer: int, dtype) -> torch.Tensor | None:
        """(1 or B, H, E+T, E+T): scaled ALiBi over frames (0 for extra tokens), -inf on padding."""
        cfg, e = self.cfg, self.cfg.num_extra_tokens
        bias = None
        if cfg.use_alibi:
            # One (1, H, E+T, E+T) buffer filled in place: at 30 s each (H, T, T) temporary is
            # 146 MB. Order as FunASR: (slope * -|i - j|) * clamp(scale, 0); 0 for extra tokens.
            dev = self.alibi_scale.device
            pos = torch.arange(t, device=dev)
            dist = -(pos[None, :] - pos[:, None]).abs().float()  # (T, T)
            slopes = torch.tensor(alibi_slopes(cfg.num_heads), device=dev)[:, None, None]  # (H, 1, 1)
            scale = self.alibi_scale[layer if cfg.alibi_scale_per_layer else 0].clamp_min(0).float()[0]  # (H or 1, 1, 1)
            bias = torch.zeros(1, cfg.num_heads, e + t, e + t, device=dev)
            frames = bias[0, :, e:, e:]
            torch.mul(dist, slopes, out=frames)
            frames.mul_(scale)
        if pad is not None and bool(pad.any()):
            if bool((pad == pad[:1]).all()):  # the same keys padded in every item (one length, or aligned)
                pad = pad[:1]
            keys = F.pad(pad, (e, 0)).view(pad.shape[0], 1, 1, e + t)
            neg = torch.zeros(keys.shape, device=pad.device).masked_fill(keys, float("-inf"))
            bias = neg if bias is None else bias + neg  # (1 or B, H, E+T, E+T)
        return None if bias is None else bias.to(dtype)

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> ModelOutput:
        """wav: (B, N) raw samples at 16 kHz, zero-padded; lengths: (B,) real samples per item."""
        return self.run_features(*self.extract(wav, lengths))

    def run_features(self, features: torch.Tensor, frames: torch.Tensor) -> ModelOutput:
        """Everything above the conv feature extractor: (B, T, C) features (`extract`'s, or the live
        meter's slid ones, model/sliding.py) with (B,) real frames per item -> the model's output."""
        x, mask = self.embed_features(features, frames)
        x = self.run_blocks(x, mask, 0, self.num_blocks)
        return self.classify(x[:, self.cfg.num_extra_tokens :], mask)  # extra tokens removed: (B, T, D)

    @property
    def num_blocks(self) -> int:
        """The transformer blocks in order: the context encoder's (prenet) then the main ones."""
        return len(self.prenet) + len(self.blocks)

    def block(self, i: int) -> Block:
        return self.prenet[i] if i < len(self.prenet) else self.blocks[i - len(self.prenet)]

    def embed(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Everything below the transformer blocks: (B, N) samples -> ((B, E+T, D) tokens with the
        extra tokens first, (B, T) mask True on real frames)."""
        return self.embed_features(*self.extract(wav, lengths))

    def extract(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The conv feature extractor over each waveform normalised on its own: (B, N) samples ->
        ((B, T, C) features in the model's dtype, (B,) real frames per item)."""
        b, n = wav.shape
        if lengths is None:
            lengths = torch.full((b,), n, dtype=torch.long)
        x = self.normalize(wav, lengths).to(self.extra_tokens.dtype)  # the model's float type (its linears may be int8)
        x = self.features(x, lengths)  # (B, T, C)
        return x, torch.tensor([self.cfg.num_frames(int(m)) for m in lengths.tolist()], device=x.device)

    def embed_features(self, features: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Conv features -> transformer tokens: (B, T, C) features, (B,) real frames per item (what a
        padded frame holds does not matter) -> ((B, E+T, D) tokens with the extra tokens first,
        (B, T) mask True on real frames)."""
        dtype = self.extra_tokens.dtype
        x = self.feature_proj(layer_norm_fp32(features, self.feature_norm, features.shape[-1]))  # (B, T, D)
        b, t = x.shape[:2]
        mask = torch.arange(t, device=x.device)[None, :] < frames.to(x.device)[:, None]  # (B, T)
        x = x + self.pos_conv(x, None if bool(mask.all()) else ~mask)
        x = torch.cat([self.extra_tokens.to(dtype).expand(b, -1, -1), x], dim=1)  # (B, E+T, D)
        return self.prenet_norm(x), mask

    def run_blocks(self, x: torch.Tensor, mask: torch.Tensor, start: int, stop: int, recompute: bool = False) -> torch.Tensor:
        """Blocks start..stop-1 (of `num_blocks`) over (B, E+T, D) tokens; mask: (B, T) real frames.
        Fine-tuning runs the lower blocks once (cached) and the top ones each step. `recompute`
        (training): each block's activations are computed again in the backward pass instead of
        being kept, so a step holds one block's (the same numbers, one more forward pass)."""
        n = x.shape[1]
        extra = _aligned_rows(x) - n
        if extra:  # padded tokens: zeros, masked as keys, cut off at the end
            x, mask = F.pad(x, (0, 0, 0, extra)), F.pad(mask, (0, extra), value=False)
        t = mask.shape[1]
        pad = None if bool(mask.all()) else ~mask
        bias = None
        for i in range(start, stop):
            if i == start or self.cfg.alibi_scale_per_layer:
                bias = self.attention_bias(t, pad, i, x.dtype)
            if recompute:
                from torch.utils.checkpoint import checkpoint

                x = checkpoint(self.block(i), x, bias, use_reentrant=False)
            else:
                x = self.block(i)(x, bias)
        return x[:, :n] if extra else x

    def head_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(..., D) features -> (..., V) fp32 logits, `unuse*` labels masked to -inf (as FunASR)."""
        logits = F.linear(x.float(), self.head.weight.float(), self.head.bias.float())
        return logits.masked_fill(self.label_mask, float("-inf"))

    def classify(self, x: torch.Tensor, mask: torch.Tensor) -> ModelOutput:
        """Head over each frame and over the mean real frame (FunASR: mean, then head)."""
        xf = x.float()
        if bool(mask.all()):
            mean = xf.mean(1)
        else:
            mean = (xf * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        return ModelOutput(
            frames=x, mask=mask, mean=mean, frame_logits=self.head_logits(xf), utterance_logits=self.head_logits(mean)
        )
