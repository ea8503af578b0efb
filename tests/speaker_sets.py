"""Synthetic speaker embeddings for the clustering tests and benchmark: k speakers, each a unit
direction in 192 dimensions, and windows = their speaker's direction + Gaussian noise, scaled to
length 1, in a random (conversation-like) order.

`noise` is the noise vector's expected length relative to the direction's (1), so the mean cosine
similarity of two windows of one speaker is about 1 / (1 + noise**2): 0.67 at 0.7, 0.5 at 1.0,
0.37 at 1.3 (CAM++ on 1.5 s windows sits around 0.5-0.8). `rho` is the cosine similarity of the
speakers' directions (voices in one recording share the room and the microphone), so windows of two
speakers have a mean similarity of about rho / (1 + noise**2)."""

from __future__ import annotations

import numpy as np

DIM = 192


def speakers(counts: list[int], noise: float = 1.0, rho: float = 0.3, seed: int = 0, outliers: int = 0):
    """(embeddings (W, DIM) float32, true labels (W,) with -1 for outliers): counts[i] windows of speaker i."""
    rng = np.random.default_rng(seed)
    common = _unit(rng.normal(size=DIM))
    own = _unit(rng.normal(size=(len(counts), DIM)))
    centres = _unit(np.sqrt(rho) * common + np.sqrt(1 - rho) * own)
    labels = rng.permutation(np.repeat(np.arange(len(counts)), counts))
    x = centres[labels] + noise * rng.normal(size=(len(labels), DIM)) / np.sqrt(DIM)
    if outliers:  # windows of nobody: random directions (noise, laughter, two voices at once)
        at = np.sort(rng.choice(len(labels) + outliers, outliers, replace=False))
        x = np.insert(x, at - np.arange(outliers), rng.normal(size=(outliers, DIM)), axis=0)
        labels = np.insert(labels, at - np.arange(outliers), -1)
    return _unit(x).astype(np.float32), labels


def purity(pred: np.ndarray, true: np.ndarray) -> float:
    """Share of the (non-outlier) windows that carry their cluster's majority speaker."""
    keep = true >= 0
    pred, true = pred[keep], true[keep]
    return float(sum(np.bincount(true[pred == c]).max() for c in np.unique(pred)) / len(true))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)
