"""Batch results as tables: the CSV columns, one row per file, and the resumable results file."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

from ..constants import LABEL_KEYS

COLUMNS = ["file", "duration_s", "emotion", "confidence", *LABEL_KEYS, "error"]


def table_row(file: str, result: dict | None, error: str | None) -> dict:
    row = dict.fromkeys(COLUMNS, "")
    row["file"] = file
    if result is not None:
        row.update(duration_s=result["duration_s"], emotion=result["emotion"] or "", confidence=result["confidence"] or "")
        row.update(result.get("scores") or {})
    row["error"] = (error or "").replace("\n", " ")
    return row


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
