"""One analysis request, shared by the web page, the REST API and the Gradio API.

decode -> engine -> results.build_report -> output folder. Errors are EmotionAppError with a code
the caller translates; nothing is written unless the whole request succeeded.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import tempfile
import time
import unicodedata
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from .analysis.build import build_report
from .analysis.options import AnalysisOptions
from .analysis.report import Report
from .audio.source import Source, open_source
from .constants import SAMPLE_RATE
from .engine import Engine
from .errors import EmotionAppError
from .memory import MemoryBudget, estimate_mb, request_kind, source_seconds
from .outputs import download_urls, folder_files, result_text, temp_folder, write_output_folder
from .request import RequestOptions
from .results import EmotionResult, RecordingResult

logger = logging.getLogger(__name__)

Progress = Callable[[float, str], None]


class RequestError(EmotionAppError):
    """A request the service refuses before any work (no file)."""

    code = "bad_request"


@dataclass
class Analysis:
    """One finished request: its typed `report` (what the page reads), its output folder and files."""

    report: Report
    folder: Path
    files: dict[str, Path]  # name -> path in the output folder
    written: dict | None = field(default=None, repr=False, compare=False)  # result.json's content, as written

    @functools.cached_property
    def result(self) -> dict:
        """result.json's content (Report.to_json), output_dir included."""
        return self.written if self.written is not None else self.report.to_json()

    @property
    def frames(self) -> np.ndarray | None:
        """(T, V) frame probabilities in frame mode, kept for `resmooth`; else None."""
        return self.report.result.frame_probabilities if self.report.frame_analysis is not None else None

    def response(self) -> dict:
        """What the APIs return: result.json's content plus the download URL of each file."""
        return {**self.result, "files": download_urls(self.folder, self.files)}


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


def open_input(engine: Engine, source, name: str | None = None) -> Source:
    """A request's input, opened once: anything open_source accepts, named for result.json
    (`display_name`), its header read (`declared_s`: the page's time-left estimate) and left open for
    the analysis, which reads it without opening it again. Header faults raise AudioError here."""
    require_source(source)
    return open_source(source, max_duration_s=engine.options.max_duration_s, name=display_name(name)).probe()


def analyze(
    engine: Engine,
    source,
    request: RequestOptions | None = None,
    *,
    outputs_dir: Path,
    name: str | None = None,
    lang: str = "en",
    progress: Progress | None = None,
    budget: MemoryBudget | None = None,
) -> Analysis:
    """Analyse one input (a Source from `open_input`, or anything open_source accepts) as `request`
    asks (a clip, or a long recording segmented by VAD or windows) and write its output folder.
    `lang`: the charts' language; `progress(fraction, stage)`; `budget`: the server's memory budget,
    from which the request's estimated peak is held while it runs (it may wait for it, or be
    refused: memory.MemoryBusy)."""
    t0 = time.perf_counter()
    Path(outputs_dir).mkdir(parents=True, exist_ok=True)
    src = source if isinstance(source, Source) else open_input(engine, source, name)
    request = request or RequestOptions()
    try:
        with _held(budget, request_kind(request), src, engine):
            if request.segment is not None:
                return _analyze_recording(engine, src, request, outputs_dir=outputs_dir, lang=lang, progress=progress)
            return _analyze_clip(engine, src, request, outputs_dir=outputs_dir, lang=lang, progress=progress, t0=t0)
    finally:
        src.close()


def _held(budget: MemoryBudget | None, kind: str, src: Source, engine: Engine):
    """The memory a request of `kind` on `src` holds from `budget` while it runs (nothing without one)."""
    if budget is None:
        return nullcontext()
    seconds = source_seconds(src, engine.options.max_duration_s)
    return budget.hold(estimate_mb(kind, seconds), f"{src.name} ({kind}, {seconds:.0f} s)")


def _analyze_clip(engine, src: Source, request: RequestOptions, *, outputs_dir, lang, progress, t0) -> Analysis:
    now = datetime.now()
    audio = src.read()
    decoded = time.perf_counter()
    if progress:
        progress(0.05, "model")
    res = engine.predict(
        audio,
        granularity=request.granularity,
        extract_embedding=request.extract_embedding,
        heads=request.heads,
        labels=request.labels,
    )
    report = build_report(res, request.analysis, file=src.name, timestamp=now, embedding=request.extract_embedding)
    extra = report.files(lang)
    res.timings.update(decode=decoded - t0, total=time.perf_counter() - t0)  # kept for re-readings (resmooth)
    report = report.timed(res.timings)
    content = report.to_json()
    folder = write_output_folder(outputs_dir, content, audio.samples, report.embedding, now, extra)
    return _finished(report, folder, content)


def _finished(report: Report, folder: Path, content: dict | None = None) -> Analysis:
    """The Analysis of a written folder; the report keeps no embedding (it is in embedding.npy).
    `content`: the report's to_json as written (not made again for the response: a frame result's
    thousands of frames)."""
    kept = replace(report.result, embedding=None) if isinstance(report.result, EmotionResult) else report.result
    report = replace(report, output_dir=folder.name, embedding=None, result=kept)
    logger.info("%s: %s %.3f -> %s", report.file, report.emotion, report.confidence or 0.0, folder.name)
    written = None if content is None else {**content, "output_dir": folder.name}
    return Analysis(report, folder, folder_files(folder), written)


def segment_clip(analysis: Analysis, start: float, end: float, channel: int | None = None) -> tuple[int, np.ndarray] | None:
    """(16000, int16 samples) of [start, end) s of an analysis's processed audio, for a player (of
    `channel`, from 1, when the audio kept its channels); None when its output folder is gone
    (deleted after --keep-hours)."""
    import soundfile as sf

    path = analysis.folder / "processed_audio.wav"
    if not path.is_file():
        return None
    samples, rate = sf.read(path, start=int(start * SAMPLE_RATE), stop=int(end * SAMPLE_RATE), dtype="int16")
    if channel is not None and samples.ndim == 2:
        samples = np.ascontiguousarray(samples[:, channel - 1])
    return rate, samples


def rename_speakers(analysis: Analysis, names, *, outputs_dir: Path, lang: str = "en") -> Analysis:
    """A conversation's speakers renamed in order of first appearance (`names`: "Agent,Customer" or a
    list), with no model call: a new output folder (result.json and every file with the new names;
    the processed audio and the embedding copied from the first folder)."""
    from .speakers.options import parse_names

    rec = analysis.report.result
    if not isinstance(rec, RecordingResult) or not rec.conversation:
        raise RequestError("Only a recording analysed with speakers can have its speakers renamed.", "bad_request")
    new = parse_names(names)
    old = list(dict.fromkeys(n for n in rec.speakers if n is not None))
    mapping = {o: (new[i] if i < len(new) else o) for i, o in enumerate(old)}
    if len(set(mapping.values())) != len(mapping):
        raise RequestError(f"Two speakers would share a name: {', '.join(mapping.values())}; give each its own.", "bad_option")
    how = dict(rec.diarization or {}, speakers=[mapping.get(n, n) for n in (rec.diarization or {}).get("speakers", old)])
    renamed = replace(rec, speakers=[mapping.get(n, n) if n is not None else None for n in rec.speakers], diarization=how)
    kept = analysis.report
    return _rewritten(analysis, build_report(renamed, kept.options, file=kept.file, timestamp=kept.timestamp), outputs_dir, lang)


def _rewritten(analysis: Analysis, report: Report, outputs_dir: Path, lang: str) -> Analysis:
    """`report` written into a new output folder beside `analysis`'s, whose processed audio and
    embedding it copies (a re-reading: no model call)."""
    audio = analysis.folder / "processed_audio.wav"
    if not audio.is_file():
        raise RequestError("That result's folder has been deleted (results are kept for a while); press Start again.")
    embedding = analysis.folder / "embedding.npy"
    with temp_folder(outputs_dir) as tmp:
        shutil.copyfile(audio, tmp / "processed_audio.wav")
        extra = report.files(lang)
        embedded = np.load(embedding) if embedding.is_file() else None
        content = report.to_json()
        folder = write_output_folder(outputs_dir, content, tmp / "processed_audio.wav", embedded, datetime.now(), extra, tmp=tmp)
    return _finished(report, folder, content)


def resmooth(analysis: Analysis, options: AnalysisOptions, *, outputs_dir: Path, lang: str = "en") -> Analysis:
    """A frame-mode analysis read again with other `options` from its kept frame probabilities, with
    no model call: a new output folder (result.json, segments, exports, charts; the processed audio
    and the embedding copied from the first folder). Used when the page's smoothing changes: only
    `options.smoothing` is read; the rest (sentiment, mixed threshold, charts) stays as first asked."""
    if analysis.frames is None:
        raise RequestError("Only a frame-granularity result can be smoothed again; press Start.", "bad_request")
    kept = analysis.report
    options = replace(kept.options, smoothing=options.smoothing)
    return _rewritten(analysis, build_report(kept.result, options, file=kept.file, timestamp=kept.timestamp), outputs_dir, lang)


def _analyze_recording(engine, src: Source, request: RequestOptions, *, outputs_dir, lang, progress) -> Analysis:
    """A long recording: one result per speech segment (or window); the processed audio is streamed
    into the output folder while the VAD runs."""
    from .longform import analyze_long

    now = datetime.now()
    shown = src.name
    with temp_folder(outputs_dir) as tmp:
        rec = analyze_long(
            engine, src, request.segment, progress=progress, audio_out=tmp / "processed_audio.wav",
            extract_embedding=request.extract_embedding, heads=request.heads, speakers=request.speakers, turns=request.turns,
            labels=request.labels,
        )  # fmt: skip
        report = build_report(rec, request.analysis, file=shown, timestamp=now, embedding=request.extract_embedding)
        content = report.to_json()
        folder = write_output_folder(
            outputs_dir, content, tmp / "processed_audio.wav", report.embedding, now, report.files(lang), tmp=tmp
        )
    logger.info("%s: %d segments", shown, len(rec.spans))
    return _finished(report, folder, content)


def analyze_batch(
    engine: Engine,
    paths: list,
    request: RequestOptions | None = None,
    *,
    outputs_dir: Path,
    names: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    budget: MemoryBudget | None = None,
) -> tuple[list[dict], Path]:
    """Many files or zips into one output folder: results.csv, results.jsonl,
    files/NNNN_<name>/result.json per row, and results.zip holding all of it. `names`: the shown
    name of each path. `progress(done, total)` after each row. Returns (table rows, folder); a row
    holds tables.COLUMNS and `error_code` (the error's code, for translation). `budget`: as for
    `analyze`, the batch holding the estimate of its largest group of files."""
    from .batch.inputs import Extractor, collect_inputs
    from .batch.local import iter_batch
    from .batch.tables import columns_for, rows_csv, table_row, zip_bytes

    request = request or RequestOptions()
    now = datetime.now()
    shown = [display_name(n) for n in (names or [Path(p).name for p in paths])]
    inputs = collect_inputs(paths, names=shown)
    group = max(1, engine.batch_size)
    held = nullcontext()
    if budget is not None:
        seconds = _group_seconds(engine, inputs, group)
        held = budget.hold(estimate_mb("batch", seconds), f"a batch of {len(inputs)} files ({seconds:.0f} s a group)")
    rows: list[dict] = []
    with held, temp_folder(outputs_dir) as tmp:
        extra: dict[str, str] = {}
        jsonl = []
        with tempfile.TemporaryDirectory(prefix="emotion_app_zip_") as zips:
            # groups of one model batch, so that progress counts files as they finish
            stream = iter_batch(engine, inputs, request, extractor=Extractor(Path(zips)), group=group)
            for i, report, error in stream:
                name = inputs[i].name
                rows.append({**table_row(name, report, error), "error_code": getattr(error, "code", None) if error else None})
                record = report.to_json() if report is not None else {"file": name, "error": error}
                jsonl.append(json.dumps(record, ensure_ascii=False))
                extra[f"files/{i + 1:04d}_{display_name(name)}/result.json"] = result_text(record)
                if progress:
                    progress(len(rows), len(inputs))
        extra["results.jsonl"] = "\n".join(jsonl) + "\n"
        extra["results.csv"] = rows_csv(rows, columns_for(request))
        folder = write_output_folder(outputs_dir, None, None, None, now, extra | {"results.zip": zip_bytes(extra)}, tmp=tmp)
    return rows, folder


def _group_seconds(engine: Engine, inputs: list, group: int) -> float:
    """The audio of a batch's `group` longest inputs, for its memory estimate: a file's declared
    duration (its header, read here), an archive member's size as 16-bit 16 kHz audio."""
    limit = engine.options.max_duration_s
    seconds = []
    for item in inputs:
        if item.member is not None:
            seconds.append(min(item.member.file_size / (2 * SAMPLE_RATE), limit))
        elif item.path is not None and item.error is None:
            try:
                src = open_source(item.path, max_duration_s=limit).probe()
            except EmotionAppError:
                continue  # its row will say why
            try:
                seconds.append(source_seconds(src, limit))
            finally:
                src.close()
    return sum(sorted(seconds, reverse=True)[:group])
