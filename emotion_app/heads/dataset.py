"""A labelled set: which audio file has which label (and speaker), read from DATA.

DATA is one of:
- a folder with one subfolder per label, the audio files directly inside each;
- a CSV (or TSV) with the columns `path,label[,speaker]` in its first line, or a JSONL file of
  `{"path", "label"[, "speaker"]}` objects; paths are relative to the table's folder;
- a zip archive holding either (label folders at its root or inside one top folder, or one table
  at its root with the files it names);
- on the page: one zip, or a CSV/JSONL uploaded with its audio files (matched by file name).

Reading lists files without decoding them. Anything that would make the set ambiguous is refused
with one message naming the files: files outside a label folder, folders inside label folders,
non-audio files, a table without its columns, empty cells or paths that do not exist. Hidden
files and `__MACOSX/` are ignored. Counting, label maps and the size rules follow.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from ..audio.files import AUDIO_EXTS, UnsafeMember, is_audio_name, member_chunks
from ..errors import EmotionAppError

TABLE_EXTS = {".csv", ".tsv", ".jsonl"}
MAX_FILES = 100_000
MAX_MEMBER_BYTES = 512 * 1024**2  # one zip member, uncompressed
SHOWN = 5  # examples named in a message


class DatasetError(EmotionAppError):
    """The labelled set cannot be used as given (the message names the files and the fix)."""

    code = "bad_dataset"


@dataclass(frozen=True)
class Item:
    """One labelled file: on disk (`path`) or in a zip (`archive`, `member`)."""

    name: str  # shown: the path relative to DATA
    label: str
    speaker: str | None = None
    path: Path | None = None
    archive: Path | None = None
    member: str | None = None

    def read(self) -> bytes:
        if self.path is not None:
            return self.path.read_bytes()
        try:
            return b"".join(member_chunks(self.archive, self.member, MAX_MEMBER_BYTES))
        except UnsafeMember as exc:
            raise OSError(str(exc)) from None


@dataclass
class Dataset:
    """The items of DATA, in a stable order (by label, then name)."""

    source: str  # DATA as shown
    items: list[Item]
    layout: str  # "folders" or "table"
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return sorted({i.label for i in self.items})

    def counts(self) -> dict[str, int]:
        c = Counter(i.label for i in self.items)
        return {k: c[k] for k in self.labels}

    @property
    def has_speakers(self) -> bool:
        return bool(self.items) and all(i.speaker for i in self.items)

    @property
    def speakers(self) -> list[str]:
        return sorted({i.speaker for i in self.items if i.speaker})

    def summary(self) -> dict:
        return {
            "source": self.source,
            "layout": self.layout,
            "files": len(self.items),
            "counts": self.counts(),
            "speakers": len(self.speakers) if self.has_speakers else None,
        }


def _listed(names, what: str) -> str:
    names = list(names)
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return f"{what}: {', '.join(names[:SHOWN])}{more}"


def _ignored(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def read_dataset(data: str | Path) -> Dataset:
    """DATA (a folder, a CSV/TSV/JSONL file or a zip) -> Dataset, or DatasetError saying what to fix."""
    path = Path(data)
    if path.is_dir():
        files = sorted(str(p.relative_to(path).as_posix()) for p in path.rglob("*") if p.is_file())
        return _from_files(files, str(path), lambda rel: {"path": path / rel}, strip_top=False)
    if not path.is_file():
        raise DatasetError(f"{data}: no such file or folder; give a folder of label folders, a CSV/JSONL or a zip")
    if path.suffix.lower() == ".zip":
        return _from_zip(path)
    if path.suffix.lower() in TABLE_EXTS:
        text = _text(path.read_bytes(), path.name)
        return _from_table(text, path.name, path.suffix.lower(), lambda rel: _on_disk(path.parent, rel))
    raise DatasetError(f"{path.name}: DATA must be a folder with one subfolder per label, a .csv/.tsv/.jsonl table or a .zip")


def read_uploads(paths: list, names: list[str] | None = None) -> Dataset:
    """The page's upload: one zip, or one CSV/JSONL with its audio files (matched by file name)."""
    paths = [Path(p) for p in paths or []]
    names = list(names) if names else [p.name for p in paths]
    if len(paths) == 1 and paths[0].suffix.lower() == ".zip":
        return _from_zip(paths[0], names[0])
    tables = [(p, n) for p, n in zip(paths, names) if Path(n).suffix.lower() in TABLE_EXTS]
    if len(tables) != 1:
        raise DatasetError(
            "Upload one zip of label folders (one folder per label), or one CSV/JSONL table (path,label[,speaker]) "
            "together with the audio files it names."
        )
    table, table_name = tables[0]
    by_name: dict[str, list[Path]] = {}
    for p, n in zip(paths, names):
        if p != table:
            by_name.setdefault(Path(n).name, []).append(p)
    twice = [n for n, ps in by_name.items() if len(ps) > 1]
    if twice:
        raise DatasetError(_listed(twice, "files are matched to the table by name, and these names were uploaded twice"))

    def locate(rel: str) -> dict | None:
        found = by_name.get(PurePosixPath(rel.replace("\\", "/")).name)
        return {"path": found[0]} if found else None

    return _from_table(_text(table.read_bytes(), table_name), table_name, Path(table_name).suffix.lower(), locate)


def _on_disk(base: Path, rel: str) -> dict | None:
    p = Path(rel) if Path(rel).is_absolute() else base / rel
    return {"path": p} if p.is_file() else None


def _from_zip(path: Path, shown: str | None = None) -> Dataset:
    shown = shown or path.name
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [m for m in zf.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DatasetError(f"{shown}: not a readable zip archive ({exc})", "bad_zip") from None
    encrypted = [m.filename for m in infos if m.flag_bits & 0x1]
    if encrypted:
        raise DatasetError(_listed(encrypted, f"{shown}: encrypted members cannot be read; unzip them first"))
    files = sorted(m.filename.replace("\\", "/") for m in infos)
    tables = [f for f in files if not _ignored(f) and "/" not in f and PurePosixPath(f).suffix.lower() in TABLE_EXTS]
    if len(tables) == 1:
        with zipfile.ZipFile(path) as zf:
            text = _text(zf.read(tables[0]), tables[0])
        members = set(files)

        def locate(rel: str) -> dict | None:
            name = str(PurePosixPath(rel.replace("\\", "/")))
            return {"archive": path, "member": name} if name in members else None

        return _from_table(text, f"{shown}/{tables[0]}", PurePosixPath(tables[0]).suffix.lower(), locate)
    return _from_files(files, shown, lambda rel: {"archive": path, "member": rel}, strip_top=True)


def _from_files(files: list[str], shown: str, where: Callable[[str], dict], strip_top: bool) -> Dataset:
    """Label folders: every file must be `label/file` with an audio extension."""
    files = [f for f in files if not _ignored(f)]
    if len(files) > MAX_FILES:
        raise DatasetError(f"{shown} holds {len(files)} files; the limit is {MAX_FILES}")
    top = {PurePosixPath(f).parts[0] for f in files}
    prefix = ""
    # a zip of one folder (`data/angry/x.wav`): the label folders are inside that folder
    if strip_top and len(top) == 1 and all(len(PurePosixPath(f).parts) > 2 for f in files):
        prefix = f"{next(iter(top))}/"
    loose, nested, other, items = [], [], [], []
    for f in files:
        parts = PurePosixPath(f[len(prefix) :]).parts
        if len(parts) == 1:
            loose.append(f)
        elif len(parts) > 2:
            nested.append(f)
        elif not is_audio_name(f):
            other.append(f)
        else:
            items.append(Item(name=f[len(prefix) :], label=parts[0], **where(f)))
    problems = []
    if loose:
        problems.append(_listed(loose, "files outside a label folder (each file goes in the folder named after its label)"))
    if nested:
        problems.append(_listed(nested, "folders inside label folders (put each label's files directly in its folder)"))
    if other:
        problems.append(_listed(other, f"files that are not audio (accepted: {', '.join(sorted(AUDIO_EXTS))})"))
    if problems:
        raise DatasetError(f"{shown}: " + "; ".join(problems) + ".")
    if not items:
        raise DatasetError(f"{shown} holds no audio files: give one folder per label with the audio files inside")
    return Dataset(shown, sorted(items, key=lambda i: (i.label, i.name)), "folders")


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"{name}: the table must be UTF-8 text") from None


def _rows(text: str, name: str, ext: str) -> list[tuple[int, dict]]:
    """(line number, {column: value}) of a CSV/TSV/JSONL table, columns in lower case."""
    if ext == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise DatasetError(f"{name}, line {n}: not a JSON object ({exc})") from None
            if not isinstance(obj, dict):
                raise DatasetError(f"{name}, line {n}: each line must be a JSON object with path and label")
            rows.append((n, {str(k).strip().lower(): v for k, v in obj.items()}))
        columns = set().union(*(r.keys() for _, r in rows)) if rows else set()
    else:
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if ext == ".tsv" else ",")
        reader.fieldnames = [(c or "").strip().lower() for c in reader.fieldnames or []]
        columns = set(reader.fieldnames)
        rows = [(reader.line_num, r) for r in reader]
    missing = [c for c in ("path", "label") if c not in columns]
    if missing:
        found = ", ".join(sorted(c for c in columns if c)) or "none"
        raise DatasetError(
            f"{name}: the table needs the columns path,label[,speaker] (named in its first line); "
            f"missing: {', '.join(missing)}; found: {found}"
        )
    return rows


def _from_table(text: str, name: str, ext: str, locate: Callable[[str], dict | None]) -> Dataset:
    rows = _rows(text, name, ext)
    has_speaker = any(str(r.get("speaker") or "").strip() for _, r in rows)
    empty, absent, items = [], [], []
    for n, r in rows:
        rel, label = str(r.get("path") or "").strip(), str(r.get("label") or "").strip()
        speaker = str(r.get("speaker") or "").strip() or None
        if not rel or not label or (has_speaker and not speaker):
            empty.append(f"line {n}")
            continue
        found = locate(rel)
        if found is None:
            absent.append(rel)
            continue
        items.append(Item(name=rel, label=label, speaker=speaker, **found))
    problems = []
    if empty:
        cells = "path, label and speaker" if has_speaker else "path and label"
        problems.append(_listed(empty, f"rows without {cells}"))
    if absent:
        problems.append(_listed(absent, "paths that do not exist (paths are relative to the table's folder)"))
    if problems:
        raise DatasetError(f"{name}: " + "; ".join(problems) + ".")
    if not items:
        raise DatasetError(f"{name}: the table has no rows")
    return Dataset(name, sorted(items, key=lambda i: (i.label, i.name)), "table")


# -- label maps and the size rules ------------------------------------------------------------------
DROP = ("", "-")  # `--map "oth=-"` leaves a label out


def parse_label_map(text: str | None) -> dict[str, str | None]:
    """ "ang=angry,hap=happy,exc=happy,oth=-" -> {"ang": "angry", ..., "oth": None} (None: left out).
    Entries are separated by commas, semicolons or new lines."""
    mapping: dict[str, str | None] = {}
    for entry in str(text or "").replace(";", ",").replace("\n", ",").split(","):
        if not entry.strip():
            continue
        source, eq, target = entry.partition("=")
        if not eq or not source.strip():
            raise DatasetError(f"label map entry {entry.strip()!r} must read data_label=model_label (e.g. hap=happy)")
        if source.strip() in mapping:
            raise DatasetError(f"label map: {source.strip()!r} is mapped twice")
        mapping[source.strip()] = None if target.strip() in DROP else target.strip()
    return mapping


def apply_label_map(
    dataset: Dataset, mapping: dict[str, str | None] | None, targets: tuple[str, ...] | None = None
) -> tuple[Dataset, dict[str, int]]:
    """(the dataset relabelled, {label: files} left out). With `targets` (the labels a head knows)
    a label that is neither mapped nor one of them is left out and reported, never guessed; a map
    onto an unknown target is an error. Without `targets` every unmapped label is kept as it is."""
    mapping = mapping or {}
    if targets is not None:
        wrong = sorted({t for t in mapping.values() if t is not None and t not in targets})
        if wrong:
            raise DatasetError(f"label map: {', '.join(wrong)} not among the head's labels ({', '.join(targets)})")
    kept, left_out = [], Counter()
    for item in dataset.items:
        label = mapping[item.label] if item.label in mapping else item.label
        if label is None or (targets is not None and label not in targets):
            left_out[item.label] += 1
        else:
            kept.append(replace(item, label=label) if label != item.label else item)
    notes = list(dataset.notes)
    unused = sorted(set(mapping) - {i.label for i in dataset.items})
    if unused:
        notes.append(f"label map entries for labels the data does not have: {', '.join(unused)}")
    return Dataset(dataset.source, kept, dataset.layout, notes), dict(sorted(left_out.items()))


def check_counts(dataset: Dataset, min_labels: int = 2, min_files: int = 5, what: str = "training") -> None:
    """DatasetError unless the set has `min_labels` labels with `min_files` files each."""
    counts = dataset.counts()
    if len(counts) < min_labels:
        found = ", ".join(f"{k} ({n})" for k, n in counts.items()) or "none"
        raise DatasetError(f"{what} needs at least {min_labels} labels with files; found {len(counts)}: {found}")
    small = [f"{k} ({n})" for k, n in counts.items() if n < min_files]
    if small:
        raise DatasetError(
            f"{what} needs at least {min_files} files per label (for cross-validation); too few: {', '.join(small)}. "
            "Add files, or merge or leave out those labels with --map."
        )
