"""Sliding conv features for the live meter: each stream's frames computed once, reused by later windows.

The meter scores the last `window_s` of a stream every `hop_s` (3 s every 0.5 s by default), so
five sixths of each window's audio went through the conv feature extractor at the hop before.
The extractor is local in time (frame t sees samples [320 t, 320 t + 400) and nothing else; see
graph.FeatureExtractor's tiling): a stream keeps the frames of its last window (`FeatureCache`)
and the next window computes only the frames of its new audio; everything above the extractor
(feature_norm, proj, pos_conv, extra tokens, blocks, head) runs on the whole window, as before.

The one thing that is not local is the waveform's normalisation (`normalize: true` in every
emotion2vec config): the model scores u = (w - m) / s, with m and s = sqrt(var + 1e-5) over the
whole window w. conv1 has no bias, so conv1(u)[t, c] = (conv1(w)[t, c] - m K_c) / s with
K_c = sum_j W1[c, j]: exact and linear. The per-position LayerNorm that follows removes the mean
over channels of m K_c but not its spread over c (K_c differs per channel), and 1/s cancels only up
to the LayerNorm's eps (1e-5 against the frame's channel variance, which is small in quiet frames).
GELU and the six layers above are not linear, so no layer from conv1's LayerNorm up can be re-shifted
to another window's (m, s) after the fact. Caching conv1's raw output alone (exact) would save
16 M of the extractor's 2.45 G multiply-adds per second of audio (layers 2-7 do 512 x 512 x 3 or 2
at 1,600 ... 50 positions/s): nothing. So sliding is a documented approximation:

- each frame is computed once, when it first falls in a window, from that window normalised on its
  own: the newest hop's frames of every window are exactly the full recompute's, and an older frame
  carries the (m, s) of a window that overlapped this one by all but a few hops;
- except quiet frames: where one 5 ms block of a frame's 400 samples has an RMS under `QUIET_RMS`
  (0.2) of the window's std, the shift m K_c and the eps are large against the frame's own signal
  (in digital silence they are all of it: the frame's features follow the sign of m; a word's onset
  is half silence), so a cached quiet frame is computed afresh from the window's own normalisation
  (a window holding a pause pays for the pause's frames, as before);
- what is left is the loud frames' share of the change of (m, s) over a few hops: docs/live.md,
  "Sliding features", gives the measured max |delta p| of the scores against the full recompute.
  At the start of a take, where a window grows from one hop to `window_s`, the early frames carry
  the statistics of the shorter window they came in.

Sliding applies to the layer-norm extractor (the GroupNorm one, `extractor_mode: default`,
normalises each channel over the whole window: not local) on the torch backend (the ONNX export's
graph takes samples), to windows whose first frame lies on the cached frames' 20 ms grid (each
window's start: true for the default 3 s / 0.5 s and any window and hop that are multiples of
20 ms); any other window computes all its frames (the full recompute, bit for bit in exact
arithmetic) and becomes the cache.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

QUIET_RMS = 0.2  # a cached frame with 5 ms under this RMS (times the window's std) is computed afresh


class FeatureCache:
    """One stream's conv features of the last window scored: frame k covers the stream's samples
    [origin + k * stride, origin + k * stride + field). Used by one thread at a time (the live
    scheduler's worker); a new stream (a new take) gets a new cache."""

    def __init__(self):
        self.origin = 0  # samples since the stream's start
        self.frames = None  # (T, C) tensor in the model's dtype, on its device; None: nothing yet

    def reusable(self, start: int, count: int, stride: int) -> int:
        """How many of the first frames (at most `count`) of a window starting at sample `start` the
        cache holds: 0 when the frame grids differ or the cache ends before the window starts."""
        if self.frames is None or start < self.origin or (start - self.origin) % stride:
            return 0
        return max(0, min(count, len(self.frames) - (start - self.origin) // stride))

    def cached(self, start: int, count: int, stride: int):
        """The cached frames of a window starting at `start`: (count, C), count <= reusable()."""
        skip = (start - self.origin) // stride
        return self.frames[skip : skip + count]

    def keep(self, start: int, frames) -> None:
        """Hold `frames` (T, C), the window starting at sample `start`, for the next window."""
        self.origin, self.frames = start, frames


@dataclass(frozen=True)
class StreamWindow:
    """One live window to score: (n,) float32 samples at 16 kHz ending `end` samples after its
    stream's start, and the stream's cache (read and updated by the model call)."""

    samples: np.ndarray
    end: int
    cache: FeatureCache


def slide_features(model, windows: Sequence[StreamWindow], quiet: float = QUIET_RMS):
    """The conv features of each window, the cached ones reused and the new ones (and the quiet
    cached ones: RMS under `quiet` times the window's std) computed in one batch: -> ((B, T, C)
    features zero-padded, (B,) frames per window), for `model.run_features`. Each window's frames
    become its stream's cache. Call under torch.inference_mode."""
    import torch
    import torch.nn.functional as F

    cfg = model.cfg
    assert cfg.extractor_mode == "layer_norm", "sliding needs the layer-norm extractor (local in time)"
    stride, field = cfg.frame_stride, cfg.min_samples()
    device = model.extra_tokens.device
    plans, pieces = [], []  # per window (start, frames, reused, runs computed); per window with runs, their samples
    for w in windows:
        n, start = len(w.samples), w.end - len(w.samples)
        t = cfg.num_frames(n)
        reused = w.cache.reusable(start, t, stride)
        wav = model.normalize(torch.from_numpy(w.samples).to(device)[None], torch.tensor([n]))[0]  # (n,) on its own
        runs = quiet_runs(wav[: max(reused - 1, 0) * stride + field] if reused else wav[:0], stride, field, quiet)
        if reused < t:  # the new frames, joined to a quiet run that ends where they start
            runs = runs[:-1] + [(runs[-1][0], t)] if runs and runs[-1][1] == reused else runs + [(reused, t)]
        if runs:  # each run's samples padded to whole frames plus one: the runs tile the piece's frame grid
            tail = 2 * stride - field
            pieces.append(torch.cat([F.pad(wav[f0 * stride : (f1 - 1) * stride + field], (0, tail)) for f0, f1 in runs]))
        plans.append((start, t, reused, runs))
    if pieces:
        longest = max(len(p) for p in pieces)
        batch = torch.stack([F.pad(p, (0, longest - len(p))) for p in pieces]).to(model.extra_tokens.dtype)
        new = model.features(batch, torch.tensor([len(p) for p in pieces]))  # (B', T', C)
    channels = cfg.feature_layers[-1][0]
    out = torch.zeros(len(windows), max(p[1] for p in plans), channels, dtype=model.extra_tokens.dtype, device=device)
    j = 0
    for i, (w, (start, t, reused, runs)) in enumerate(zip(windows, plans)):
        if reused:
            out[i, :reused] = w.cache.cached(start, reused, stride)
        at = 0
        for f0, f1 in runs:
            out[i, f0:f1] = new[j, at : at + f1 - f0]
            at += f1 - f0 + 1  # and the frame across the padding between two runs
        j += bool(runs)
        w.cache.keep(start, out[i, :t].clone())
    return out, torch.tensor([p[1] for p in plans], device=device)


def quiet_runs(wav, stride: int, field: int, quiet: float) -> list[tuple[int, int]]:
    """(first, end) frame ranges of `wav` (a window normalised to unit std) with a 5 ms block of their
    25 ms receptive field under an RMS of `quiet`: where a change of the window's statistics moves
    the features most."""
    if quiet <= 0 or len(wav) < field:
        return []
    # the quietest 5 ms of each frame's field: a frame half in silence (a word's onset) swings as a silent one
    block = math.gcd(field, stride)  # 80 samples: 5 blocks to a field, 4 to a stride
    energy = wav[: (len(wav) - field) // stride * stride + field].unfold(0, block, block).pow(2).mean(1)
    flags = (energy.unfold(0, field // block, stride // block).amin(1) < quiet * quiet).tolist() + [False]
    runs, first = [], None
    for f, flag in enumerate(flags):
        if flag and first is None:
            first = f
        elif not flag and first is not None:
            runs.append((first, f))
            first = None
    return runs
