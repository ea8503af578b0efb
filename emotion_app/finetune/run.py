"""One fine-tune, from DATA to a model folder: the function behind `emotion-app fine-tune`.

    from emotion_app.finetune.run import FineTuneOptions, fine_tune

    run = fine_tune("my_set/", model="iic/emotion2vec_plus_large", out="models/mine",
                    options=FineTuneOptions(top=4, epochs=10), test="held_out.csv")
    run.folder, run.card["test"]["ua"]          # then Engine(model="models/mine")

The steps: read and split the data (data.py), load the base model, run its frozen lower part
once per clip (features.py, cached), build the trainable top (top.py, lora.py), train
(loop.py), merge and write the folder with its training card (export.py). While it trains,
`<out>.partial/checkpoint.pt` holds the last finished epoch (`resume=True` goes on from there);
it is removed when the folder is written.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from ..constants import DEFAULT_MODEL
from ..fields import OptionError
from ..heads.dataset import Dataset, parse_label_map
from .augment import Augmentation, augmented_clips
from .data import Split, prepare
from .export import CARD_FILE, model_files, write_model
from .features import FeatureCache, cache_folder, lower_features, model_hash
from .loop import FRAMES_PER_S, Example, LoopOptions, pooled, scores, train

logger = logging.getLogger(__name__)

FORMAT = "emotion_app.finetune/1"
DEFAULT_TOP = 4
PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class FineTuneOptions(LoopOptions):
    """What trains and how (LoopOptions: epochs, lr, weight_decay, batch_seconds, accumulate,
    patience, seed, precision). `top`: LoRA on the top K blocks (default 4, or all blocks of a
    smaller model); `unfreeze`: all weights of the top K blocks instead of adapters."""

    top: int | None = None
    unfreeze: int | None = None
    rank: int = 8  # LoRA rank
    alpha: float = 16.0  # LoRA scale alpha / rank
    max_clip_s: float = 30.0  # longer clips are cut to their first max_clip_s seconds
    speeds: tuple[float, ...] = ()  # augmentation: one copy of each training clip per speed factor
    noise_snr: float | None = None  # augmentation: one copy with noise at this SNR (dB)
    noise: str | None = None  # the noise recording for noise_snr (default: white noise)
    device: str = "auto"

    def __post_init__(self):
        if self.top is not None and self.unfreeze is not None:
            raise ValueError("choose --top K (LoRA adapters) or --unfreeze K (full fine-tuning of K blocks), not both")
        for name in ("top", "unfreeze"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 block, not {value}")
        checks = {
            "epochs": self.epochs >= 0, "lr": self.lr > 0, "weight_decay": self.weight_decay >= 0,
            "batch_seconds": self.batch_seconds > 0, "accumulate": self.accumulate >= 1, "patience": self.patience >= 0,
            "rank": self.rank >= 1, "alpha": self.alpha > 0, "max_clip_s": self.max_clip_s > 0,
        }  # fmt: skip
        wrong = [k for k, ok in checks.items() if not ok]
        if wrong:
            raise ValueError(f"out of range: {', '.join(f'{k}={getattr(self, k)}' for k in wrong)}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, not {self.precision!r}")
        self.augmentation()  # checked now

    def augmentation(self) -> Augmentation:
        return Augmentation(tuple(self.speeds), self.noise_snr, self.noise)

    def blocks(self, available: int) -> int:
        k = self.unfreeze or self.top or min(DEFAULT_TOP, available)
        if k > available:
            raise OptionError(f"the model has {available} transformer blocks; train at most {available}, not {k}")
        return k


@dataclass
class FineTuning:
    folder: Path
    card: dict  # training_card.json's content


def checkpoint_path(out: Path) -> Path:
    return Path(f"{Path(out)}.partial") / "checkpoint.pt"


def fine_tune(
    data: Dataset | str | Path,
    *,
    out: str | Path,
    model: str = DEFAULT_MODEL,
    hub: str = "ms",
    val: Dataset | str | Path | None = None,
    test: Dataset | str | Path | None = None,
    label_map: str | dict | None = None,
    options: FineTuneOptions | None = None,
    resume: bool = False,
    cache_root: Path | None = None,
    on_features: Callable[[int, int], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> FineTuning:
    """Fine-tune `model` on `data` and write the folder `out` (see the module docstring).
    DatasetError or OptionError before any training on unusable data or options."""
    import torch

    from ..model.hub import resolve_model
    from ..model.torch_backend import load_model, resolve_device
    from .lora import merge_lora
    from .top import TopModel, new_head, probe_head

    opts = options or FineTuneOptions()
    out = Path(out)
    ckpt = checkpoint_path(out)
    if resume and not ckpt.is_file():
        raise OptionError(f"--resume: no checkpoint at {ckpt}; nothing to continue (start without --resume)")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / CARD_FILE).is_file())):
        raise OptionError(f"{out} exists and is not a fine-tuned model folder (no {CARD_FILE}); choose another --out")
    t0 = time.perf_counter()
    mapping = parse_label_map(label_map) if isinstance(label_map, str) or label_map is None else dict(label_map)
    split = prepare(data, val=val, test=test, label_map=mapping, seed=opts.seed)
    model_dir = resolve_model(model, hub)
    device = resolve_device(opts.device)
    base, tokens = load_model(model_dir, device, torch.float32)
    top = opts.blocks(base.num_blocks)
    cut = base.num_blocks - top
    sha = model_hash(model_dir)
    cache = FeatureCache(cache_folder(sha, cut, cache_root))
    copies = augmented_clips(split.train, opts.augmentation(), opts.seed)  # training clips only
    clips = split.train + split.val + split.test + copies
    feats = lower_features(base, clips, cut, cache, max_clip_s=opts.max_clip_s, progress=on_features)
    t1 = time.perf_counter()

    head, initialised = new_head(base.head, tokens, split.labels, opts.seed)
    net = TopModel(base, head, top, unfreeze=opts.unfreeze is not None, rank=opts.rank, alpha=opts.alpha, seed=opts.seed)
    index = {k: i for i, k in enumerate(split.labels)}
    sets = {part: [Example(feats.tokens[c.digest], index[c.label]) for c in getattr(split, part)] for part in PARTS}
    sets["train"] += [Example(feats.tokens[c.digest], index[c.label]) for c in copies]
    meta = {
        "model": sha, "cut": cut, "labels": list(split.labels),
        "options": {k: v for k, v in asdict(opts).items() if k != "device"},  # another device may go on
        "train": sorted(c.digest + c.label for c in split.train), "val": sorted(c.digest + c.label for c in split.val),
    }  # fmt: skip
    fresh = [i for i, k in enumerate(split.labels) if k not in initialised]
    if fresh and not resume:  # LP-FT: the new rows start as a linear probe of the training clips
        probe = [e for e in sets["train"] if e.label in fresh]
        x = pooled(net, probe, int(opts.batch_seconds * FRAMES_PER_S))
        probe_head(head, x, [e.label for e in probe], fresh, seed=opts.seed)
    if not resume and ckpt.exists():
        logger.info("starting again: the checkpoint %s of an earlier run is replaced", ckpt)
    state = train(net, sets["train"], sets["val"], split.labels, opts, checkpoint=ckpt, resume=resume, meta=meta,
                  on_epoch=on_epoch, on_step=on_step)  # fmt: skip
    t2 = time.perf_counter()
    frames = int(opts.batch_seconds * FRAMES_PER_S)
    reports = {  # in fp32, on the cached tokens
        part: scores(net, sets[part], split.labels, frames, bf16=False) if sets[part] else None for part in ("val", "test")
    }
    trainable = sum(p.numel() for p in net.trainable().values())
    merge_lora(net.base)
    card = training_card(
        model=model, model_dir=model_dir, sha=sha, tokens=tokens, split=split, mapping=mapping, opts=opts, top=top,
        blocks=base.num_blocks, trainable=trainable, initialised=initialised, feats=feats, cache=cache, state=state,
        reports=reports, seconds=(t1 - t0, t2 - t1), places=data_paths(train=data, val=val, test=test),
        augmented=len(copies),
    )  # fmt: skip
    folder = write_model(out, model_files(net.base, model_dir, split.labels, card))
    shutil.rmtree(ckpt.parent, ignore_errors=True)
    logger.info("fine-tuned model written to %s", folder)
    return FineTuning(folder, card)


def data_paths(**parts) -> dict[str, str]:
    """Each part's DATA as an absolute path, where it was given as a path (not as a Dataset)."""
    return {k: str(Path(v).resolve()) for k, v in parts.items() if isinstance(v, (str, Path))}


def training_card(*, model, model_dir, sha, tokens, split: Split, mapping, opts, top, blocks, trainable, initialised,
                  feats, cache, state, reports, seconds, places, augmented) -> dict:  # fmt: skip
    """training_card.json's content: what was trained, on what, how, and how well."""
    return {
        "format": FORMAT,
        "created": datetime.now().isoformat(timespec="seconds"),
        "base_model": {"id": str(model), "folder": str(model_dir), "sha256": sha, "tokens": tokens},
        "labels": list(split.labels),
        "head_rows_from_base": initialised,
        "trained": {
            "method": "unfreeze" if opts.unfreeze is not None else "lora",
            "top_blocks": top,
            "blocks": blocks,
            "trainable_parameters": trainable,
        },
        "options": asdict(opts),
        "data": {
            "sources": split.sources,
            "paths": places,  # where DATA was, to read the held-out part again (report.py)
            "validation": split.how,
            "label_map": mapping,
            "counts": split.counts(),
            "notes": split.notes,
        },
        "features": {
            "computed": feats.computed,
            "cached": feats.cached,
            "cache": str(cache.folder),
            "dtype": "float16",
            "augmented_copies": augmented,
        },
        "curve": state.curve,
        "best_epoch": state.best_epoch,
        "stopped_early": bool(opts.patience and state.stale >= opts.patience and state.epoch < opts.epochs),
        "validation": reports["val"],
        "test": reports["test"],
        "seconds": {"features": round(seconds[0], 3), "training": round(seconds[1], 3)},
    }
