"""What a prediction returns: `EmotionResult`, serialisable to the documented JSON in one call."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .audio import AudioInfo, AudioWarning
from .constants import FRAME_HOP, LABEL_BY_KEY, SAMPLE_RATE, Label

FRAME_SECONDS = FRAME_HOP / SAMPLE_RATE  # 0.02 s between frame starts


def rounded(probs: np.ndarray, labels, digits: int = 3) -> dict[str, float]:
    """Scores for display: rounded, so their sum may differ from 1 by a few thousandths."""
    return {k: round(float(p), digits) for k, p in zip(labels, probs)}


@dataclass
class EmotionResult:
    """One input's result. Arrays are float32; frames are 50 Hz, frame t starts at t * 0.02 s."""

    labels: tuple[str, ...]  # English keys, in the model's output order
    probabilities: np.ndarray  # (V,) utterance probabilities, full precision
    frame_probabilities: np.ndarray  # (T, V) per-frame probabilities
    granularity: str  # "utterance" or "frame"
    duration_s: float
    embedding: np.ndarray | None = None  # (D,) for utterance, (T, D) for frame; only on request
    audio: AudioInfo | None = None
    warnings: list[AudioWarning] = field(default_factory=list)
    chunks: int = 1  # model windows the audio was split into
    timings: dict[str, float] = field(default_factory=dict)  # seconds: decode, inference, total
    model: dict[str, str] = field(default_factory=dict)  # id, device, dtype

    @property
    def emotion(self) -> str:
        return self.labels[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probabilities))

    @property
    def label(self) -> Label:
        return LABEL_BY_KEY.get(self.emotion, Label(self.emotion, self.emotion, "❔"))

    @property
    def frame_starts(self) -> np.ndarray:
        """(T,) start time of each frame in seconds."""
        return np.arange(len(self.frame_probabilities)) * FRAME_SECONDS

    def scores(self, digits: int = 3) -> dict[str, float]:
        return rounded(self.probabilities, self.labels, digits)

    def frames(self) -> list[dict]:
        """Per-frame records: start, end (start + 20 ms), emotion, confidence, rounded scores."""
        best = self.frame_probabilities.argmax(axis=1) if len(self.frame_probabilities) else []
        return [
            {
                "start": round(i * FRAME_SECONDS, 3),
                "end": round((i + 1) * FRAME_SECONDS, 3),
                "emotion": self.labels[b],
                "confidence": round(float(row[b]), 4),
                "scores": rounded(row, self.labels),
            }
            for i, (row, b) in enumerate(zip(self.frame_probabilities, best))
        ]

    def to_dict(self, frames: bool | None = None) -> dict:
        """The JSON object of the CLI and APIs. `frames` defaults to granularity == "frame"."""
        label = self.label
        out = {
            "file": self.audio.source if self.audio else None,
            "emotion": self.emotion,
            "label_zh": label.zh,
            "emoji": label.emoji,
            "confidence": round(self.confidence, 4),
            "scores": self.scores(),
            "probabilities": {k: float(p) for k, p in zip(self.labels, self.probabilities)},
            "labels": {k: {"zh": LABEL_BY_KEY[k].zh, "emoji": LABEL_BY_KEY[k].emoji} for k in self.labels if k in LABEL_BY_KEY},
            "granularity": self.granularity,
            "duration_s": round(self.duration_s, 3),
            "num_frames": int(len(self.frame_probabilities)),
            "chunks": self.chunks,
            "audio": self.audio.to_dict() if self.audio else None,
            "warnings": [{"code": w.code, "message": w.message} for w in self.warnings],
            "model": dict(self.model),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }
        if frames if frames is not None else self.granularity == "frame":
            out["frames"] = self.frames()
        return out
