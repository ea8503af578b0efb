"""The input rows and the two stages of the Ray batch (ray_pipeline.py): plain Python, no Ray here.

- `collect_rows` (the driver): the local batch's inputs (`collect_inputs`, same names, same
  order) plus pyarrow URIs (s3://, gs://, file://: a file or a folder's audio files), as rows.
- `decode_rows` (CPU tasks): read each input (a path, an archive member, a pyarrow URI), decode
  and resample it once to 16 kHz mono, and for `--segment vad|window` run the VAD pass and cut the
  segments (`longform.plan_spans` / `cut_segments`), so only speech travels on to the model.
- `Scorer` (one per actor, holding one engine): the model pass and the record, built exactly as
  the local batch builds it (`analysis.build.build_report`; `longform.score_segments` and
  `recording_result` for segmented recordings), so both paths give the same records.

Rows between them are columns of equal length: `samples` (float32, 16 kHz: the whole file, or
its segments one after another), `spans` (int64, the segments' (start, end) pairs, flattened),
`meta` (JSON: the file's AudioInfo, warnings, length in samples and decoding seconds) and `error`
(empty, or the row's error message, in which case the row only passes through).
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from ..analysis.build import build_report
from ..analysis.report import Report
from ..audio.files import is_archive_name, is_audio_name
from ..audio.samples import Audio, AudioInfo, AudioWarning
from ..audio.segmenter import SegmentOptions
from ..audio.source import load_audio, open_source
from ..errors import AudioError, EmotionAppError
from ..longform import Plan, Scan, cut_segments, plan, plan_spans, recording_result, score_segments, sliced, speaker_turns
from ..request import RequestOptions
from ..speakers.options import SpeakerOptions
from ..speakers.turns import TurnsFile
from .inputs import BatchInput, Extractor, _unique, collect_inputs
from .local import named_error

logger = logging.getLogger(__name__)

NO_SAMPLES = np.zeros(0, np.float32)
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
NO_SPANS = np.zeros(0, np.int64)


@dataclass(frozen=True)
class DecodeConfig:
    """What the decode stage needs: the segmentation (None: the file whole), the engine's length
    limit, and Silero's ONNX file when the engine would use it (the ONNX backend's folder)."""

    segment: SegmentOptions | None
    max_duration_s: float
    vad_file: str | None = None
    speakers: SpeakerOptions | None = None  # a conversation: channels and turns are planned here, voices by the actors
    turns: TurnsFile | None = None  # a corpus's RTTM (each file its lines); None: the turns file beside each file


# -- input rows ----------------------------------------------------------------------------------------
def is_uri(path) -> bool:
    return bool(URI.match(str(path)))


def _uri_inputs(uri: str, recursive: bool) -> list[tuple[BatchInput, str]]:
    """(input, uri) for a pyarrow URI (s3://, gs://, hdfs://, file://): a file, or a folder's audio files."""
    from pyarrow import fs as pafs

    try:
        filesystem, path = pafs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            base, root = uri.rstrip("/"), path.rstrip("/")
            listed = filesystem.get_file_info(pafs.FileSelector(path, recursive=recursive))
            files = sorted(f.path for f in listed if f.type == pafs.FileType.File)
            files = [f for f in files if is_audio_name(f)]
            return [(BatchInput(f"{base}/{f[len(root) + 1 :]}"), f"{base}/{f[len(root) + 1 :]}") for f in files]
    except (OSError, ValueError) as exc:
        return [(BatchInput(uri, error=f"{uri}: cannot be listed ({exc})."), "")]
    if info.type == pafs.FileType.NotFound:
        return [(BatchInput(uri, error=f"{uri}: no such file."), "")]
    if is_archive_name(path):
        return [(BatchInput(uri, error=f"{uri}: zip archives are opened from folders only; copy it to a shared folder."), "")]
    return [(BatchInput(uri), uri)]


def _local_inputs(paths: list, recursive: bool) -> list[tuple[BatchInput, str]]:
    return [(item, "") for item in collect_inputs(paths, recursive, absolute=True)] if paths else []


def collect_rows(paths: Iterable, recursive: bool = False, absolute: bool = False) -> list[dict]:
    """The pipeline's input rows, in order, named as the local batch names them (`collect_inputs`
    with absolute names); URIs are named by themselves. `absolute`: paths are made absolute (on a
    cluster; a local Ray's workers share the driver's folder, so paths stay as given there)."""
    items: list[tuple[BatchInput, str]] = []
    pending: list = []  # local paths, listed together as the local batch lists them
    for p in paths:
        if is_uri(p):
            items += _local_inputs(pending, recursive) + _uri_inputs(str(p), recursive)
            pending = []
        else:
            pending.append(p)
    items += _local_inputs(pending, recursive)
    _unique([item for item, _ in items])

    def where(p: Path | None) -> str:
        return "" if p is None else str(p.absolute() if absolute else p)

    return [
        {
            "index": k,
            "name": item.name,
            "path": where(item.path),
            "uri": uri,
            "archive": where(item.archive),
            "member": pickle.dumps(item.member) if item.member is not None else b"",
            "error": item.error or "",
        }
        for k, (item, uri) in enumerate(items)
    ]


class _RowError(Exception):
    """A complete error message for the row (archive members: the extractor's own wording)."""


def batch_rows(batch: dict) -> list[dict]:
    """A Ray Data batch (column -> array) as a list of row dicts."""
    keys = list(batch)
    return [dict(zip(keys, values)) for values in zip(*(batch[k] for k in keys))]


@contextmanager
def _opened(row: dict) -> Iterator:
    """The row's input for load_audio: a path as given, an archive member copied (streamed, checked
    as the local batch's Extractor checks it) into a temporary folder, or a pyarrow file."""
    if row["uri"]:
        from pyarrow import fs as pafs

        try:
            filesystem, path = pafs.FileSystem.from_uri(row["uri"])
            stream = filesystem.open_input_file(path)
        except (OSError, ValueError) as exc:
            raise AudioError(f"{row['uri']}: cannot be read ({exc}).", "not_found") from None
        with stream:
            yield stream
    elif row["member"]:
        with tempfile.TemporaryDirectory(prefix="emotion_app_member_") as tmp:
            item = BatchInput(row["name"], archive=Path(row["archive"]), member=pickle.loads(row["member"]))
            Extractor(Path(tmp)).materialise(item)
            if item.error:
                raise _RowError(item.error)
            yield item.path
    else:
        yield row["path"]


def _decode_one(row: dict, config: DecodeConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """(samples, spans, meta) of one input; raises AudioError, _RowError."""
    t0 = time.perf_counter()
    who: dict = {}
    with _opened(row) as source:
        if config.speakers is not None and config.segment is not None:  # a conversation: planned from the file
            src = open_source(source, name=row["name"], max_duration_s=config.max_duration_s)
            samples, spans, total, who = _conversation(src, row, config)
            info, warnings = src.info, src.warnings
        else:
            audio = load_audio(source, name=row["name"], max_duration_s=config.max_duration_s)
            samples, spans, total, info, warnings = audio.samples, NO_SPANS, len(audio.samples), audio.info, audio.warnings
            if config.segment is not None:  # pass 1 (VAD) and the cutting, both from memory: decoded once
                src = open_source(audio)
                _, planned, vad = plan_spans(src, config.segment, vad_file=Path(config.vad_file) if config.vad_file else None)
                pieces = list(cut_segments(src, planned, vad))
                samples = np.concatenate([x for _, x in pieces]) if pieces else NO_SAMPLES
                spans = np.array([span for span, _ in pieces], dtype=np.int64).reshape(-1)
    meta = {
        "info": info.to_dict(),
        "warnings": [asdict(w) for w in warnings],
        "total": total,
        "decode_s": time.perf_counter() - t0,
        "who": who,
    }
    return samples, spans, meta


def _conversation(src, row: dict, config: DecodeConfig) -> tuple[np.ndarray, np.ndarray, int, dict]:
    """A conversation's segments: per channel, or the turns beside the file, planned and cut here;
    for auto/N the speech segments, whose voices the actors tell apart. (samples, spans, total, who)."""
    speakers, turns = config.speakers, config.turns
    if speakers.mode == "turns" and turns is None:
        if not row["path"]:
            raise _RowError(f"{row['name']}: turns are read beside local files only, not inside archives or from URIs.")
        turns = TurnsFile.beside(Path(row["path"]), row["name"])
    vad_file = Path(config.vad_file) if config.vad_file else None
    scan, planned = plan(src, config.segment, speakers, turns, vad_file=vad_file)
    pieces = list(cut_segments(src, planned.spans, planned.tighten, planned.channels))
    samples = np.concatenate([x for _, x in pieces]) if pieces else NO_SAMPLES
    spans = np.array([span for span, _ in pieces], dtype=np.int64).reshape(-1)
    who = {"speakers": planned.speakers, "channels": planned.channels, "texts": planned.texts, "how": planned.diarization}
    return samples, spans, scan.total, who


def decode_rows(batch: dict, config: DecodeConfig) -> Iterator[dict]:
    """The decode stage: one output batch per input, so a task holds one decoded file at a time.
    Every failure is the row's error; nothing here fails the task."""
    for row in batch_rows(batch):
        samples, spans, meta, error = NO_SAMPLES, NO_SPANS, "{}", str(row["error"] or "")
        if not error:
            try:
                samples, spans, info = _decode_one(row, config)
                meta = json.dumps(info)
            except _RowError as exc:
                error = str(exc)
            except EmotionAppError as exc:
                error = named_error(row["name"], exc.message, exc.code)
            except Exception as exc:  # a decoder bug must not stop a corpus: the row says what happened
                logger.warning("%s: unexpected failure while decoding", row["name"], exc_info=True)
                error = f"{row['name']}: could not be decoded ({type(exc).__name__}: {exc})."
        yield {
            "index": np.array([row["index"]], np.int64),
            "name": np.array([row["name"]], object),
            "error": np.array([error], object),
            "samples": [samples],
            "spans": [spans],
            "meta": np.array([meta], object),
        }


def _scan(meta: dict) -> Scan:
    warnings = [AudioWarning(**w) for w in meta["warnings"]]
    return Scan(meta["total"], AudioInfo(**meta["info"]), warnings, None)


class Scorer:
    """The model stage: one engine per actor, loaded once; a call scores a batch of decoded rows
    (clips batched and sorted by length by `Engine.predict_batch`) and returns one shard line per row."""

    def __init__(self, engine_options: dict, request: RequestOptions):
        from ..engine import Engine

        self.engine = Engine(engine_options)
        self.request = request

    def __call__(self, batch: dict) -> dict:
        rows = batch_rows(batch)
        for row in rows:
            row["meta"] = json.loads(row["meta"])
        now = datetime.now()
        outcomes = self._recordings(rows, now) if self.request.segment is not None else self._clips(rows, now)
        return _table(rows, outcomes)

    def _clips(self, rows: list[dict], now: datetime) -> list[tuple[Report | None, str | None]]:
        out: list[tuple[Report | None, str | None]] = [(None, row["error"] or None) for row in rows]
        ready = [k for k, row in enumerate(rows) if not row["error"]]
        audios = [_audio(rows[k]) for k in ready]
        names = [rows[k]["name"] for k in ready]
        request = self.request
        results = self.engine.predict_batch(
            audios, granularity=request.granularity, errors="return", names=names, heads=request.heads, labels=request.labels
        )
        for k, res in zip(ready, results):
            name = rows[k]["name"]
            if isinstance(res, EmotionAppError):
                out[k] = (None, named_error(name, res.message, res.code))
                continue
            decode_s = rows[k]["meta"]["decode_s"]  # spent in the decode stage, as the local batch counts it
            res.timings["decode"] = res.timings.get("decode", 0.0) + decode_s
            res.timings["total"] = res.timings.get("total", 0.0) + decode_s
            out[k] = (build_report(res, self.request.analysis, file=name, timestamp=now), None)
        return out

    def _recordings(self, rows: list[dict], now: datetime) -> list[tuple[Report | None, str | None]]:
        out: list[tuple[Report | None, str | None]] = []
        for row in rows:
            if row["error"]:
                out.append((None, row["error"]))
                continue
            t0, name = time.perf_counter(), row["name"]
            spans = [tuple(int(v) for v in pair) for pair in np.asarray(row["spans"]).reshape(-1, 2)]
            bounds = np.cumsum([0] + [b - a for a, b in spans])
            pieces = [(span, row["samples"][bounds[i] : bounds[i + 1]]) for i, span in enumerate(spans)]
            try:
                planned = self._who(row["meta"].get("who") or {}, pieces)
                if planned is not None and self.request.speakers.diarize:
                    pieces = list(sliced(pieces, planned.spans))
                used, results = score_segments(
                    self.engine, pieces, len(pieces), name, heads=self.request.heads, labels=self.request.labels
                )
            except EmotionAppError as exc:
                out.append((None, named_error(name, exc.message, exc.code)))
                continue
            seconds = row["meta"]["decode_s"] + time.perf_counter() - t0
            rec = recording_result(
                self.engine, self.request.segment, _scan(row["meta"]), used, results, seconds, planned, self.request.labels
            )
            out.append((build_report(rec, self.request.analysis, file=name, timestamp=now), None))
        return out

    def _who(self, who: dict, pieces) -> Plan | None:
        """The plan of a conversation: the decode stage's (channels, turns), or the voices told apart here."""
        speakers = self.request.speakers
        if speakers is None:
            return None
        if speakers.diarize:
            return speaker_turns(self.engine, pieces, len(pieces), speakers)
        channels = who.get("channels")
        return Plan([span for span, _ in pieces], None, channels, who.get("speakers"), who.get("texts"), who.get("how"))


def _audio(row: dict) -> Audio:
    scan = _scan(row["meta"])
    return Audio(np.asarray(row["samples"], dtype=np.float32), scan.info, scan.warnings)


def _table(rows: list[dict], outcomes: list[tuple[Report | None, str | None]]) -> dict:
    """The stage's output: per row its index, name, error, duration and emotion (for the summary),
    and `line`, the shard line {"index", "file", "error", "result"} the driver writes as it is."""
    lines, durations, emotions = [], [], []
    for row, (report, error) in zip(rows, outcomes):
        result = report.to_json() if report is not None else None
        record = {"index": int(row["index"]), "file": row["name"], "error": error, "result": result}
        lines.append(json.dumps(record, ensure_ascii=False))
        durations.append(report.duration_s if report is not None else 0.0)
        emotions.append(str(report.emotion) if report is not None else "")
    return {
        "index": np.array([int(row["index"]) for row in rows], np.int64),
        "name": np.array([row["name"] for row in rows], object),
        "error": np.array([error or "" for _, error in outcomes], object),
        "duration_s": np.array(durations, np.float64),
        "emotion": np.array(emotions, object),
        "line": np.array(lines, object),
    }
