"""One analysis request, shared by the web page, the REST API and the Gradio API.

decode -> engine.predict -> result.json dict -> output folder. Errors are EmotionAppError with a
code the caller translates; nothing is written unless the whole request succeeded.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .audio import load_audio
from .engine import GRANULARITIES, Engine
from .errors import EmotionAppError
from .outputs import folder_files, write_output_folder
from .timeline import AnalysisOptions, add_to_result, export_files

logger = logging.getLogger(__name__)


class RequestError(EmotionAppError):
    """A request the service refuses before any work (no file, bad option)."""

    code = "bad_request"


@dataclass
class Analysis:
    result: dict  # the content of result.json
    folder: Path
    files: dict[str, Path]  # name -> path in the output folder


def display_name(name: str | None) -> str:
    """The uploaded file's name for result.json and logs: base name only, no control characters."""
    if not name:
        return "<upload>"
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    return clean[:200] or "<upload>"


def analysis_options(**fields) -> AnalysisOptions:
    """AnalysisOptions from user-given fields (see AnalysisOptions.make); a bad value is a RequestError."""
    try:
        return AnalysisOptions.make(**fields)
    except (TypeError, ValueError) as exc:
        raise RequestError(f"Invalid option: {exc}.", "bad_option") from None


def analyze(
    engine: Engine,
    source,
    granularity: str = "utterance",
    extract_embedding: bool = False,
    *,
    outputs_dir: Path,
    name: str | None = None,
    options: AnalysisOptions | None = None,
    lang: str = "en",
) -> Analysis:
    """Analyse one input and write its output folder. `source`: anything load_audio accepts.
    `options`: smoothing and insights of frame mode, charts; `lang`: the charts' language."""
    if source is None:
        raise RequestError("No audio was given: upload or record a file first.", "no_audio")
    if granularity not in GRANULARITIES:
        raise RequestError(f"granularity must be 'utterance' or 'frame', not {granularity!r}.", "bad_granularity")
    t0 = time.perf_counter()
    now = datetime.now()
    shown = display_name(name)
    audio = load_audio(source, max_duration_s=engine.options.max_duration_s, name=shown)
    decoded = time.perf_counter()
    res = engine.predict(audio, granularity, extract_embedding)
    result = res.to_dict()
    result["file"] = shown
    result["timestamp"] = now.isoformat(timespec="seconds")
    options = options or AnalysisOptions()
    frames = add_to_result(result, res, options)
    extra = export_files(result, frames, options, lang)
    result["timings"].update(decode=round(decoded - t0, 4), total=round(time.perf_counter() - t0, 4))
    embedding = res.embedding if extract_embedding else None
    folder = write_output_folder(outputs_dir, result, audio.samples, embedding, now, extra)
    logger.info("%s: %s %.3f -> %s", shown, res.emotion, res.confidence, folder.name)
    return Analysis(result, folder, folder_files(folder))
