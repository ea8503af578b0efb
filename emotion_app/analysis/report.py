"""The one author of result.json: `build_report` turns an engine result into its content.

For every caller (page, Gradio API, REST, CLI, batch JSONL): the engine's result (results.py),
`mixed`, in frame mode the smoothing, segments and summary (frames.py), then the file name and
the timestamp; `Report.files` gives the output folder's extra files (CSV, WebVTT, charts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from ..results import EmotionResult, RecordingResult
from .frames import FrameAnalysis, add_to_result, export_files
from .options import AnalysisOptions


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
