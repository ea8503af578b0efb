"""A result as it is shown and saved: `Report`, typed, and the one author of result.json.

`build_report` reads an engine result (results.py) with the analysis options: `mixed`, and in frame
mode the smoothing, segments and summary (frames.py). The page, the CLI and the batch tables read
a Report's fields (`emotion`, `segments`, `summary`, ...); `Report.to_json()` writes result.json's
content for every caller (page, Gradio API, REST, CLI --json, batch JSONL); `Report.files` gives
the output folder's extra files (CSV, WebVTT, charts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from ..audio.samples import AudioInfo, AudioWarning
from ..constants import FRAME_S, Label
from ..results import EmotionResult, HeadReading, RecordingResult, label_of
from ..sentiment import Sentiment
from . import insights
from .conversation import conversation_files, conversation_report
from .frames import FrameAnalysis, add_to_result, analyze_frames, export_files
from .options import AnalysisOptions


@dataclass(frozen=True)
class Mixed:
    """Whether the top two emotions are too close to tell apart (insights.mixed_emotion)."""

    mixed: bool
    emotions: tuple[str, ...]  # the top one, or both when mixed
    label: str  # "happy" or "happy + surprised"
    margin: float  # top probability minus the second's
    threshold: float

    @classmethod
    def of(cls, probabilities: dict[str, float], threshold: float) -> Mixed:
        d = insights.mixed_emotion(probabilities, threshold)
        return cls(d["mixed"], tuple(d["emotions"]), d["label"], d["margin"], d["threshold"])


@dataclass(frozen=True)
class Segment:
    """A stretch of one emotion: a run of the smoothed frames, or a recording's speech segment."""

    start: float  # s
    end: float  # s
    emotion: str
    confidence: float
    probabilities: dict[str, float] = field(default_factory=dict)  # recordings: the segment's own 9 scores
    heads: dict[str, HeadReading] = field(default_factory=dict)  # recordings: each custom head's reading
    speaker: str | None = None  # conversations: who speaks
    channel: int | None = None  # speakers=channels: the channel, from 1
    text: str | None = None  # turns from a transcript: what was said


@dataclass(frozen=True)
class Speaker:
    """One speaker of a conversation (analysis/conversation.py defines every number)."""

    name: str
    talk_s: float
    share_of_talk: float
    turns: int
    emotion: str  # the talk-time-weighted top emotion
    confidence: float
    probabilities: dict[str, float]
    share: dict[str, float]  # of the speaker's talk time, per emotion
    interruptions: int  # made
    interrupted: int  # suffered


@dataclass(frozen=True)
class Interruption:
    by: str
    of: str
    at: float  # s
    overlap_s: float


@dataclass(frozen=True)
class Escalation:
    speaker: str
    before: float  # the smoothed negative share before ("from" in result.json)
    after: float  # and after ("to")
    at: float  # s


@dataclass(frozen=True)
class Conversation:
    """Who spoke, how much, over whom, and when someone's negative share rose across the threshold."""

    speakers: tuple[Speaker, ...]
    duration_s: float
    talk_s: float
    silence_s: float
    overlap_s: float
    interruptions: tuple[Interruption, ...]
    escalations: tuple[Escalation, ...]


@dataclass(frozen=True)
class Reading:
    """An utterance reading from the smoothed frames (insights.utterance_from_frames)."""

    method: str  # vote or mean
    emotion: str
    confidence: float


@dataclass(frozen=True)
class Summary:
    """The summary of frame mode (share of time, changes, trends, the reading from frames) or of a
    segmented recording (share of speech time, coverage, transitions)."""

    num_segments: int
    changes_per_minute: float
    share: dict[str, float]  # of time (frames) or of speech time (recordings), per emotion
    trend_per_minute: dict[str, float] = field(default_factory=dict)  # frame mode
    from_frames: Reading | None = None  # frame mode
    speech_s: float | None = None  # recordings
    coverage: float | None = None  # recordings: speech / duration
    transitions: tuple[tuple[str, str, int], ...] = ()  # recordings: (from, to, count), most frequent first


@dataclass
class Report:
    """One analysed input: the engine's `result`, read with `options` (see the module docstring)."""

    result: EmotionResult | RecordingResult
    options: AnalysisOptions
    file: str
    timestamp: datetime
    frames: FrameAnalysis | None = None  # frame mode: smoothed frames, segments, summary
    embedding: np.ndarray | None = None  # for embedding.npy, when it was asked for
    output_dir: str | None = None  # the output folder's name, once written

    # -- what it says -------------------------------------------------------------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        return self.result.labels

    @property
    def granularity(self) -> str:
        return self.result.granularity

    @property
    def probabilities(self) -> dict[str, float]:
        """label -> probability (full precision); empty for a recording without speech."""
        p = self.result.probabilities
        return {} if p is None else {k: float(v) for k, v in zip(self.labels, p)}

    @property
    def emotion(self) -> str | None:
        p = self.result.probabilities
        return None if p is None else self.labels[int(np.argmax(p))]

    @property
    def confidence(self) -> float | None:
        p = self.result.probabilities
        return None if p is None else float(np.max(p))

    @property
    def label(self) -> Label | None:
        return label_of(self.emotion) if self.emotion else None

    @property
    def sentiment(self) -> dict | None:
        """{label, score, positive, negative, neutral} when sentiment was asked for (sentiment.py)."""
        s = self.options.sentiment
        return s.of(self.probabilities) if s is not None and self.probabilities else None

    @property
    def mixed(self) -> Mixed | None:
        return Mixed.of(self.probabilities, self.options.mixed_threshold) if self.probabilities else None

    @property
    def duration_s(self) -> float:
        return self.result.audio.duration_s if isinstance(self.result, RecordingResult) else self.result.duration_s

    @property
    def audio(self) -> AudioInfo | None:
        return self.result.audio

    @property
    def warnings(self) -> list[AudioWarning]:
        return self.result.warnings

    @property
    def model(self) -> dict[str, str]:
        return self.result.model

    @property
    def timings(self) -> dict[str, float]:
        return self.result.timings

    @property
    def heads(self) -> dict[str, HeadReading]:
        """name -> each custom head's reading of the whole input."""
        return self.result.head_readings() if isinstance(self.result, RecordingResult) else self.result.heads

    @property
    def segments(self) -> list[Segment] | None:
        """Frame mode: the runs of the smoothed emotion; a recording: its speech segments; else None."""
        if self.frames is not None:
            return [Segment(s.start, s.end, s.emotion, s.confidence) for s in self.frames.segments]
        if isinstance(self.result, RecordingResult):
            return [
                Segment(
                    s["start"],
                    s["end"],
                    s["emotion"],
                    s["confidence"],
                    s["probabilities"],
                    r.heads,
                    s.get("speaker"),
                    s.get("channel"),
                    s.get("text"),
                )  # fmt: skip
                for s, r in zip(self.result.segments(), self.result.results)
            ]
        return None

    @property
    def conversation(self) -> Conversation | None:
        """A recording whose segments carry who speaks: per speaker and for the whole conversation."""
        blocks = self._conversation()
        if blocks is None:
            return None
        speakers, c = blocks
        return Conversation(
            tuple(
                Speaker(
                    d["name"],
                    d["talk_s"],
                    d["share_of_talk"],
                    d["turns"],
                    d["emotion"],
                    d["confidence"],
                    d["probabilities"],
                    d["share"],
                    d["interruptions"],
                    d["interrupted"],
                )  # fmt: skip
                for d in speakers
            ),
            c["duration_s"],
            c["talk_s"],
            c["silence_s"],
            c["overlap_s"],
            tuple(Interruption(i["by"], i["of"], i["at"], i["overlap_s"]) for i in c["interruptions"]),
            tuple(Escalation(e["speaker"], e["from"], e["to"], e["at"]) for e in c["escalations"]),
        )

    def _conversation(self) -> tuple[list[dict], dict] | None:
        if not isinstance(self.result, RecordingResult) or not self.result.conversation:
            return None
        return conversation_report(self.result.segments(), self.labels, self.result.audio.duration_s)

    @property
    def summary(self) -> Summary | None:
        if self.frames is not None:
            s = self.frames.summary
            u = s.get("utterance_from_frames")
            reading = Reading(u["method"], u["emotion"], u["confidence"]) if u else None
            return Summary(s["num_segments"], s["changes_per_minute"], s["share"], s["trend_per_minute"], reading)
        if isinstance(self.result, RecordingResult):
            s = self.result.summary(self.result.segments())
            moves = tuple((*k.split("->"), n) for k, n in s["transitions"].items())
            return Summary(s["num_segments"], s["changes_per_minute"], s["share"], speech_s=s["speech_s"],
                           coverage=s["coverage"], transitions=moves)  # fmt: skip
        return None

    def frame_probabilities(self, view: str = "smoothed") -> np.ndarray | None:
        """(T, V) per-frame probabilities in frame mode, `smoothed` or `raw`; None otherwise."""
        if self.frames is None:
            return None
        return self.frames.smoothed.probabilities if view == "smoothed" else self.frames.raw

    @property
    def frame_s(self) -> float:
        return FRAME_S

    # -- what it writes -----------------------------------------------------------------------------
    def to_json(self) -> dict:
        """result.json's content: the engine's result, `mixed`, in frame mode the smoothing, segments,
        summary and (up to `options.max_inline_frames`; beyond, `frames_file: "frames.csv"`) each
        frame with its smoothed reading, then `file`, `timestamp` and, once written, `output_dir`."""
        res, options = self.result, self.options
        frame = self.frames is not None
        limit = options.max_inline_frames
        inline = frame and (limit == 0 or len(res.frame_probabilities) <= limit)
        result = res.to_dict(frames=inline) if isinstance(res, EmotionResult) else res.to_dict()
        if frame and not inline:
            result["frames_file"] = "frames.csv"
        result["file"] = self.file
        add_to_result(result, self.frames, options)
        if (blocks := self._conversation()) is not None:
            result["speakers"], result["conversation"] = blocks
        if options.sentiment is not None:
            add_sentiment(result, options.sentiment, self.frames)
        result["timestamp"] = self.timestamp.isoformat(timespec="seconds")
        if self.output_dir is not None:
            result["output_dir"] = self.output_dir
        return result

    def files(self, lang: str = "en") -> dict[str, str | bytes]:
        """The output folder's extra files (name -> content): CSVs, WebVTT, charts."""
        if self.frames is not None:
            segments = [s.to_dict() for s in self.frames.segments]
        else:
            segments = self.result.segments() if isinstance(self.result, RecordingResult) else None
        files = export_files(self.frames, segments, self.probabilities, self.options, lang)
        if self._conversation() is not None:
            files.update(conversation_files(segments, self.labels, self.result.audio.duration_s, self.options.charts, lang))
        return files


def add_sentiment(result: dict, sentiment: Sentiment, frames: FrameAnalysis | None) -> None:
    """A `sentiment` block (sentiment.py) beside the result's reading, each segment's and each
    speaker's; a frame-mode segment's is that of its smoothed frames' mean."""
    if result.get("probabilities"):
        result["sentiment"] = sentiment.of(result["probabilities"])
    for seg in result.get("segments") or []:
        if seg.get("probabilities"):
            seg["sentiment"] = sentiment.of(seg["probabilities"])
        elif frames is not None:
            a, b = (
                int(round(seg["start"] / FRAME_S)),
                max(int(round(seg["start"] / FRAME_S)) + 1, int(round(seg["end"] / FRAME_S))),
            )
            mean = frames.smoothed.probabilities[a:b].mean(0)
            seg["sentiment"] = sentiment.of(dict(zip(frames.labels, map(float, mean))))
    for speaker in result.get("speakers") or []:
        speaker["sentiment"] = sentiment.of(speaker["probabilities"])


def build_report(
    res: EmotionResult | RecordingResult,
    options: AnalysisOptions | None = None,
    *,
    file: str | None = None,
    timestamp: datetime | None = None,
    embedding: bool = False,
) -> Report:
    """The Report of `res`, the same for every caller: in frame mode its frames smoothed and read
    (segments, summary); `file`: the name shown (default the source's); `timestamp`: when the
    request started (default now); `embedding`: keep the result's embedding for embedding.npy."""
    options = options or AnalysisOptions()
    frame = isinstance(res, EmotionResult) and res.granularity == "frame"
    fa = analyze_frames(res.frame_probabilities, res.labels, options) if frame else None
    name = file if file is not None else (res.audio.source if res.audio else None)
    return Report(res, options, name, timestamp or datetime.now(), fa, res.embedding if embedding else None)
