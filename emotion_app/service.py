"""One analysis request, shared by the web page, the REST API and the Gradio API.

decode -> engine.predict -> result.json dict -> output folder. Errors are EmotionAppError with a
code the caller translates; nothing is written unless the whole request succeeded.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .audio import load_audio
from .batch import BatchOptions, iter_batch, rows_csv, table_row, zip_bytes
from .engine import GRANULARITIES, Engine
from .errors import EmotionAppError
from .exports import segment_files
from .longform import analyze_long
from .outputs import download_urls, folder_files, new_temp_folder, write_output_folder
from .segmenter import SegmentOptions
from .timeline import AnalysisOptions, add_to_result, export_files, scores_png

logger = logging.getLogger(__name__)


class RequestError(EmotionAppError):
    """A request the service refuses before any work (no file, bad option)."""

    code = "bad_request"


@dataclass
class Analysis:
    result: dict  # the content of result.json
    folder: Path
    files: dict[str, Path]  # name -> path in the output folder

    def response(self) -> dict:
        """What the APIs return: result.json's content plus the download URL of each file."""
        return {**self.result, "files": download_urls(self.folder.name, self.files)}


def require_source(source) -> None:
    if source is None:
        raise RequestError("No audio was given: upload or record a file first.", "no_audio")


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


def segment_options(mode: str, **fields) -> SegmentOptions:
    """SegmentOptions from user-given fields (numbers may be strings); a bad value is a RequestError."""
    try:
        return SegmentOptions(str(mode), **{k: float(v) for k, v in fields.items()})
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
    require_source(source)
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


def analyze_recording(
    engine: Engine,
    source,
    segment: SegmentOptions,
    *,
    outputs_dir: Path,
    name: str | None = None,
    progress=None,
    lang: str = "en",
    charts: bool = True,
) -> Analysis:
    """A long recording: one result per speech segment (or window); writes the output folder with
    the processed audio (streamed), segments as CSV/JSON/WebVTT and the overall scores chart."""
    require_source(source)
    now = datetime.now()
    shown = display_name(name)
    tmp = new_temp_folder(outputs_dir)
    try:
        result = analyze_long(engine, source, segment, name=shown, progress=progress, audio_out=tmp / "processed_audio.wav")
        result["file"] = shown
        result["timestamp"] = now.isoformat(timespec="seconds")
        extra = segment_files(result["segments"])
        if charts and result["probabilities"]:
            extra["scores.png"] = scores_png(result["probabilities"], lang)
        folder = write_output_folder(outputs_dir, result, tmp / "processed_audio.wav", None, now, extra, tmp=tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("%s: %d segments -> %s", shown, len(result["segments"]), folder.name)
    return Analysis(result, folder, folder_files(folder))


def analyze_batch(
    engine: Engine,
    paths: list,
    options: BatchOptions,
    *,
    outputs_dir: Path,
    names: list[str] | None = None,
    progress=None,
) -> tuple[list[dict], Path]:
    """Many files into one output folder: results.csv, results.jsonl, files/NNN_<name>/result.json
    per file, and results.zip holding all of it. Returns (table rows, folder)."""
    now = datetime.now()
    names = [" / ".join(display_name(part) for part in n.split("/")) for n in (names or [Path(p).name for p in paths])]
    tmp = new_temp_folder(outputs_dir)
    rows: list[dict] = []
    try:
        extra: dict[str, str] = {}
        jsonl = []
        for i, result, error in iter_batch(engine, [Path(p) for p in paths], options, names, progress):
            rows.append(table_row(names[i], result, error))
            record = result if result is not None else {"file": names[i], "error": error}
            jsonl.append(json.dumps(record, ensure_ascii=False))
            extra[f"files/{i + 1:04d}_{display_name(names[i])}/result.json"] = json.dumps(record, ensure_ascii=False, indent=2)
        extra["results.jsonl"] = "\n".join(jsonl) + "\n"
        extra["results.csv"] = rows_csv(rows)
        folder = write_output_folder(outputs_dir, None, None, None, now, extra | {"results.zip": zip_bytes(extra)}, tmp=tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return rows, folder
