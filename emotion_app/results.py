"""What the engine returns: `EmotionResult` (one clip, utterance or frame granularity),
`RecordingResult` (a segmented recording: one EmotionResult per speech segment or window) and
`HeadReading` (a custom head's reading of one input): arrays and what follows from them, no JSON.

analysis/report.py reads them into result.json's typed content (`build_report`), adding the
frame analysis, the conversation, the file name and the timestamp.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .audio.samples import AudioInfo, AudioWarning
from .constants import FRAME_S, LABEL_BY_KEY, SAMPLE_RATE, Granularity, Label


def rounded(probs, labels, digits: int = 3) -> dict[str, float]:
    """Scores for display: rounded, so their sum may differ from 1 by a few thousandths."""
    return {k: round(float(p), digits) for k, p in zip(labels, probs)}


def label_of(key: str) -> Label:
    return LABEL_BY_KEY.get(key, Label(key, key, "❔"))


@dataclass
class EmotionResult:
    """One input's result. Arrays are float32; frames are 50 Hz, frame t starts at t * 0.02 s."""

    labels: tuple[str, ...]  # English keys, in the model's output order
    probabilities: np.ndarray  # (V,) utterance probabilities, full precision
    frame_probabilities: np.ndarray  # (T, V) per-frame probabilities
    granularity: Granularity  # "utterance" or "frame"
    duration_s: float
    embedding: np.ndarray | None = None  # (D,) for utterance, (T, D) for frame; only on request
    audio: AudioInfo | None = None
    warnings: list[AudioWarning] = field(default_factory=list)
    chunks: int = 1  # model windows the audio was split into
    timings: dict[str, float] = field(default_factory=dict)  # seconds: decode, inference, total
    model: dict[str, str] = field(default_factory=dict)  # id, device, dtype
    heads: dict = field(default_factory=dict)  # name -> HeadReading of each custom head (model/head.py)
    label_set: tuple[str, ...] | None = None  # the labels chosen (labelset.py), when not all of them

    @property
    def emotion(self) -> str:
        return self.labels[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probabilities))

    @property
    def label(self) -> Label:
        return label_of(self.emotion)

    @property
    def frame_starts(self) -> np.ndarray:
        """(T,) start time of each frame in seconds."""
        return np.arange(len(self.frame_probabilities)) * FRAME_S

    def scores(self, digits: int = 3) -> dict[str, float]:
        return rounded(self.probabilities, self.labels, digits)


@dataclass
class RecordingResult:
    """A segmented recording: `results[i]` is the utterance result of samples `spans[i]` (16 kHz).

    The file-level probabilities are the duration-weighted mean of the segments' probabilities
    (speech only), not one pass of the model over the whole file; None when no speech was found.
    """

    labels: tuple[str, ...]
    spans: list[tuple[int, int]]
    results: list[EmotionResult]
    segmentation: dict  # SegmentOptions.to_dict()
    audio: AudioInfo
    warnings: list[AudioWarning] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    model: dict[str, str] = field(default_factory=dict)
    granularity: str = "segments"
    speakers: list[str | None] | None = None  # a conversation: each segment's speaker (None: nobody's)
    channels: list[int | None] | None = None  # speakers=channels: each segment's channel, from 1
    texts: list[str | None] | None = None  # turns from a transcript: each segment's text
    diarization: dict | None = None  # how the speakers were found: mode, speakers, names, model
    label_set: tuple[str, ...] | None = None  # the labels chosen (labelset.py), when not all of them

    @property
    def conversation(self) -> bool:
        """Whether the segments carry who speaks."""
        return self.speakers is not None

    @property
    def durations_s(self) -> np.ndarray:
        return np.array([(b - a) / SAMPLE_RATE for a, b in self.spans], dtype=np.float64)

    @property
    def probabilities(self) -> np.ndarray | None:
        if not self.results:
            return None
        dur = self.durations_s
        return (np.stack([r.probabilities for r in self.results]) * dur[:, None]).sum(0) / dur.sum()

    @property
    def embedding(self) -> np.ndarray | None:
        """(S, D) one mean feature per segment, when the segments were run with embeddings."""
        if not self.results or any(r.embedding is None for r in self.results):
            return None
        return np.stack([r.embedding for r in self.results]).astype(np.float32)

    def head_readings(self) -> dict:
        """name -> each custom head's file-level reading: the duration-weighted mean over the segments."""
        if not self.results or not self.results[0].heads:
            return {}
        return {n: weighted_reading([r.heads[n] for r in self.results], self.durations_s) for n in self.results[0].heads}


@dataclass
class HeadReading:
    """One head's reading of one input: utterance probabilities and, in frame mode, per-frame ones."""

    labels: tuple[str, ...]
    probabilities: np.ndarray  # (V,)
    frame_probabilities: np.ndarray | None = None  # (T, V), frame mode only
    names: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def emotion(self) -> str:
        return self.labels[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probabilities))


def read_heads(heads: Sequence, mean: np.ndarray, frames: Sequence[dict[str, np.ndarray]] | None = None) -> dict:
    """name -> HeadReading of each head over the utterance feature `mean` (D,); `frames`: the
    chunks' per-frame probabilities (name -> (T, V) each, in time order) in frame mode."""
    out = {}
    for head in heads:
        per_frame = np.concatenate([f[head.name] for f in frames]) if frames else None
        out[head.name] = HeadReading(head.labels, head.probabilities(mean), per_frame, head.names)
    return out


def weighted_reading(readings: Sequence[HeadReading], weights: np.ndarray) -> HeadReading:
    """The weighted mean of one head's readings (a recording's segments, weighted by duration)."""
    w = np.asarray(weights, dtype=np.float64)
    probs = (np.stack([r.probabilities for r in readings]) * w[:, None]).sum(0) / w.sum()
    return HeadReading(readings[0].labels, probs.astype(np.float32), None, readings[0].names)
