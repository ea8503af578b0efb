"""The inputs of a batch: files, folders and zip archives -> `BatchInput`s, one per row.

Collecting never fails as a whole: a path that does not exist, a damaged archive, a nested archive
or an encrypted member each become one input with an `error`, shown as an error row. Archives are
only listed when collected; their members are extracted when their turn comes (`Extractor`), each
archive into a folder of its own, under a total byte budget, and removed once analysed, so a
batch of many archives never holds more than one group of members on disk.

Row names are unique and stable: a file by its path (absolute in the CLI) or its name (page), an
archive member as `<archive>/<member path>`; a name given twice gets ` (2)`, ` (3)`, ...
"""

from __future__ import annotations

import logging
import shutil
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..audio.files import is_archive_name, is_audio_name, is_encrypted, member_chunks

logger = logging.getLogger(__name__)

MAX_ZIP_FILES = 10_000  # audio members per archive
MAX_EXTRACT_BYTES = 8 * 1024**3  # all members of one batch together, uncompressed


@dataclass
class BatchInput:
    """One row of a batch. `path` is the file to analyse (None for an archive member until it is
    extracted); `error` a reason it cannot be analysed (the row is an error row)."""

    name: str
    path: Path | None = None
    archive: Path | None = None
    member: zipfile.ZipInfo | None = None
    error: str | None = None
    index: int = 0  # the archive's position among the batch's archives (its extraction folder)


def _archive_inputs(path: Path, shown: str, index: int) -> list[BatchInput]:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [m for m in zf.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
        return [BatchInput(shown, error=f"{shown}: not a readable zip archive ({exc}).")]
    out: list[BatchInput] = []
    for m in infos:
        member = m.filename.replace("\\", "/")
        name = f"{shown}/{member}"
        if is_archive_name(member):
            out.append(BatchInput(name, error=f"{name}: archives inside archives are not opened; extract it and add it."))
        elif is_audio_name(member):
            out.append(BatchInput(name, archive=path, member=m, index=index))
    audio = [i for i in out if i.member is not None]
    if len(audio) > MAX_ZIP_FILES:
        return [BatchInput(shown, error=f"{shown}: the archive holds {len(audio)} audio files; the limit is {MAX_ZIP_FILES}.")]
    if not out:
        return [BatchInput(shown, error=f"{shown}: the archive holds no audio files.")]
    return out


def collect_inputs(
    paths: Iterable, recursive: bool = False, absolute: bool = False, names: Iterable[str] | None = None
) -> list[BatchInput]:
    """Files as given, the audio files of folders (with subfolders when `recursive`), and the audio
    members of zip archives (listed, not extracted). `absolute`: name rows by absolute path;
    `names`: the shown name of each path (the page's upload names) instead of its own."""
    inputs: list[BatchInput] = []
    archives = 0
    paths = [Path(p) for p in paths]
    shown_names = list(names) if names is not None else [None] * len(paths)
    for p, given_name in zip(paths, shown_names):
        shown = given_name or (str(p.resolve()) if absolute else p.name)
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            for f in sorted(f for f in p.glob(pattern) if f.is_file() and is_audio_name(f.name)):
                inputs.append(BatchInput(str(f.resolve()) if absolute else str(f.relative_to(p.parent)), path=f))
        elif is_archive_name(p.name):
            if not p.is_file():
                inputs.append(BatchInput(shown, error=f"{shown}: no such file."))
            else:
                archives += 1
                inputs += _archive_inputs(p, shown, archives)
        else:
            inputs.append(BatchInput(shown, path=p))
    return _unique(inputs)


def _unique(inputs: list[BatchInput]) -> list[BatchInput]:
    seen: dict[str, int] = {}
    for item in inputs:
        n = seen.get(item.name, 0) + 1
        seen[item.name] = n
        if n > 1:
            item.name = f"{item.name} ({n})"
    return inputs


class Extractor:
    """Extracts archive members on demand into `dest/<archive index>/`, under a total budget."""

    def __init__(self, dest: Path, budget: int = MAX_EXTRACT_BYTES):
        self.dest, self.budget, self.used = Path(dest), budget, 0

    def materialise(self, item: BatchInput) -> None:
        """Give an archive member its `path` (extracting it), or its `error`."""
        if item.member is None or item.error or item.path is not None:
            return
        m = item.member
        if is_encrypted(m):
            item.error = f"{item.name}: the member is encrypted; extract it with its password and add the file."
            return
        if self.used + m.file_size > self.budget:
            item.error = f"{item.name}: the archives' total size passes the limit of {self.budget / 1024**3:.0f} GB."
            return
        target = self.dest / f"{item.index:04d}" / f"{m.header_offset:012d}{PurePosixPath(m.filename).suffix.lower()}"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._copy(item, target)
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError, EOFError) as exc:
            target.unlink(missing_ok=True)
            item.error = f"{item.name}: the member cannot be extracted ({exc})."
            return
        item.path = target

    def _copy(self, item: BatchInput, target: Path) -> None:
        written = 0
        with open(target, "wb") as dst:
            for chunk in member_chunks(item.archive, item.member, self.budget - self.used):
                written += len(chunk)
                dst.write(chunk)
        self.used += written

    def release(self, item: BatchInput) -> None:
        """Remove an extracted member once analysed."""
        if item.member is not None and item.path is not None:
            item.path.unlink(missing_ok=True)
            item.path = None

    def cleanup(self) -> None:
        shutil.rmtree(self.dest, ignore_errors=True)
