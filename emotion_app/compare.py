"""Several clips side by side: their utterance scores and the cosine similarity of their embeddings."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .engine import Engine
from .errors import EmotionAppError


@dataclass
class Comparison:
    names: list[str]  # the clips that succeeded, in input order
    probabilities: list[dict[str, float]]  # utterance probabilities per clip
    emotions: list[str]
    similarity: np.ndarray  # (n, n) cosine similarity of the utterance embeddings
    errors: dict[str, str]  # name -> why it failed
    codes: dict[str, str] = field(default_factory=dict)  # name -> the failure's error code (for translation)


def cosine_matrix(x: np.ndarray) -> np.ndarray:
    """(n, D) -> (n, n) cosine similarities; a zero vector is similar to nothing (0)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    return np.clip(unit @ unit.T, -1.0, 1.0)


def compare(engine: Engine, sources: list, names: list[str], labels=None) -> Comparison:
    """Run the clips in one batch (utterance granularity, with embeddings) and compare them;
    `labels`: a label set (as for Engine.predict_batch)."""
    results = engine.predict_batch(sources, extract_embedding=True, errors="return", names=names, labels=labels)
    ok = [(n, r) for n, r in zip(names, results) if not isinstance(r, EmotionAppError)]
    errors = {n: r.message for n, r in zip(names, results) if isinstance(r, EmotionAppError)}
    emb = np.stack([r.embedding for _, r in ok]) if ok else np.zeros((0, 1))
    return Comparison(
        [n for n, _ in ok],
        [dict(zip(r.labels, map(float, r.probabilities))) for _, r in ok],
        [r.emotion for _, r in ok],
        cosine_matrix(emb),
        errors,
        {n: r.code for n, r in zip(names, results) if isinstance(r, EmotionAppError)},
    )
