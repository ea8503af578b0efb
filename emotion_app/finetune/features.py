"""The frozen lower part of the model, run once per clip, its output kept on disk.

Everything below the top K transformer blocks (feature extractor, projection, positional convs,
extra tokens and the lower blocks) does not change during training, so each clip goes through it
once: its output, (E+T, D) tokens with the E extra tokens first, is stored as fp16 in

    $EMOTION_APP_CACHE/finetune/<model hash>-cut<n>/<aa>/<audio sha256>.npy

(default `~/.cache/emotion_app`): keyed by the sha256 of model.pt and config.yaml, the number of
blocks below the cut, and the sha256 of the audio file's bytes (an augmented copy: of that and its
change, augment.py). Entries are written whole (temporary file, then rename), so a pass that is
stopped keeps what it finished and the next run goes on from there; a second run, or a run with
other data that shares clips, reuses them. Epochs then cost only the top K blocks: for plus_large
at K = 4, a third of the blocks and none of the convolutions.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constants import SAMPLE_RATE
from ..heads.dataset import DatasetError
from ..model.heap import trim_heap
from .data import Clip

logger = logging.getLogger(__name__)

HASH_BLOCK = 1 << 22


def model_hash(model_dir: Path) -> str:
    """sha256 over model.pt and config.yaml (the weights and the architecture they are read with)."""
    h = hashlib.sha256()
    for name in ("config.yaml", "model.pt"):
        with open(Path(model_dir) / name, "rb") as f:
            while block := f.read(HASH_BLOCK):
                h.update(block)
    return h.hexdigest()


def cache_folder(model_sha: str, cut: int, root: Path | None = None) -> Path:
    from ..model.checkpoint import cache_root  # one owner of $EMOTION_APP_CACHE

    return Path(root or cache_root() / "finetune") / f"{model_sha[:16]}-cut{cut}"


class FeatureCache:
    """Audio sha256 -> (E+T, D) fp16 tokens below the cut, for one model and cut."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _path(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}.npy"

    def get(self, digest: str) -> np.ndarray | None:
        try:
            return np.load(self._path(digest))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("feature cache entry %s is damaged (%s); computing it again", digest[:12], exc)
            return None

    def put(self, digest: str, tokens: np.ndarray) -> None:
        path = self._path(digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                np.save(f, tokens.astype(np.float16))
            os.replace(tmp, path)
        except OSError as exc:  # a read-only or full disk costs time on the next run, not this one
            logger.warning("feature cache not written (%s)", exc)


@dataclass
class Features:
    tokens: dict[str, np.ndarray]  # audio sha256 -> (E+T, D) fp16
    computed: int  # clips run through the lower part now
    cached: int  # clips found in the cache


def lower_features(
    model,
    clips: list[Clip],
    cut: int,
    cache: FeatureCache,
    *,
    max_clip_s: float,
    progress: Callable[[int, int], None] | None = None,
) -> Features:
    """The tokens below block `cut` of every clip (each digest once), from `cache` or computed one
    clip at a time (no padding: the numbers the clip gives alone). Files that cannot be decoded are
    all listed in one DatasetError, after the others are cached."""
    import torch

    from ..audio.source import load_audio
    from ..errors import EmotionAppError

    digests = {c.digest: c for c in clips}
    tokens, failed, computed = {}, [], 0
    limit = int(max_clip_s * SAMPLE_RATE)
    for done, (digest, clip) in enumerate(digests.items(), 1):
        hit = cache.get(digest)
        if hit is not None and hit.shape[-1] == model.cfg.embed_dim:
            tokens[digest] = hit
        else:
            try:
                samples = load_audio(clip.item.read(), name=clip.name).samples[:limit]
                if clip.change is not None:  # an augmented copy (augment.py)
                    samples = clip.change(samples, digest)
                if model.cfg.num_frames(len(samples)) < 1:
                    raise DatasetError(f"shorter than {model.cfg.min_samples() / SAMPLE_RATE * 1000:.0f} ms")
            except (EmotionAppError, OSError) as exc:
                message = getattr(exc, "message", None) or str(exc)
                failed.append(message if clip.name in message else f"{clip.name}: {message}")  # decoders name the file
                continue
            with torch.inference_mode():
                wav = torch.from_numpy(samples).to(model.extra_tokens.device)[None]
                x, mask = model.embed(wav)
                x = model.run_blocks(x, mask, 0, cut)[0]  # (E+T, D)
            tokens[digest] = x.float().cpu().numpy().astype(np.float16)
            del x
            cache.put(digest, tokens[digest])
            computed += 1
            trim_heap()
        if progress:
            progress(done, len(digests))
    if failed:
        raise DatasetError(
            f"{len(failed)} files cannot be decoded: {'; '.join(failed[:5])}{' ...' if len(failed) > 5 else ''}. "
            "Fix or remove them; the others are cached and will not be computed again."
        )
    return Features(tokens, computed, len(digests) - computed)
