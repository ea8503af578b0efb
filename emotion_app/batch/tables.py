"""Batch results as tables: the CSV columns, one row per file, and the resumable results file."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections import Counter
from pathlib import Path

from ..analysis.report import Report, report_from_json
from ..constants import LABEL_KEYS
from ..errors import EmotionAppError


def columns(labels=LABEL_KEYS, sentiment: bool = False) -> list[str]:
    """The table's columns: a score column per label of the result's label set, and the sentiment's
    label and score when asked for. heads: "name=label p; ..."; speakers: "name=emotion p share-of-talk; ..."."""
    return [
        "file", "duration_s", "emotion", "confidence", *labels, *(("sentiment", "sentiment_score") if sentiment else ()),
        "heads", "speakers", "error",
    ]  # fmt: skip


COLUMNS = columns()
ALL_COLUMNS = columns(sentiment=True)


def columns_for(request) -> list[str]:
    """The columns of a batch run with `request` (RequestOptions)."""
    labels = request.labels.keys if request.labels is not None else LABEL_KEYS
    return columns(labels, request.analysis.sentiment is not None)


def table_row(file: str, report: Report | None, error: str | None) -> dict:
    """One file's row: every column of any run ("" where it has no value; a writer keeps its own)."""
    row = dict.fromkeys(ALL_COLUMNS, "")
    row["file"] = file
    if report is not None:
        row.update(duration_s=report.duration_s, emotion=report.emotion or "", confidence=report.confidence or "")
        row.update(report.scores)
        if report.sentiment is not None:
            row.update(sentiment=report.sentiment.label, sentiment_score=report.sentiment.score)
        row["heads"] = "; ".join(f"{n}={h.emotion} {h.confidence:.4f}" for n, h in (report.heads or {}).items())
        row["speakers"] = "; ".join(
            f"{s.name}={s.emotion} {s.confidence:.4f} {s.share_of_talk:.0%}" for s in report.speakers or ()
        )
    row["error"] = (error or "").replace("\n", " ")
    return row


def summary_text(done: int, failed: int, skipped: int, path: Path, audio_s: float, wall_s: float, emotions: Counter) -> str:
    """The two lines that end a batch (local and Ray): files done, failed and skipped, the audio
    (seconds and hours) and the speed (x real time = hours of audio per hour), the emotions."""
    top = ", ".join(f"{k} {n}" for k, n in emotions.most_common())
    speed = audio_s / max(wall_s, 1e-9)
    return (
        f"{done} done, {failed} failed, {skipped} skipped (already done) -> {path}\n"
        f"{audio_s:.1f} s of audio ({audio_s / 3600:.2f} h) in {wall_s:.1f} s ({speed:.1f}x real time); {top}"
    )


def rows_csv(rows: list[dict], names: list[str] = COLUMNS) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, names, restval="", lineterminator="\n", extrasaction="ignore")  # rows may carry error_code
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

    def __init__(self, out_dir: Path, fmt: str = "csv", overwrite: bool = False, names: list[str] = COLUMNS):
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"format must be csv or jsonl, not {fmt!r}")
        self.fmt = fmt
        self.path = Path(out_dir) / f"results.{fmt}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if overwrite and self.path.exists():
            self.path.unlink()
        if fmt == "csv" and self.path.exists() and self.path.stat().st_size:
            with open(self.path, encoding="utf-8", newline="") as f:
                header = next(csv.reader(f), [])
            if header != list(names):
                raise EmotionAppError(
                    f"{self.path} has other columns ({', '.join(header[4:-3])}) than this run "
                    f"({', '.join(names[4:-3])}): it was written with other labels or sentiment; "
                    "use --overwrite, or another output folder",
                    "bad_request",
                )
        self.done: set[str] = self._keep_done()
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._f = open(self.path, "a", encoding="utf-8", newline="")
        self._csv = csv.DictWriter(self._f, names, restval="", extrasaction="ignore") if fmt == "csv" else None
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

    def write(self, file: str, result: Report | dict | None, error: str | None) -> None:
        """One file's record: its row (CSV) or result.json's content (JSONL); `error` when it failed.
        `result`: a Report, or result.json's content as Ray's shards hold it (written as it is)."""
        if self._csv is not None:
            report = report_from_json(result) if isinstance(result, dict) else result
            self._csv.writerow(table_row(file, report, error))
        else:
            record = result.to_json() if isinstance(result, Report) else result
            record = record if record is not None else {"file": file, "error": error}
            self._f.write(json.dumps({**record, "file": file}, ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()
