"""Many files: collect them (folders, zips), run them batched, write a results table, resume.

Used by `python -m emotion_app batch` and the page's batch tab. One bad file becomes an error in
its row and never stops the batch.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .constants import LABEL_KEYS
from .engine import Engine
from .errors import EmotionAppError
from .longform import analyze_long
from .segmenter import SegmentOptions
from .timeline import AnalysisOptions, add_to_result

logger = logging.getLogger(__name__)

AUDIO_EXTS = {
    ".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".oga", ".opus", ".webm",
    ".aiff", ".aif", ".mp4", ".mkv", ".mov", ".wma", ".amr",
}  # fmt: skip
COLUMNS = ["file", "duration_s", "emotion", "confidence", *LABEL_KEYS, "error"]
MAX_ZIP_FILES = 10_000
MAX_ZIP_BYTES = 8 * 1024**3  # uncompressed; a zip claiming more is refused


@dataclass(frozen=True)
class BatchOptions:
    granularity: str = "utterance"
    segment: SegmentOptions | None = None  # None: each file whole (long files are chunked)
    analysis: AnalysisOptions = field(default_factory=lambda: AnalysisOptions(charts=False))
    group: int = 32  # files decoded and sent to the engine together (sorted by length inside)


def extract_zip(path: Path, dest: Path) -> list[Path]:
    """The audio files of a zip archive, extracted under `dest` (member paths made safe)."""
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise EmotionAppError(f"{path.name}: not a valid zip archive.", "bad_zip") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir() and PurePosixPath(m.filename).suffix.lower() in AUDIO_EXTS]
        if len(members) > MAX_ZIP_FILES or sum(m.file_size for m in members) > MAX_ZIP_BYTES:
            raise EmotionAppError(f"{path.name}: the archive is too large ({len(members)} audio files).", "too_large")
        out = []
        for i, m in enumerate(members):
            parts = [p for p in PurePosixPath(m.filename.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
            target = dest / f"{i:05d}" / Path(*parts[-1:])  # one folder per member: no clashes, no escapes
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(m) as src, open(target, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            out.append(target)
        return out


def collect_inputs(paths: Iterable, recursive: bool = False, extract_dir: Path | None = None) -> list[Path]:
    """Files as given (a bad one fails in its row), the audio files of folders (with subfolders
    when `recursive`), and the audio files inside zip archives (extracted into `extract_dir`)."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            files += sorted(f for f in p.glob(pattern) if f.is_file() and f.suffix.lower() in AUDIO_EXTS)
        elif p.suffix.lower() == ".zip" and extract_dir is not None:
            files += extract_zip(p, Path(extract_dir) / p.stem)
        else:
            files.append(p)
    return files


def input_names(files: list[Path], extract_dir: Path | None, absolute: bool = False) -> list[str]:
    """How each collected file is named in results: a zip member as `<archive>.zip/<member>`, any
    other file by its absolute path (`absolute`) or its file name."""
    base = str(extract_dir) if extract_dir is not None else None
    return [
        f"{f.parent.parent.name}.zip/{f.name}" if base and str(f).startswith(base) else (str(f.resolve()) if absolute else f.name)
        for f in files
    ]


def table_row(file: str, result: dict | None, error: str | None) -> dict:
    row = dict.fromkeys(COLUMNS, "")
    row["file"] = file
    if result is not None:
        row.update(duration_s=result["duration_s"], emotion=result["emotion"] or "", confidence=result["confidence"] or "")
        row.update(result.get("scores") or {})
    row["error"] = (error or "").replace("\n", " ")
    return row


def iter_batch(
    engine: Engine,
    files: list[Path],
    options: BatchOptions,
    names: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, dict | None, str | None]]:
    """(index, result dict or None, error or None) per file, in input order, group by group."""
    names = names or [str(f) for f in files]
    if options.segment is not None:
        for i, f in enumerate(files):
            try:
                yield i, analyze_long(engine, f, options.segment, name=names[i]), None
            except EmotionAppError as exc:
                yield i, None, exc.message
            if progress:
                progress(1)
        return
    for lo in range(0, len(files), options.group):
        idx = range(lo, min(lo + options.group, len(files)))
        outs = engine.predict_batch([files[i] for i in idx], options.granularity, errors="return", names=[names[i] for i in idx])
        for i, res in zip(idx, outs):
            if isinstance(res, EmotionAppError):
                yield i, None, res.message if res.message.startswith(names[i]) else f"{names[i]}: {res.message}"
            else:
                out = res.to_dict()
                out["file"] = names[i]
                add_to_result(out, res, options.analysis)
                yield i, out, None
            if progress:
                progress(1)


def rows_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def zip_bytes(files: dict[str, str | bytes]) -> bytes:
    """A zip archive of name -> content."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


class ResultsWriter:
    """Appends one record per file to `results.csv` or `results.jsonl` in `out_dir`, flushed as
    it goes. `done` holds the files that already succeeded there (for resuming); earlier failed
    records are dropped, since those files run again."""

    def __init__(self, out_dir: Path, fmt: str = "csv", overwrite: bool = False):
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"format must be csv or jsonl, not {fmt!r}")
        self.fmt = fmt
        self.path = Path(out_dir) / f"results.{fmt}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if overwrite and self.path.exists():
            self.path.unlink()
        self.done: set[str] = self._keep_done()
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._f = open(self.path, "a", encoding="utf-8", newline="")
        self._csv = csv.DictWriter(self._f, COLUMNS, extrasaction="ignore") if fmt == "csv" else None
        if self._csv is not None and new:
            self._csv.writeheader()

    def _keep_done(self) -> set[str]:
        if not self.path.exists():
            return set()
        with open(self.path, encoding="utf-8", newline="") as f:
            lines = f.read().splitlines(keepends=True)
        if self.fmt == "csv":
            rows = list(csv.DictReader(lines))
            keep = lines[:1] + [line for line, r in zip(lines[1:], rows) if not r.get("error")]
        else:
            rows = [json.loads(line) for line in lines if line.strip()]
            keep = [line for line, r in zip((x for x in lines if x.strip()), rows) if not r.get("error")]
        if len(keep) != len(lines):
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(keep), encoding="utf-8")
            tmp.replace(self.path)
        return {r["file"] for r in rows if not r.get("error")}

    def write(self, file: str, result: dict | None, error: str | None) -> None:
        if self._csv is not None:
            self._csv.writerow(table_row(file, result, error))
        else:
            record = result if result is not None else {"file": file, "error": error}
            self._f.write(json.dumps({**record, "file": file}, ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()
