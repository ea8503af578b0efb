"""A result's frame analysis: smoothing, segments, summary, and the files they export.

Used alike by the page, the REST API and the CLI: `analyze_frames` adds to the result.json dict,
`export_files` gives the extra files of an output folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import exports, insights
from .results import EmotionResult, rounded
from .smoothing import FRAME_S, Smoothed, SmoothingOptions, smooth


def flag(value, default: bool) -> bool:
    """A yes/no option given as a bool or as text ("true", "1", "on", ...); empty means `default`."""
    if isinstance(value, bool):
        return value
    if value is None or str(value).strip() == "":
        return default
    return str(value).strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class AnalysisOptions:
    """How frames are read. The exact utterance `probabilities` never change with these."""

    smoothing: SmoothingOptions = field(default_factory=SmoothingOptions)
    mixed_threshold: float = insights.MIXED_THRESHOLD
    utterance_from: str = "vote"  # utterance reading from smoothed frames: vote or mean
    charts: bool = True  # save scores.png (and timeline.png in frame mode) into the output folder

    def __post_init__(self):
        if not 0 <= self.mixed_threshold <= 1:
            raise ValueError(f"mixed-emotion threshold must be from 0 to 1, not {self.mixed_threshold!r}")
        if self.utterance_from not in insights.UTTERANCE_FROM:
            raise ValueError(f"utterance-from-frames must be 'vote' or 'mean', not {self.utterance_from!r}")

    @classmethod
    def make(
        cls,
        method: str = "moving_average",
        window=11,
        alpha=0.2,
        zero_phase: bool = True,
        min_duration_s=0.2,
        mixed_threshold=insights.MIXED_THRESHOLD,
        utterance_from: str = "vote",
        charts: bool = True,
    ) -> AnalysisOptions:
        """From loosely typed values (form fields, sliders): numbers may come as strings or floats."""
        w = float(window)
        if not w.is_integer():
            raise ValueError(f"smoothing window must be a whole number of frames, not {window!r}")
        smoothing = SmoothingOptions(str(method), int(w), float(alpha), flag(zero_phase, True), float(min_duration_s))
        return cls(smoothing, float(mixed_threshold), str(utterance_from), flag(charts, True))


@dataclass
class FrameAnalysis:
    labels: tuple[str, ...]
    raw: np.ndarray  # (T, V) engine frame probabilities
    smoothed: Smoothed
    segments: list[insights.Segment]
    summary: dict


def analyze_frames(res: EmotionResult, options: AnalysisOptions) -> FrameAnalysis:
    sm = smooth(res.frame_probabilities, options.smoothing)
    return FrameAnalysis(
        res.labels,
        res.frame_probabilities,
        sm,
        insights.segments(sm, res.labels),
        insights.summary(sm, res.labels, utterance_from=options.utterance_from),
    )


def add_to_result(result: dict, res: EmotionResult, options: AnalysisOptions) -> FrameAnalysis | None:
    """Add `mixed` (both modes) and, in frame mode, `smoothing`, `segments`, `summary` and each
    frame's smoothed reading to a result.json dict. Returns the frame analysis in frame mode."""
    result["mixed"] = insights.mixed_emotion(result["probabilities"], options.mixed_threshold)
    if res.granularity != "frame":
        return None
    fa = analyze_frames(res, options)
    result["smoothing"] = options.smoothing.to_dict()
    result["segments"] = [s.to_dict() for s in fa.segments]
    result["summary"] = fa.summary
    for f, row, k, c in zip(result["frames"], fa.smoothed.probabilities, fa.smoothed.dominant, fa.smoothed.confidence):
        f["smoothed_emotion"] = res.labels[k]
        f["smoothed_confidence"] = round(float(c), 4)
        f["smoothed_scores"] = rounded(row, res.labels)
    return fa


def scores_png(probabilities: dict[str, float], lang: str = "en") -> bytes:
    from . import charts

    return charts.png_bytes(charts.scores_chart(probabilities, lang))


def export_files(result: dict, fa: FrameAnalysis | None, options: AnalysisOptions, lang: str = "en") -> dict:
    """name -> content (str or bytes) of the extra files of an output folder."""
    files: dict[str, str | bytes] = {}
    if fa is not None:
        files["frames.csv"] = exports.frames_csv(fa.raw, fa.labels, fa.smoothed.dominant)
        files.update(exports.segment_files(result["segments"]))
    if options.charts:
        from . import charts

        files["scores.png"] = scores_png(result["probabilities"], lang)
        if fa is not None and len(fa.raw):
            times = np.arange(len(fa.raw)) * FRAME_S
            boundaries = [s.start for s in fa.segments[1:]]
            fig = charts.timeline_chart(times, fa.smoothed.probabilities, fa.labels, fa.smoothed.dominant, boundaries, lang)
            files["timeline.png"] = charts.png_bytes(fig)
    return files
