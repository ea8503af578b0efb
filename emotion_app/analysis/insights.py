"""Readings of a frame timeline: segments, change points, time shares, trends, mixed emotions.

Pure functions on numpy arrays and plain dicts; the numbers go into result.json's `segments` and
`summary`, the REST response and the page.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..constants import FRAME_S
from .smoothing import Smoothed, runs

MIXED_THRESHOLD = 0.1
UTTERANCE_FROM = ("vote", "mean")


@dataclass
class Segment:
    start: float  # s
    end: float  # s
    emotion: str
    confidence: float  # mean smoothed probability of `emotion` over the segment

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(start=round(self.start, 3), end=round(self.end, 3), confidence=round(self.confidence, 4))
        return d


def segments(smoothed: Smoothed, labels, frame_s: float = FRAME_S) -> list[Segment]:
    """Contiguous runs of the smoothed dominant emotion."""
    return [
        Segment(a * frame_s, b * frame_s, labels[k], float(smoothed.confidence[a:b].mean()))
        for a, b, k in runs(smoothed.dominant)
    ]


def mixed_emotion(probabilities: dict[str, float], threshold: float = MIXED_THRESHOLD) -> dict:
    """Both top labels when their scores are within `threshold`, else the top one and its margin."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"mixed-emotion threshold must be from 0 to 1, not {threshold!r}")
    (k1, p1), (k2, p2) = sorted(probabilities.items(), key=lambda kv: -kv[1])[:2]
    margin = float(p1 - p2)
    mixed = margin <= threshold
    return {
        "mixed": bool(mixed),
        "emotions": [k1, k2] if mixed else [k1],
        "label": f"{k1} + {k2}" if mixed else k1,
        "margin": round(margin, 4),
        "threshold": threshold,
    }


def utterance_from_frames(smoothed: Smoothed, labels, how: str = "vote") -> dict:
    """An utterance reading from smoothed frames: the most frequent dominant label (vote, with its
    share of time as confidence) or the argmax of the mean smoothed probabilities (mean)."""
    if how not in UTTERANCE_FROM:
        raise ValueError(f"utterance-from-frames must be 'vote' or 'mean', not {how!r}")
    if how == "vote":
        counts = np.bincount(smoothed.dominant, minlength=len(labels))
        k = int(counts.argmax())
        return {"method": how, "emotion": labels[k], "confidence": round(float(counts[k] / counts.sum()), 4)}
    mean = smoothed.probabilities.mean(0)
    k = int(mean.argmax())
    return {"method": how, "emotion": labels[k], "confidence": round(float(mean[k]), 4)}


def summary(
    smoothed: Smoothed,
    labels,
    *,
    utterance_from: str = "vote",
    frame_s: float = FRAME_S,
) -> dict:
    """Share of time per emotion, change points, changes per minute, per-emotion trend (slope of the
    smoothed probability, per minute) and stability (its standard deviation), and the utterance
    reading from the smoothed frames."""
    n = len(smoothed.dominant)
    duration = n * frame_s
    counts = np.bincount(smoothed.dominant, minlength=len(labels)) if n else np.zeros(len(labels))
    segs = runs(smoothed.dominant)
    changes = [round(a * frame_s, 3) for a, _, _ in segs[1:]]
    t = np.arange(n) * frame_s / 60.0  # minutes
    p = smoothed.probabilities
    if n > 1:  # least-squares slope of each label's smoothed probability, per minute
        tc = t - t.mean()
        slopes = (tc[:, None] * (p - p.mean(0))).sum(0) / (tc**2).sum()
    else:
        slopes = np.zeros(len(labels))
    std = p.std(0) if n else np.zeros(len(labels))
    return {
        "duration_s": round(duration, 3),
        "num_segments": len(segs),
        "share": {k: round(float(c / n), 4) if n else 0.0 for k, c in zip(labels, counts)},
        "change_points": changes,
        "changes_per_minute": round(len(changes) / (duration / 60.0), 3) if duration else 0.0,
        "trend_per_minute": {k: round(float(s), 4) for k, s in zip(labels, slopes)},
        "stability_std": {k: round(float(s), 4) for k, s in zip(labels, std)},
        "utterance_from_frames": utterance_from_frames(smoothed, labels, utterance_from) if n else None,
    }
