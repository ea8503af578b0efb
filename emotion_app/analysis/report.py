"""A result as it is shown and saved: `Report`, typed, and the one schema of result.json.

`build_report` (build.py) reads an engine result once into these frozen dataclasses: `ClipReport` (utterance and frame
granularity) or `RecordingReport` (a segmented recording). Their fields are result.json's keys in
its order, their values as written (rounded once, here); `Report.to_json()` writes them
(schema.to_json) for every caller (page, Gradio API, REST, MCP, CLI --json, batch JSONL),
`report_from_json` reads them back, `result_schema()` is their JSON Schema
(docs/result.schema.json). The page, the CLI and the batch tables read the fields; `Report.files`
gives the output folder's extra files (CSV, WebVTT, charts).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

import numpy as np

from ..audio.samples import AudioInfo, AudioWarning
from ..constants import FRAME_S, Label
from ..results import EmotionResult, RecordingResult, label_of
from . import schema
from .conversation import conversation_files
from .frames import FrameAnalysis, export_files
from .options import AnalysisOptions
from .schema import SCHEMA_VERSION, internal, named, optional


# -- the blocks ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelName:
    """A label's Chinese name and emoji."""

    zh: str
    emoji: str


@dataclass(frozen=True)
class SentimentReading:
    """Positive, negative or neutral from the emotions (sentiment.py)."""

    label: Literal["positive", "negative", "neutral"]
    score: float = named(doc="P(positive) - P(negative), in [-1, 1]")
    positive: float = named(doc="P(positive), 4 decimals")
    negative: float = named()
    neutral: float = named()


@dataclass(frozen=True)
class Mixed:
    """Whether the top two emotions are too close to tell apart (insights.mixed_emotion)."""

    mixed: bool
    emotions: tuple[str, ...] = named(doc="the top one, or both when mixed")
    label: str = named(doc='"happy" or "happy + surprised"')
    margin: float = named(doc="top probability minus the second's")
    threshold: float = named()


@dataclass(frozen=True)
class HeadReport:
    """A custom head's reading (heads/): of the whole input, or {emotion, confidence, scores} of a segment."""

    emotion: str
    confidence: float
    scores: dict[str, float]
    probabilities: dict[str, float] | None = optional(doc="full precision; not in a segment's reading")
    labels: dict[str, dict[str, str]] | None = optional(doc="each label's names (zh, emoji) as the head gives them")
    frames: tuple[str, ...] | None = optional(doc="frame mode: the top label of each 20 ms frame")


@dataclass(frozen=True)
class Frame:
    """One 20 ms frame (frame mode): start = t * 0.02 s; its raw and its smoothed reading."""

    start: float
    end: float
    emotion: str
    confidence: float
    scores: dict[str, float]
    smoothed_emotion: str
    smoothed_confidence: float
    smoothed_scores: dict[str, float]


@dataclass(frozen=True)
class Segment:
    """A stretch of one emotion: a run of the smoothed frames, or a recording's speech segment."""

    start: float = named(doc="s, 3 decimals")
    end: float = named(doc="s, 3 decimals")
    emotion: str = named()
    confidence: float = named(doc="frame mode: the mean smoothed probability of `emotion` over the run")
    scores: dict[str, float] | None = optional(doc="recordings: the segment's own scores, 3 decimals")
    probabilities: dict[str, float] | None = optional(doc="recordings: full precision")
    heads: dict[str, HeadReport] | None = optional(doc="recordings: each custom head's reading")
    speaker: str | None = optional(omit=lambda s: not s.conversation, doc="conversations: who speaks (null: nobody's)")
    channel: int | None = optional(doc="speakers=channels: the channel, from 1")
    text: str | None = optional(doc="turns from a transcript: what was said")
    sentiment: SentimentReading | None = optional()
    conversation: bool = internal(False, written="speaker")  # a conversation's: `speaker` is written, even null


@dataclass(frozen=True)
class Reading:
    """An utterance reading from the smoothed frames (insights.utterance_from_frames)."""

    method: Literal["vote", "mean"]
    emotion: str
    confidence: float


@dataclass(frozen=True)
class FrameSummary:
    """Frame mode: share of time, change points, trends, stability and the reading from the frames."""

    duration_s: float
    num_segments: int
    share: dict[str, float] = named(doc="of the time, per emotion")
    change_points: tuple[float, ...] = named(doc="s")
    changes_per_minute: float = named()
    trend_per_minute: dict[str, float] = named(doc="slope of each smoothed probability, per minute")
    stability_std: dict[str, float] = named(doc="standard deviation of each smoothed probability")
    utterance_from_frames: Reading | None = named()


@dataclass(frozen=True)
class RecordingSummary:
    """A segmented recording: share of speech time, coverage, transitions between segments."""

    num_segments: int
    speech_s: float
    coverage: float = named(doc="speech_s / duration_s")
    share: dict[str, float] = named(doc="of the speech time, per emotion")
    transitions: dict[str, int] = named(doc='"from->to": count, most frequent first')
    changes_per_minute: float = named()


@dataclass(frozen=True)
class Speaker:
    """One speaker of a conversation (analysis/conversation.py defines every number)."""

    name: str
    talk_s: float
    share_of_talk: float
    turns: int
    segments: int
    emotion: str = named(doc="the talk-time-weighted top emotion")
    confidence: float = named()
    probabilities: dict[str, float] = named(doc="talk-time-weighted, 4 decimals")
    share: dict[str, float] = named(doc="of the speaker's talk time, per emotion")
    interruptions: int = named(doc="made")
    interrupted: int = named(doc="suffered")
    sentiment: SentimentReading | None = optional()


@dataclass(frozen=True)
class Interruption:
    by: str
    of: str
    at: float = named(doc="s")
    overlap_s: float = named()


@dataclass(frozen=True)
class Escalation:
    """A speaker's smoothed negative share rising across the threshold."""

    speaker: str
    before: float = named(key="from", doc="the smoothed negative share before")
    after: float = named(key="to", doc="and after")
    at: float = named(doc="s")


@dataclass(frozen=True)
class Conversation:
    """Who spoke, how much, over whom, and when someone's negative share rose across the threshold."""

    duration_s: float
    num_speakers: int
    talk_s: float
    silence_s: float
    overlap_s: float
    interruptions: tuple[Interruption, ...]
    escalations: tuple[Escalation, ...]
    options: dict[str, Any] = named(doc="the constants of the definitions (ConversationOptions)")


# -- the report ---------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Report:
    """One analysed input (see the module docstring): the fields both kinds share."""

    schema_version: int = named(default=SCHEMA_VERSION, doc="result.json's schema version (analysis/schema.py)")
    file: str | None = named(doc="the input's name as shown (never a path)")
    emotion: str | None = named(doc="the top emotion (English key); null when no speech was found")
    label_zh: str | None = named()
    emoji: str | None = named()
    confidence: float | None = named(doc="its probability, 4 decimals")
    scores: dict[str, float] = named(doc="every label's probability, 3 decimals")
    probabilities: dict[str, float] = named(doc="every label's probability, full precision")
    label_names: dict[str, LabelName] = named(key="labels", doc="the labels' names")
    label_set: tuple[str, ...] | None = optional(doc="the labels the scores are over, when a set was chosen")
    granularity: str = named()
    # kept for the page and the output files, not written
    result: EmotionResult | RecordingResult | None = internal()
    options: AnalysisOptions | None = internal()
    frame_analysis: FrameAnalysis | None = internal()  # frame mode: smoothed frames, segments, summary
    embedding: np.ndarray | None = internal()  # for embedding.npy, when it was asked for

    def to_json(self) -> dict:
        """result.json's content."""
        return schema.to_json(self)

    def timed(self, timings: dict[str, float]) -> Report:
        """This report with the request's `timings` (s; decode, inference, total)."""
        return replace(self, timings=rounded_timings(timings))

    # -- what the page reads beside the fields ------------------------------------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        """The label keys, in the model's order (the label set's, when one was chosen)."""
        return self.result.labels if self.result is not None else tuple(self.scores)

    @property
    def label(self) -> Label | None:
        return label_of(self.emotion) if self.emotion else None

    def frame_probabilities(self, view: str = "smoothed") -> np.ndarray | None:
        """(T, V) per-frame probabilities in frame mode, `smoothed` or `raw`; None otherwise."""
        fa = self.frame_analysis
        if fa is None:
            return None
        return fa.smoothed.probabilities if view == "smoothed" else fa.raw

    @property
    def frame_s(self) -> float:
        return FRAME_S

    def files(self, lang: str = "en") -> dict[str, str | bytes]:
        """The output folder's extra files (name -> content): CSVs, WebVTT, charts."""
        segments = None if self.segments is None else plain_segments(self.segments)
        files = export_files(self.frame_analysis, segments, self.probabilities, self.options, lang)
        if self.conversation is not None:
            files.update(conversation_files(segments, self.labels, self.audio.duration_s, self.options.charts, lang))
        return files


@dataclass(frozen=True, kw_only=True)
class ClipReport(Report):
    """result.json of one clip, at utterance or frame granularity."""

    granularity: Literal["utterance", "frame"]
    duration_s: float = named(doc="s, 3 decimals")
    num_frames: int = named(doc="50 Hz frames")
    chunks: int = named(doc="model windows the audio was split into")
    audio: AudioInfo | None = named(doc="the source's container, codec, rate, channels; whether it was resampled")
    warnings: tuple[AudioWarning, ...] = named(doc="short (under 1 s), silent")
    model: dict[str, str] = named(doc="id, device, dtype, backend")
    timings: dict[str, float] = named(doc="s spent decoding, in the model, in total")
    heads: dict[str, HeadReport] | None = optional(doc="each custom head's reading")
    frames: tuple[Frame, ...] | None = optional(doc="frame mode: every frame, up to max_inline_frames")
    frames_file: str | None = optional(doc='frame mode past max_inline_frames: "frames.csv"')
    mixed: Mixed | None = named()
    smoothing: dict[str, Any] | None = optional(doc="frame mode: the smoothing options")
    segments: tuple[Segment, ...] | None = optional(doc="frame mode: the runs of the smoothed emotion")
    summary: FrameSummary | None = optional()
    sentiment: SentimentReading | None = optional()
    timestamp: datetime = named(doc="when the request started (local time)")
    output_dir: str | None = optional(doc="the output folder's name")

    speakers = conversation = None  # a clip has no speakers


@dataclass(frozen=True, kw_only=True)
class RecordingReport(Report):
    """result.json of a segmented recording: one reading per speech segment (or window, or turn)."""

    granularity: Literal["segments"]
    segmentation: dict[str, Any] = named(doc="how the recording was cut (SegmentOptions)")
    diarization: dict[str, Any] | None = optional(doc="how the speakers were found: mode, speakers, names, model")
    duration_s: float = named(doc="s, 3 decimals")
    audio: AudioInfo = named()
    warnings: tuple[AudioWarning, ...] = named()
    model: dict[str, str] = named()
    heads: dict[str, HeadReport] | None = optional(doc="each custom head's duration-weighted reading")
    segments: tuple[Segment, ...] = named()
    summary: RecordingSummary = named()
    timings: dict[str, float] = named()
    mixed: Mixed | None = named()
    speakers: tuple[Speaker, ...] | None = optional(doc="conversations: one per speaker, in order of first appearance")
    conversation: Conversation | None = optional()
    sentiment: SentimentReading | None = optional()
    timestamp: datetime = named()
    output_dir: str | None = optional()


def report_from_json(data: dict) -> ClipReport | RecordingReport:
    """A Report read back from result.json's content (its internal fields None)."""
    return schema.from_json(RecordingReport if data.get("granularity") == "segments" else ClipReport, data)


def result_schema() -> dict:
    """The JSON Schema of result.json (draft 2020-12), from the dataclasses: docs/result.schema.json."""
    defs: dict[str, dict] = {}
    kinds = [schema.json_schema(ClipReport, defs), schema.json_schema(RecordingReport, defs)]
    return {
        "$schema": schema.JSON_SCHEMA_DIALECT,
        "title": "result.json",
        "description": (
            f"emotion_app's result.json, schema_version {SCHEMA_VERSION}: a clip (utterance or frame granularity) "
            "or a segmented recording. Generated from emotion_app/analysis/report.py by result_schema()."
        ),
        "oneOf": kinds,
        "$defs": dict(sorted(defs.items())),
    }


def plain_segments(segments: tuple[Segment, ...]) -> list[dict]:
    """The segments as the exports and conversation.py read them: as result.json has them, without
    their sentiment (the segment files stay the same with sentiment on or off)."""
    return [schema.to_json(replace(s, sentiment=None)) for s in segments]


def rounded_timings(timings: dict[str, float]) -> dict[str, float]:
    """Seconds per step, as result.json writes them."""
    return {k: round(v, 4) for k, v in timings.items()}
