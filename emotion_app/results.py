"""What an analysis returns, and the one place that turns it into result.json.

`EmotionResult` is one clip (utterance or frame granularity); `RecordingResult` is a segmented
recording (one EmotionResult per speech segment or window). `build_report` makes the final
result.json content for every caller (page, Gradio API, REST, CLI, batch JSONL), adding the
frame analysis, the file name and the timestamp; `Report.files` gives the output folder's extra
files (CSV, WebVTT, charts).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from .analysis.frames import FrameAnalysis, add_to_result, export_files
from .analysis.insights import rounded
from .analysis.options import AnalysisOptions
from .audio import AudioInfo, AudioWarning
from .constants import FRAME_S, LABEL_BY_KEY, SAMPLE_RATE, Label


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
    granularity: str  # "utterance" or "frame"
    duration_s: float
    embedding: np.ndarray | None = None  # (D,) for utterance, (T, D) for frame; only on request
    audio: AudioInfo | None = None
    warnings: list[AudioWarning] = field(default_factory=list)
    chunks: int = 1  # model windows the audio was split into
    timings: dict[str, float] = field(default_factory=dict)  # seconds: decode, inference, total
    model: dict[str, str] = field(default_factory=dict)  # id, device, dtype
    heads: dict = field(default_factory=dict)  # name -> HeadReading of each custom head (heads/head.py)

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
        from .heads.head import weighted_reading

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
            }
            for (a, b), r in zip(self.spans, self.results)
        ]

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
            "granularity": self.granularity,
            "segmentation": dict(self.segmentation),
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
class Report:
    """A result ready to be shown or saved: `result` is result.json's content (all but output_dir)."""

    result: dict
    frames: FrameAnalysis | None
    embedding: np.ndarray | None
    options: AnalysisOptions

    def files(self, lang: str = "en") -> dict[str, str | bytes]:
        """The output folder's extra files (name -> content): CSVs, WebVTT, charts."""
        return export_files(self.result, self.frames, self.options, lang)


def build_report(
    res: EmotionResult | RecordingResult,
    options: AnalysisOptions | None = None,
    *,
    file: str | None = None,
    timestamp: datetime | None = None,
    embedding: bool = False,
) -> Report:
    """The result.json content of `res`, the same for every caller: the engine's result, `mixed`,
    in frame mode the smoothing, segments and summary, then `file` (the name shown; default the
    source's) and `timestamp` (when the request started; default now). `embedding`: keep the
    result's embedding for embedding.npy. Frames are inlined up to `options.max_inline_frames`;
    a longer result says `frames_file: "frames.csv"` instead (the frames are all there)."""
    options = options or AnalysisOptions()
    frame = isinstance(res, EmotionResult) and res.granularity == "frame"
    limit = options.max_inline_frames
    inline = frame and (limit == 0 or len(res.frame_probabilities) <= limit)
    result = res.to_dict(frames=inline) if isinstance(res, EmotionResult) else res.to_dict()
    if frame and not inline:
        result["frames_file"] = "frames.csv"
    if file is not None:
        result["file"] = file
    fa = add_to_result(result, res.frame_probabilities if frame else None, res.labels, options)
    result["timestamp"] = (timestamp or datetime.now()).isoformat(timespec="seconds")
    return Report(result, fa, res.embedding if embedding else None, options)
