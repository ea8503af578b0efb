"""The labelled sets of a fine-tune: DATA read as `evaluate` and `train-head` read it, labels mapped,
checked, and split into training and validation parts before any model runs.

    split = prepare(read_dataset("my_set/"), val=None, test=None, label_map="exc=happy", seed=0)
    split.labels, split.train, split.val, split.test, split.notes

Labels are any strings in any script (`خشم`, `calm`); one of the nine (any case) keeps the model's
name, emoji and Chinese name. The validation part is `--val DATA` when given, else a
speaker-grouped split (no speaker in both parts) when every clip has a speaker, else a split per
label. Refused, with the files or labels named: a file that cannot be read, a label with one clip,
one speaker only without --val, labels in --val/--test that the training data lacks, and label
names the hub's tokens.txt cannot carry.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter
from dataclasses import dataclass, field

from ..constants import LABEL_BY_KEY, LABEL_KEYS
from ..heads.dataset import Dataset, DatasetError, Item, apply_label_map, parse_label_map, read_dataset

logger = logging.getLogger(__name__)

VAL_FRACTION = 0.2  # of the clips, when no --val is given
MIN_CLIPS = 2  # per label: one to train on, one to check it


@dataclass(frozen=True)
class Clip:
    """One labelled file with the sha256 of its bytes (the feature cache's key); an augmented copy
    (augment.py) has its own key and the `change` made to its samples."""

    item: Item
    label: str
    digest: str
    change: object = field(default=None, compare=False)  # samples, key -> samples; None: the file as it is

    @property
    def name(self) -> str:
        return self.item.name

    @property
    def speaker(self) -> str | None:
        return self.item.speaker


@dataclass
class Split:
    labels: tuple[str, ...]  # the new head's labels, in its output order
    train: list[Clip]
    val: list[Clip]
    test: list[Clip]
    how: str  # "--val", "speaker" or "label": how the validation part was chosen
    sources: dict[str, str]  # part -> DATA as given
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, dict]:
        """Per part: clips per label and per speaker (for the training card)."""
        out = {}
        for part in ("train", "val", "test"):
            clips = getattr(self, part)
            out[part] = {
                "clips": len(clips),
                "labels": dict(sorted(Counter(c.label for c in clips).items())),
                "speakers": dict(sorted(Counter(c.speaker for c in clips if c.speaker).items())),
            }
        return out


def label_order(labels) -> tuple[str, ...]:
    """The nine labels first, in the model's order (so that nine labels give the model's own head),
    then the others sorted."""
    return tuple(sorted(set(labels), key=lambda k: (LABEL_KEYS.index(k) if k in LABEL_KEYS else len(LABEL_KEYS), k)))


def token_for(label: str) -> str:
    """tokens.txt's entry: the hub's `开心/happy` (and `<unk>`) for the nine, the label itself otherwise."""
    if label == "unknown":
        return "<unk>"
    if label in LABEL_BY_KEY:
        return f"{LABEL_BY_KEY[label].zh}/{label}"
    return label


def _normalised(label: str) -> str:
    return label.lower() if label.lower() in LABEL_BY_KEY else label


def _clips(dataset: Dataset, mapping: dict, what: str) -> list[Clip]:
    mapped, left_out = apply_label_map(dataset, mapping)
    if left_out:
        logger.info("%s: left out by --map: %s", what, left_out)
    clips, unreadable = [], []
    for item in mapped.items:
        try:
            digest = hashlib.sha256(item.read()).hexdigest()
        except (OSError, ValueError, KeyError) as exc:  # KeyError: a zip member that went away
            unreadable.append(f"{item.name} ({exc})")
            continue
        clips.append(Clip(item, _normalised(item.label), digest))
    if unreadable:
        raise DatasetError(f"{what}: {len(unreadable)} files cannot be read: {'; '.join(unreadable[:5])}. Fix or remove them.")
    first: dict[str, Clip] = {}
    clashes = []
    for c in clips:
        seen = first.setdefault(c.digest, c)
        if seen.label != c.label:
            clashes.append(f"{seen.name} ({seen.label}) = {c.name} ({c.label})")
    if clashes:
        raise DatasetError(f"{what}: the same audio is filed under two labels: {'; '.join(clashes[:5])}. Keep each under one.")
    bad = sorted({c.label for c in clips if "/" in c.label or c.label.startswith("unuse") or c.label == "<unk>"})
    if bad:
        raise DatasetError(
            f"{what}: labels {', '.join(bad)} cannot be written to tokens.txt ('/' or a reserved name); rename them with --map"
        )
    return clips


def _speaker_split(clips: list[Clip], seed: int) -> tuple[list[Clip], list[Clip]]:
    """Whole speakers into the validation part until it holds VAL_FRACTION of the clips, never a
    speaker whose move would take a label's last training clip."""
    speakers = sorted({c.speaker for c in clips})
    random.Random(seed).shuffle(speakers)
    left = Counter(c.label for c in clips)
    val_speakers, n_val = set(), 0
    for s in speakers:
        if n_val >= VAL_FRACTION * len(clips) or len(val_speakers) == len(speakers) - 1:
            break
        theirs = Counter(c.label for c in clips if c.speaker == s)
        if any(left[k] - n < 1 for k, n in theirs.items()):
            continue
        left -= theirs
        val_speakers.add(s)
        n_val += sum(theirs.values())
    return [c for c in clips if c.speaker not in val_speakers], [c for c in clips if c.speaker in val_speakers]


def _label_split(clips: list[Clip], seed: int) -> tuple[list[Clip], list[Clip]]:
    """Per label, VAL_FRACTION of its clips (at least one, never the last) into validation."""
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted({c.label for c in clips}):
        own = [c for c in clips if c.label == label]
        rng.shuffle(own)
        n = min(len(own) - 1, max(1, round(VAL_FRACTION * len(own))))
        val += own[:n]
        train += own[n:]
    key = lambda c: (c.label, c.name)  # noqa: E731
    return sorted(train, key=key), sorted(val, key=key)


def prepare(
    data: Dataset | str,
    *,
    val: Dataset | str | None = None,
    test: Dataset | str | None = None,
    label_map: str | dict | None = None,
    seed: int = 0,
) -> Split:
    """Read, map, check and split; DatasetError (naming the files or labels) on anything unusable."""
    mapping = parse_label_map(label_map) if isinstance(label_map, str) or label_map is None else dict(label_map)
    sets = {"train": data, "val": val, "test": test}
    sets = {k: (read_dataset(v) if isinstance(v, str) or hasattr(v, "__fspath__") else v) for k, v in sets.items()}
    sources = {k: d.source for k, d in sets.items() if d is not None}
    clips = _clips(sets["train"], mapping, "DATA")
    counts = Counter(c.label for c in clips)
    if len(counts) < 2:
        raise DatasetError(f"DATA needs at least two labels; found {', '.join(counts) or 'none'}")
    few = [f"{k} ({n})" for k, n in sorted(counts.items()) if n < MIN_CLIPS]
    if few:
        raise DatasetError(
            f"DATA: labels with fewer than {MIN_CLIPS} clips: {', '.join(few)}. Add clips, or merge or leave them out with --map."
        )
    labels = label_order(counts)
    notes: list[str] = []
    speakers = sets["train"].has_speakers and {c.speaker for c in clips}
    if sets["val"] is not None:
        train, held, how = clips, _clips(sets["val"], mapping, "--val"), "--val"
        if speakers and len(speakers) == 1:
            notes.append(f"every training clip is from one speaker ({next(iter(speakers))})")
    elif speakers and len(speakers) == 1:
        raise DatasetError(
            f"DATA: all {len(clips)} clips are from one speaker ({next(iter(speakers))}): a validation part of the same "
            "voice says little about other voices. Add speakers, or give --val DATA with clips of its own."
        )
    elif speakers:
        (train, held), how = _speaker_split(clips, seed), "speaker"
    else:
        (train, held), how = _label_split(clips, seed), "label"
        notes.append("the clips have no speakers: the validation part holds other clips of the same voices")
    missing = sorted(set(labels) - {c.label for c in train})
    if missing:
        raise DatasetError(f"no training clips of {', '.join(missing)} are left after the split; add speakers or clips")
    parts = {"val": held, "test": _clips(sets["test"], mapping, "--test") if sets["test"] is not None else []}
    for part, part_clips in parts.items():
        unknown = sorted({c.label for c in part_clips} - set(labels))
        if unknown:
            raise DatasetError(f"--{part}: labels the training data lacks: {', '.join(unknown)}; map or remove them")
        shared = {c.speaker for c in part_clips if c.speaker} & {c.speaker for c in train if c.speaker}
        if shared and (part == "test" or how == "--val"):
            notes.append(f"--{part} shares speakers with the training data: {', '.join(sorted(shared)[:5])}")
    twice = {c.digest for c in train} & {c.digest for c in held + parts["test"]}
    if twice:
        notes.append(f"{len(twice)} recordings are both in the training data and in --val/--test (the same audio)")
    if not held:
        raise DatasetError("the validation part is empty; give --val DATA or more clips")
    return Split(labels, train, parts["val"], parts["test"], how, sources, notes)
