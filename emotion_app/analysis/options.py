"""How a result's frames are read: `AnalysisOptions` (smoothing, insights, charts) and its parser."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..fields import checked, given, parse_bool, parse_choice, parse_float, parse_int
from ..sentiment import Sentiment
from . import insights
from .smoothing import SmoothingOptions

SMOOTHING_FIELDS = ("method", "window", "alpha", "zero_phase", "min_duration_s", "utterance_from")
FRAME_FIELDS = (*SMOOTHING_FIELDS, "max_inline_frames")  # options that only frame granularity reads
MAX_INLINE_FRAMES = 15_000  # 5 minutes at 50 Hz: longer results link frames.csv instead of inlining frames


@dataclass(frozen=True)
class AnalysisOptions:
    """How frames are read. The exact utterance `probabilities` never change with these."""

    smoothing: SmoothingOptions = field(default_factory=SmoothingOptions)
    mixed_threshold: float = insights.MIXED_THRESHOLD
    utterance_from: str = "vote"  # utterance reading from smoothed frames: vote or mean
    charts: bool = True  # save scores.png (and timeline.png in frame mode) into the output folder
    max_inline_frames: int = MAX_INLINE_FRAMES  # frames inlined in result.json; beyond: frames.csv only; 0: all
    sentiment: Sentiment | None = None  # a sentiment block beside each reading (sentiment.py); None: none

    FIELDS = (*FRAME_FIELDS, "mixed_threshold", "charts", "sentiment", "sentiment_map")

    def __post_init__(self):
        if not 0 <= self.mixed_threshold <= 1:
            raise ValueError(f"mixed_threshold must be from 0 to 1, not {self.mixed_threshold!r}")
        if self.utterance_from not in insights.UTTERANCE_FROM:
            raise ValueError(f"utterance_from must be 'vote' or 'mean', not {self.utterance_from!r}")
        if self.max_inline_frames < 0:
            raise ValueError(f"max_inline_frames must be 0 (no limit) or more, not {self.max_inline_frames!r}")

    @classmethod
    def from_fields(cls, mapping: Mapping | None = None) -> AnalysisOptions:
        """From form fields or flags (strings or typed values); missing fields keep the defaults.
        Names: method, window, alpha, zero_phase, min_duration_s, utterance_from, max_inline_frames,
        mixed_threshold, charts, sentiment, sentiment_map."""
        v = given(mapping, cls.FIELDS)
        d, ds = cls(), SmoothingOptions()
        smoothing = checked(
            SmoothingOptions,
            str(v.get("method", ds.method)),
            parse_int(v.get("window", ds.window), "window"),
            parse_float(v.get("alpha", ds.alpha), "alpha"),
            parse_bool(v.get("zero_phase", ds.zero_phase), "zero_phase"),
            parse_float(v.get("min_duration_s", ds.min_duration_s), "min_duration_s"),
        )
        return checked(
            cls,
            smoothing,
            parse_float(v.get("mixed_threshold", d.mixed_threshold), "mixed_threshold"),
            parse_choice(v.get("utterance_from", d.utterance_from), "utterance_from", insights.UTTERANCE_FROM),
            parse_bool(v.get("charts", d.charts), "charts"),
            parse_int(v.get("max_inline_frames", d.max_inline_frames), "max_inline_frames"),
            Sentiment.parse(v.get("sentiment"), v.get("sentiment_map")),
        )

    def to_dict(self) -> dict:
        return {
            "smoothing": self.smoothing.to_dict(),
            "mixed_threshold": self.mixed_threshold,
            "utterance_from": self.utterance_from,
            "charts": self.charts,
            "max_inline_frames": self.max_inline_frames,
            "sentiment": self.sentiment.to_dict() if self.sentiment is not None else None,
        }
