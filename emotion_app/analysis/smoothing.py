"""Smoothing of per-frame probabilities (T x V at 50 Hz). numpy only.

Every method keeps T and keeps each row a probability vector (the smoothed rows are convex
combinations of raw rows), and gives a dominant label per frame:

- none: the raw frames.
- majority: a centred window of `window` frames (odd, 3-51); each frame takes the label that wins
  most frames of its window (a tie goes to the label with the higher window-mean probability), with
  the window's mean probability of that label as its confidence. The curves are the window means.
- moving_average: the centred window mean of the probability vectors; the dominant is its argmax.
- ewma: y[t] = alpha * x[t] + (1 - alpha) * y[t-1], causal (reacts late, peaks move later by about
  (1 - alpha) / alpha frames); with `zero_phase` it runs forward then backward, so peaks stay put.

At the ends a centred window holds only the frames that exist. Afterwards `min_duration_s` merges
runs of the dominant label shorter than that into a neighbour (the one whose label is more probable
over the run), shortest run first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..constants import FRAME_S
from ..constants import SMOOTHING_METHODS as METHODS

WINDOW_RANGE = (3, 51)
MAX_MIN_DURATION_S = 10.0


@dataclass(frozen=True)
class SmoothingOptions:
    method: str = "moving_average"
    window: int = 11  # frames: 11 x 20 ms = 220 ms, about a syllable
    alpha: float = 0.2  # EWMA weight of the new frame
    zero_phase: bool = True  # EWMA forward-backward
    min_duration_s: float = 0.2  # runs shorter than this merge into a neighbour; 0 turns it off

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"smoothing method must be one of {', '.join(METHODS)}, not {self.method!r}")
        lo, hi = WINDOW_RANGE
        if self.method in ("majority", "moving_average") and (
            not isinstance(self.window, (int, np.integer)) or not lo <= self.window <= hi or self.window % 2 == 0
        ):
            raise ValueError(f"smoothing window must be an odd number of frames from {lo} to {hi}, not {self.window!r}")
        if self.method == "ewma" and not 0 < self.alpha <= 1:
            raise ValueError(f"EWMA alpha must be in (0, 1], not {self.alpha!r}")
        if not 0 <= self.min_duration_s <= MAX_MIN_DURATION_S:
            raise ValueError(f"minimum segment duration must be from 0 to {MAX_MIN_DURATION_S:g} s, not {self.min_duration_s!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Smoothed:
    probabilities: np.ndarray  # (T, V) smoothed rows, each summing to 1
    dominant: np.ndarray  # (T,) label index per frame
    confidence: np.ndarray  # (T,) the dominant label's smoothed probability (majority: window mean)


def window_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving mean along axis 0; at the ends only the frames that exist count."""
    half = window // 2
    c = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0, dtype=np.float64)])
    idx = np.arange(len(x))
    lo, hi = np.maximum(idx - half, 0), np.minimum(idx + half + 1, len(x))
    return (c[hi] - c[lo]) / (hi - lo)[:, None]


def ewma(x: np.ndarray, alpha: float, zero_phase: bool = False) -> np.ndarray:
    """Exponentially weighted moving average along axis 0, started at the first frame."""
    y = np.empty_like(x, dtype=np.float64)
    acc = x[0].astype(np.float64)
    for t, row in enumerate(x):
        acc = alpha * row + (1 - alpha) * acc
        y[t] = acc
    return ewma(y[::-1], alpha)[::-1] if zero_phase else y


def majority(probs: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dominant, confidence, window means) of a centred majority vote over frame argmaxes."""
    votes = np.eye(probs.shape[1])[probs.argmax(1)]
    counts = window_mean(votes, window)
    means = window_mean(probs, window)
    # most votes first; among tied counts the higher window-mean probability
    tied = np.isclose(counts, counts.max(1, keepdims=True))
    dominant = np.where(tied, means, -1.0).argmax(1)
    return dominant, means[np.arange(len(probs)), dominant], means


def runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """Contiguous runs as (start, stop, label), stop exclusive."""
    if len(labels) == 0:
        return []
    cuts = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], cuts])
    stops = np.concatenate([cuts, [len(labels)]])
    return [(int(a), int(b), int(labels[a])) for a, b in zip(starts, stops)]


def merge_short_runs(dominant: np.ndarray, probs: np.ndarray, min_frames: int) -> np.ndarray:
    """Relabel runs shorter than `min_frames` with a neighbour's label, shortest first."""
    dominant = dominant.copy()
    while True:
        rs = runs(dominant)
        short = [(b - a, i) for i, (a, b, _) in enumerate(rs) if b - a < min_frames]
        if len(rs) < 2 or not short:
            return dominant
        _, i = min(short)
        a, b, _ = rs[i]
        neighbours = [rs[j][2] for j in (i - 1, i + 1) if 0 <= j < len(rs)]
        dominant[a:b] = max(neighbours, key=lambda k: probs[a:b, k].mean())


def smooth(probs: np.ndarray, options: SmoothingOptions | None = None) -> Smoothed:
    """Smooth a (T, V) probability matrix."""
    opts = options or SmoothingOptions()
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"expected a (frames, labels) matrix, got shape {probs.shape}")
    if len(probs) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Smoothed(probs.copy(), empty, np.zeros(0))
    if opts.method == "majority":
        dominant, confidence, out = majority(probs, opts.window)
    else:
        if opts.method == "moving_average":
            out = window_mean(probs, opts.window)
        elif opts.method == "ewma":
            out = ewma(probs, opts.alpha, opts.zero_phase)
        else:
            out = probs.copy()
        dominant = out.argmax(1)
        confidence = None
    min_frames = int(round(opts.min_duration_s / FRAME_S))
    if min_frames > 1:
        merged = merge_short_runs(dominant, out, min_frames)
        if confidence is not None:
            changed = merged != dominant
            confidence = np.where(changed, out[np.arange(len(out)), merged], confidence)
        dominant = merged
    if confidence is None:
        confidence = out[np.arange(len(out)), dominant]
    return Smoothed(out, dominant, confidence)
