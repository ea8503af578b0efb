"""Building a Report: `build_report` reads an engine result (results.py) once, with the analysis
options (`mixed`, the sentiment; in frame mode the smoothing, segments and summary of frames.py;
for a conversation the speakers of conversation.py), into the frozen dataclasses of report.py,
each value rounded once, as result.json writes it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime

import numpy as np

from ..constants import FRAME_S, LABEL_BY_KEY, SAMPLE_RATE
from ..results import EmotionResult, HeadReading, RecordingResult, label_of, rounded
from ..sentiment import Sentiment
from . import insights, schema
from .conversation import conversation_report
from .frames import FrameAnalysis, analyze_frames
from .options import AnalysisOptions
from .report import (
    ClipReport,
    Conversation,
    Frame,
    FrameSummary,
    HeadReport,
    LabelName,
    Mixed,
    RecordingReport,
    RecordingSummary,
    Segment,
    SentimentReading,
    Speaker,
    plain_segments,
    rounded_timings,
)


def build_report(
    res: EmotionResult | RecordingResult,
    options: AnalysisOptions | None = None,
    *,
    file: str | None = None,
    timestamp: datetime | None = None,
    embedding: bool = False,
) -> ClipReport | RecordingReport:
    """The Report of `res`, the same for every caller, computed once: in frame mode its frames
    smoothed and read (segments, summary), for a conversation its speakers; `file`: the name shown
    (default the source's); `timestamp`: when the request started (default now); `embedding`: keep
    the result's embedding for embedding.npy."""
    options = options or AnalysisOptions()
    common = dict(
        file=file if file is not None else (res.audio.source if res.audio else None),
        **_top(res.probabilities, res.labels),
        label_names={k: LabelName(LABEL_BY_KEY[k].zh, LABEL_BY_KEY[k].emoji) for k in res.labels if k in LABEL_BY_KEY},
        label_set=tuple(res.label_set) if res.label_set else None,
        result=res,
        options=options,
        embedding=res.embedding if embedding else None,
        warnings=tuple(res.warnings),
        model=dict(res.model),
        timings=rounded_timings(res.timings),
        timestamp=timestamp or datetime.now(),
    )
    probabilities, mood = common["probabilities"], options.sentiment
    mixed = insights.mixed_emotion(probabilities, options.mixed_threshold) if probabilities else None
    common["mixed"] = schema.from_json(Mixed, mixed) if mixed else None
    common["sentiment"] = _sentiment(mood, probabilities) if probabilities else None
    if isinstance(res, RecordingResult):
        return _recording_report(res, mood, common)
    return _clip_report(res, options, common)


def _clip_report(res: EmotionResult, options: AnalysisOptions, common: dict) -> ClipReport:
    fa = analyze_frames(res.frame_probabilities, res.labels, options) if res.granularity == "frame" else None
    frames = segments = summary = None
    if fa is not None:
        limit, mood = options.max_inline_frames, options.sentiment
        if limit == 0 or len(res.frame_probabilities) <= limit:
            frames = _frames(res, fa)
        segments = tuple(Segment(round(s.start, 3), round(s.end, 3), s.emotion, round(s.confidence, 4)) for s in fa.segments)
        if mood is not None:
            segments = tuple(replace(s, sentiment=_run_sentiment(mood, s, fa)) for s in segments)
        summary = schema.from_json(FrameSummary, fa.summary)
    return ClipReport(
        **common,
        granularity=res.granularity,
        duration_s=round(res.duration_s, 3),
        num_frames=int(len(res.frame_probabilities)),
        chunks=res.chunks,
        audio=res.audio,
        heads={name: _head(h) for name, h in res.heads.items()} or None,
        frames=frames,
        frames_file="frames.csv" if fa is not None and frames is None else None,
        smoothing=options.smoothing.to_dict() if fa is not None else None,
        segments=segments,
        summary=summary,
        frame_analysis=fa,
    )


def _recording_report(res: RecordingResult, mood: Sentiment | None, common: dict) -> RecordingReport:
    segments = tuple(_speech_segment(res, i, mood) for i in range(len(res.results)))
    duration_s = res.audio.duration_s
    speakers = conversation = None
    if res.conversation:  # computed once, here
        people, shape = conversation_report(plain_segments(segments), res.labels, duration_s)
        speakers = tuple(replace(schema.from_json(Speaker, p), sentiment=_sentiment(mood, p["probabilities"])) for p in people)
        conversation = schema.from_json(Conversation, shape)
    return RecordingReport(
        **common,
        granularity=res.granularity,
        segmentation=dict(res.segmentation),
        diarization=dict(res.diarization) if res.diarization is not None else None,
        duration_s=round(duration_s, 3),
        audio=res.audio,
        heads={name: _head(h) for name, h in res.head_readings().items()} or None,
        segments=segments,
        summary=_recording_summary(segments, res.labels, duration_s),
        speakers=speakers,
        conversation=conversation,
    )


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


def _sentiment(mood: Sentiment | None, probabilities: dict[str, float]) -> SentimentReading | None:
    return schema.from_json(SentimentReading, mood.of(probabilities)) if mood is not None else None


def _run_sentiment(mood: Sentiment, segment: Segment, fa: FrameAnalysis) -> SentimentReading:
    """A frame-mode segment's sentiment: that of its smoothed frames' mean."""
    a = int(round(segment.start / FRAME_S))
    b = max(a + 1, int(round(segment.end / FRAME_S)))
    mean = fa.smoothed.probabilities[a:b].mean(0)
    return _sentiment(mood, dict(zip(fa.labels, map(float, mean))))


def _head(h: HeadReading, brief: bool = False) -> HeadReport:
    """A head's reading as result.json has it; `brief`: a segment's {emotion, confidence, scores}."""
    top = HeadReport(h.emotion, round(h.confidence, 4), rounded(h.probabilities, h.labels))
    if brief:
        return top
    frames = None
    if h.frame_probabilities is not None:
        frames = tuple(h.labels[i] for i in h.frame_probabilities.argmax(axis=1)) if len(h.frame_probabilities) else ()
    return replace(
        top,
        probabilities={k: float(p) for k, p in zip(h.labels, h.probabilities)},
        labels={k: dict(h.names.get(k, {})) for k in h.labels},
        frames=frames,
    )


def _frames(res: EmotionResult, fa: FrameAnalysis) -> tuple[Frame, ...]:
    """Every frame: start, end (start + 20 ms), its top emotion, confidence and scores, raw and smoothed."""
    labels, sm = res.labels, fa.smoothed
    best = res.frame_probabilities.argmax(axis=1) if len(res.frame_probabilities) else []
    return tuple(
        Frame(
            round(i * FRAME_S, 3),
            round((i + 1) * FRAME_S, 3),
            labels[b],
            round(float(row[b]), 4),
            rounded(row, labels),
            labels[k],
            round(float(c), 4),
            rounded(srow, labels),
        )  # fmt: skip
        for i, (row, b, srow, k, c) in enumerate(zip(res.frame_probabilities, best, sm.probabilities, sm.dominant, sm.confidence))
    )


def _speech_segment(res: RecordingResult, i: int, mood: Sentiment | None) -> Segment:
    """Segment `i` of a recording: its span, reading, heads, and who speaks when known."""
    (a, b), r = res.spans[i], res.results[i]
    probabilities = {k: float(p) for k, p in zip(r.labels, r.probabilities)}
    return Segment(
        start=round(a / SAMPLE_RATE, 3),
        end=round(b / SAMPLE_RATE, 3),
        emotion=r.emotion,
        confidence=round(r.confidence, 4),
        scores=r.scores(),
        probabilities=probabilities,
        heads={name: _head(h, brief=True) for name, h in r.heads.items()} or None,
        speaker=res.speakers[i] if res.speakers is not None else None,
        channel=res.channels[i] if res.channels is not None else None,
        text=res.texts[i] if res.texts is not None else None,
        sentiment=_sentiment(mood, probabilities),
        conversation=res.speakers is not None,
    )


def _recording_summary(segments: tuple[Segment, ...], labels, duration_s: float) -> RecordingSummary:
    """Share of speech time per emotion, transitions between consecutive segments, coverage."""
    dur = np.array([s.end - s.start for s in segments], dtype=np.float64)
    speech = float(dur.sum())
    share = Counter()
    for s, d in zip(segments, dur):
        share[s.emotion] += d
    transitions = Counter(f"{a.emotion}->{b.emotion}" for a, b in zip(segments, segments[1:]) if a.emotion != b.emotion)
    return RecordingSummary(
        num_segments=len(segments),
        speech_s=round(speech, 3),
        coverage=round(speech / duration_s, 4) if duration_s else 0.0,
        share={k: round(float(share[k] / speech), 4) if speech else 0.0 for k in labels},
        transitions=dict(transitions.most_common()),
        changes_per_minute=round(sum(transitions.values()) / (duration_s / 60), 3) if duration_s else 0.0,
    )
