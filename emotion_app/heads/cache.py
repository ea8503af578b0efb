"""Utterance embeddings of a labelled set, computed once per file and model, and kept on disk.

An entry is keyed by the sha256 of the file's bytes (so a renamed or moved file is found again)
inside a folder per model identity: the model's name, the size and modification time of its
model.pt, its labels and the dtype. It holds the utterance feature `mean` (D,) and the model's own
9-class probabilities (V,), so evaluating the 9-class head, training a head and evaluating that
head all reuse one extraction. Location: `$EMOTION_APP_CACHE/embeddings` (default
`~/.cache/emotion_app/embeddings`); entries are written whole (temporary file, then rename), and a
damaged entry is computed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..model.head import engine_model_id, model_key
from .dataset import Dataset, DatasetError, Item

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
GROUP = 32  # files decoded and sent to the engine together


def default_root() -> Path:
    from ..model.checkpoint import cache_root  # one owner of $EMOTION_APP_CACHE

    return cache_root() / "embeddings"


def model_identity(engine) -> str:
    """A folder name for `engine`'s features: `<model name>-<hash of its weights file's size and
    mtime (model.pt, or an export's model.onnx), the backend, the dtype and the labels>`."""
    source = str(engine.model_dir)
    for file in ("model.pt", "model.onnx"):
        try:
            st = (Path(engine.model_dir) / file).stat()
        except OSError:
            continue
        source = [file, st.st_size, st.st_mtime_ns]
        break
    name = model_key(engine_model_id(engine))
    spec = {
        "format": CACHE_FORMAT,
        "model": name,
        "source": source,
        "backend": engine.model_info.get("backend"),
        "dtype": str(engine.model_info["dtype"]),
        "labels": list(engine.labels),
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return f"{''.join(c if c.isalnum() or c in '-_.' else '_' for c in name)}-{digest}"


class EmbeddingCache:
    """File digest -> (mean feature (D,), 9-class probabilities (V,)) for one model."""

    def __init__(self, identity: str, root: Path | None = None):
        self.folder = Path(root or default_root()) / identity

    @classmethod
    def for_engine(cls, engine, root: Path | None = None) -> EmbeddingCache:
        return cls(model_identity(engine), root)

    def _path(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}.npz"

    def get(self, digest: str) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            with np.load(self._path(digest)) as z:
                return z["mean"].astype(np.float32), z["probabilities"].astype(np.float32)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("embedding cache entry %s is damaged (%s); computing it again", digest[:12], exc)
            return None

    def put(self, digest: str, mean: np.ndarray, probabilities: np.ndarray) -> None:
        path = self._path(digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                np.savez(f, mean=np.asarray(mean, np.float32), probabilities=np.asarray(probabilities, np.float32))
            os.replace(tmp, path)
        except OSError as exc:  # a read-only or full disk costs speed, not the result
            logger.warning("embedding cache not written (%s)", exc)


@dataclass
class Embedded:
    """The usable files of a set with their features, and what was left out and why."""

    items: list[Item]
    features: np.ndarray  # (N, D) utterance features (mean frame feature)
    probabilities: np.ndarray  # (N, V) the model's own head
    model_labels: tuple[str, ...]
    failed: list[dict] = field(default_factory=list)  # {"file", "error"}: could not be read or decoded
    duplicates: list[dict] = field(default_factory=list)  # {"file", "same_as"}: same audio, same label, left out
    computed: int = 0  # files run through the model
    cached: int = 0  # files found in the cache

    @property
    def labels(self) -> list[str]:
        return [i.label for i in self.items]


def _digests(items: list[Item]) -> tuple[dict[int, str], list[dict]]:
    digests, failed = {}, []
    for k, item in enumerate(items):
        try:
            digests[k] = hashlib.sha256(item.read()).hexdigest()
        except (OSError, ValueError, KeyError) as exc:  # KeyError: a zip member that went away
            failed.append({"file": item.name, "error": f"cannot be read: {exc}"})
    return digests, failed


def _duplicates(items: list[Item], digests: dict[int, str]) -> tuple[set[int], list[dict]]:
    """(indices to leave out, records): the same audio twice under one label keeps the first; under
    two labels it is an error, as the set would say two things about one recording."""
    first: dict[str, int] = {}
    drop, records, clashes = set(), [], []
    for k, digest in digests.items():
        if digest not in first:
            first[digest] = k
            continue
        a, b = items[first[digest]], items[k]
        if a.label != b.label:
            clashes.append(f"{a.name} ({a.label}) = {b.name} ({b.label})")
        else:
            drop.add(k)
            records.append({"file": b.name, "same_as": a.name})
    if clashes:
        more = f" and {len(clashes) - 5} more" if len(clashes) > 5 else ""
        raise DatasetError(
            f"the same audio is filed under two labels: {'; '.join(clashes[:5])}{more}. Keep each recording under one label."
        )
    return drop, records


def embed_dataset(
    engine,
    dataset: Dataset,
    cache: EmbeddingCache | bool | None = True,
    progress: Callable[[int, int], None] | None = None,
    group: int = GROUP,
) -> Embedded:
    """Each file's utterance feature and 9-class probabilities, from the cache or the engine.
    `cache`: True for the engine's default cache, False/None for none. Files that cannot be read
    or decoded are listed in `failed` and skipped; `progress(done, total)` after each file."""
    if cache is True:
        cache = EmbeddingCache.for_engine(engine)
    items = dataset.items
    digests, failed = _digests(items)
    drop, duplicates = _duplicates(items, digests)
    todo = [k for k in digests if k not in drop]
    found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    pending = []
    for k in todo:
        hit = cache.get(digests[k]) if cache else None
        if hit is not None and len(hit[0]) == engine.embed_dim:
            found[k] = hit
        else:
            pending.append(k)
    done = len(found)
    if progress:
        progress(done, len(todo))
    for lo in range(0, len(pending), group):
        batch = pending[lo : lo + group]
        sources, ready = [], []
        for k in batch:
            try:
                sources.append(items[k].read())
                ready.append(k)
            except (OSError, ValueError, KeyError) as exc:
                failed.append({"file": items[k].name, "error": f"cannot be read: {exc}"})
        results = engine.predict_batch(
            sources, extract_embedding=True, errors="return", names=[items[k].name for k in ready], heads=[]
        )
        for k, res in zip(ready, results):
            if isinstance(res, Exception):
                failed.append({"file": items[k].name, "error": getattr(res, "message", str(res))})
                continue
            found[k] = (res.embedding.astype(np.float32), res.probabilities.astype(np.float32))
            if cache:
                cache.put(digests[k], *found[k])
        done += len(batch)
        if progress:
            progress(done, len(todo))
    keep = [k for k in range(len(items)) if k in found]
    dim, nv = engine.embed_dim, len(engine.labels)
    return Embedded(
        items=[items[k] for k in keep],
        features=np.stack([found[k][0] for k in keep]) if keep else np.zeros((0, dim), np.float32),
        probabilities=np.stack([found[k][1] for k in keep]) if keep else np.zeros((0, nv), np.float32),
        model_labels=tuple(engine.labels),
        failed=sorted(failed, key=lambda f: f["file"]),
        duplicates=duplicates,
        computed=len(found) - (len(todo) - len(pending)),
        cached=len(todo) - len(pending),
    )
