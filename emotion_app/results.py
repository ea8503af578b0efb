"""What the engine returns: `EmotionResult` (one clip, utterance or frame granularity),
`RecordingResult` (a segmented recording: one EmotionResult per speech segment or window) and
`HeadReading` (a custom head's reading of one input); data and their JSON, nothing else.

analysis/report.py turns them into result.json's content (`build_report`), adding the frame
analysis, the file name and the timestamp.
"""

from __future__ import annotations

from collections import Counter
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


def _top(probabilities: np.ndarray | None, labels) -> dict:
    """emotion, label_zh, emoji, confidence, scores and probabilities of a probability vector."""
    if probabilities is None:
        return {"emotion": None, "label_zh": None, "emoji": None, "confidence": None, "scores": {}, "probabilities": {}}
    k = int(np.argmax(probabilities))
    label = label_of(labels[k])
    return {
        "emotion": labels[k],
        "label_zh": label.zh,
        "emoji": label.emoji,
        "confidence": round(float(probabilities[k]), 4),
        "scores": rounded(probabilities, labels),
        "probabilities": {key: float(p) for key, p in zip(labels, probabilities)},
    }


def _labels_table(labels) -> dict:
    return {k: {"zh": LABEL_BY_KEY[k].zh, "emoji": LABEL_BY_KEY[k].emoji} for k in labels if k in LABEL_BY_KEY}


def _warnings(warnings: list[AudioWarning]) -> list[dict]:
    return [{"code": w.code, "message": w.message} for w in warnings]


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

    def frames(self) -> list[dict]:
        """Per-frame records: start, end (start + 20 ms), emotion, confidence, rounded scores."""
        best = self.frame_probabilities.argmax(axis=1) if len(self.frame_probabilities) else []
        return [
            {
                "start": round(i * FRAME_S, 3),
                "end": round((i + 1) * FRAME_S, 3),
                "emotion": self.labels[b],
                "confidence": round(float(row[b]), 4),
                "scores": rounded(row, self.labels),
            }
            for i, (row, b) in enumerate(zip(self.frame_probabilities, best))
        ]

    def to_dict(self, frames: bool | None = None) -> dict:
        """The engine's view as JSON (no analysis). `frames` defaults to granularity == "frame"."""
        out = {
            "file": self.audio.source if self.audio else None,
            **_top(self.probabilities, self.labels),
            "labels": _labels_table(self.labels),
            **({"label_set": list(self.label_set)} if self.label_set else {}),
            "granularity": self.granularity,
            "duration_s": round(self.duration_s, 3),
            "num_frames": int(len(self.frame_probabilities)),
            "chunks": self.chunks,
            "audio": self.audio.to_dict() if self.audio else None,
            "warnings": _warnings(self.warnings),
            "model": dict(self.model),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }
        if self.heads:  # custom heads beside the 9-class result; frame mode adds each frame's label
            out["heads"] = {name: reading.to_dict() for name, reading in self.heads.items()}
        if frames if frames is not None else self.granularity == "frame":
            out["frames"] = self.frames()
        return out


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

    def segments(self) -> list[dict]:
        return [
            {
                "start": round(a / SAMPLE_RATE, 3),
                "end": round(b / SAMPLE_RATE, 3),
                "emotion": r.emotion,
                "confidence": round(r.confidence, 4),
                "scores": r.scores(),
                "probabilities": {k: float(p) for k, p in zip(r.labels, r.probabilities)},
                **({"heads": {name: h.brief() for name, h in r.heads.items()}} if r.heads else {}),
                **self._who(i),
            }
            for i, ((a, b), r) in enumerate(zip(self.spans, self.results))
        ]

    def _who(self, i: int) -> dict:
        """A conversation's segment `i`: its speaker, and its channel and text when known."""
        out: dict = {}
        if self.speakers is not None:
            out["speaker"] = self.speakers[i]
        if self.channels is not None and self.channels[i] is not None:
            out["channel"] = self.channels[i]
        if self.texts is not None and self.texts[i] is not None:
            out["text"] = self.texts[i]
        return out

    def summary(self, segments: list[dict]) -> dict:
        """Share of speech time per emotion, transitions between consecutive segments, coverage."""
        duration_s = self.audio.duration_s
        dur = np.array([s["end"] - s["start"] for s in segments], dtype=np.float64)
        speech = float(dur.sum())
        share = Counter()
        for s, d in zip(segments, dur):
            share[s["emotion"]] += d
        transitions = Counter(
            f"{a['emotion']}->{b['emotion']}" for a, b in zip(segments, segments[1:]) if a["emotion"] != b["emotion"]
        )
        return {
            "num_segments": len(segments),
            "speech_s": round(speech, 3),
            "coverage": round(speech / duration_s, 4) if duration_s else 0.0,
            "share": {k: round(float(share[k] / speech), 4) if speech else 0.0 for k in self.labels},
            "transitions": dict(transitions.most_common()),
            "changes_per_minute": round(sum(transitions.values()) / (duration_s / 60), 3) if duration_s else 0.0,
        }

    def to_dict(self) -> dict:
        segments = self.segments()
        heads = self.head_readings()
        return {
            "file": self.audio.source,
            **_top(self.probabilities, self.labels),
            "labels": _labels_table(self.labels),
            **({"label_set": list(self.label_set)} if self.label_set else {}),
            "granularity": self.granularity,
            "segmentation": dict(self.segmentation),
            **({"diarization": dict(self.diarization)} if self.diarization is not None else {}),
            "duration_s": round(self.audio.duration_s, 3),
            "audio": self.audio.to_dict(),
            "warnings": _warnings(self.warnings),
            "model": dict(self.model),
            **({"heads": {n: h.to_dict() for n, h in heads.items()}} if heads else {}),
            "segments": segments,
            "summary": self.summary(segments),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }


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

    def brief(self) -> dict:
        """{emotion, confidence, scores}: a recording segment's reading."""
        return {k: v for k, v in self.to_dict().items() if k in ("emotion", "confidence", "scores")}

    def to_dict(self) -> dict:
        """{emotion, confidence, scores (3 decimals), probabilities, labels (names and emoji), and in
        frame mode `frames`: the top label of each 20 ms frame}."""
        out = {
            "emotion": self.emotion,
            "confidence": round(self.confidence, 4),
            "scores": rounded(self.probabilities, self.labels),
            "probabilities": {k: float(p) for k, p in zip(self.labels, self.probabilities)},
            "labels": {k: dict(self.names.get(k, {})) for k in self.labels},
        }
        if self.frame_probabilities is not None:
            out["frames"] = (
                [self.labels[i] for i in self.frame_probabilities.argmax(axis=1)] if len(self.frame_probabilities) else []
            )
        return out


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
