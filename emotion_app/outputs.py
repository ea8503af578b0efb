"""Per-request output folders: `outputs_YYYYMMDD_HHMMSS[_N]/`, written whole or not at all.

Files are written into a hidden temporary folder beside the final one and renamed into place, so
a failure never leaves a half-written folder, and the final name is claimed atomically (two
requests in the same second get `_2`, `_3`, ...). No user-supplied name decides any path.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np

from .constants import SAMPLE_RATE

logger = logging.getLogger(__name__)

FOLDER_RE = re.compile(r"^outputs_\d{8}_\d{6}(_\d+)?$")
FILES = (
    "result.json",
    "processed_audio.wav",
    "embedding.npy",
    "frames.csv",
    "segments.csv",
    "segments.json",
    "segments.vtt",
    "scores.png",
    "timeline.png",
)


def new_temp_folder(outputs_dir: Path) -> Path:
    """A hidden folder inside `outputs_dir` to build an output folder in."""
    outputs_dir = Path(outputs_dir)
    outputs_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".tmp-", dir=outputs_dir))


def write_output_folder(
    outputs_dir: Path,
    result: dict | None,
    samples: np.ndarray | Path | None,
    embedding: np.ndarray | None,
    now: datetime,
    extra: dict[str, str | bytes] | None = None,
    tmp: Path | None = None,
) -> Path:
    """Write result.json, processed_audio.wav (16 kHz mono PCM; `samples` may be a WAV already
    written into `tmp`), embedding.npy and the `extra` files (relative name -> content) into a
    temporary folder (`tmp`, or a new one) and rename it into place; return the folder."""
    import soundfile as sf

    base = f"outputs_{now:%Y%m%d_%H%M%S}"
    tmp = tmp or new_temp_folder(outputs_dir)
    try:
        if isinstance(samples, np.ndarray):
            sf.write(tmp / "processed_audio.wav", samples, SAMPLE_RATE, subtype="PCM_16")
        elif samples is not None and Path(samples) != tmp / "processed_audio.wav":
            os.replace(samples, tmp / "processed_audio.wav")
        if embedding is not None:
            np.save(tmp / "embedding.npy", embedding)
        for name, content in (extra or {}).items():
            path = tmp / _relative(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content, encoding="utf-8")
        for n in range(1, 10_000):
            folder = Path(outputs_dir) / (base if n == 1 else f"{base}_{n}")
            if result is not None:
                result["output_dir"] = folder.name
                (tmp / "result.json").write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
            try:
                # rename() onto an existing non-empty folder fails, so the first writer wins the name
                os.rename(tmp, folder)
                return folder
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
        raise OSError(f"no free output folder name for {base}")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _relative(name: str) -> Path:
    """A file name the program chose, checked to stay inside the folder."""
    path = Path(name)
    if path.is_absolute() or any(part in ("..", "") for part in path.parts):
        raise ValueError(f"output file name {name!r} must be a relative path inside the folder")
    return path


def output_file(outputs_dir: Path, folder: str, name: str) -> Path | None:
    """The path of a downloadable file, or None: only known names inside real output folders."""
    if not FOLDER_RE.match(folder) or name not in FILES:
        return None
    path = Path(outputs_dir) / folder / name
    return path if path.is_file() else None


def folder_files(folder: Path) -> dict[str, Path]:
    return {name: folder / name for name in FILES if (folder / name).is_file()}


def download_urls(folder: str, files) -> dict[str, str]:
    """REST download URL of each file of an output folder."""
    return {name: f"/api/outputs/{folder}/{name}" for name in files}
