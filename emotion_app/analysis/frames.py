"""A result's frame analysis: smoothing, segments, summary, and the files they export.

Used alike by the page, the REST API, the CLI and batches through `build.build_report`:
`analyze_frames` reads the frames (report.py writes the reading into the Report),
`export_files` gives the extra files of an output folder. Pure functions on arrays (numpy; the
charts with PIL and matplotlib's text, imported only when charts are drawn: charts_png.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..constants import FRAME_S
from . import charts_png, exports, insights
from .options import AnalysisOptions
from .smoothing import Smoothed, smooth


@dataclass
class FrameAnalysis:
    labels: tuple[str, ...]
    raw: np.ndarray  # (T, V) engine frame probabilities
    smoothed: Smoothed
    segments: list[insights.Segment]
    summary: dict


def analyze_frames(frame_probabilities: np.ndarray, labels, options: AnalysisOptions) -> FrameAnalysis:
    """(T, V) frame probabilities -> smoothed frames, segments and summary."""
    sm = smooth(frame_probabilities, options.smoothing)
    return FrameAnalysis(
        tuple(labels),
        frame_probabilities,
        sm,
        insights.segments(sm, labels),
        insights.summary(sm, labels, utterance_from=options.utterance_from),
    )


def export_files(
    fa: FrameAnalysis | None,
    segments: list[dict] | None,
    probabilities: dict[str, float],
    options: AnalysisOptions,
    lang: str = "en",
) -> dict:
    """name -> content (str or bytes) of the extra files of an output folder: `segments` as result.json
    has them, `probabilities` the file-level ones (empty: no speech)."""
    files: dict[str, str | bytes] = {}
    if fa is not None:
        files["frames.csv"] = exports.frames_csv(fa.raw, fa.labels, fa.smoothed.dominant)
    if segments is not None:
        files.update(exports.segment_files(segments))
    if options.charts and probabilities:
        files["scores.png"] = charts_png.scores_png(probabilities, lang)
        if fa is not None and len(fa.raw):
            times = np.arange(len(fa.raw)) * FRAME_S
            boundaries = [s.start for s in fa.segments[1:]]
            files["timeline.png"] = charts_png.timeline_png(
                times, fa.smoothed.probabilities, fa.labels, fa.smoothed.dominant, boundaries, lang
            )
    return files
