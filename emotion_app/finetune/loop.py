"""The training loop over cached tokens: batches, schedule, loss, validation, checkpoints.

- Batches are bounded by padded seconds (the longest clip of a batch times its size), as the
  engine bounds its batches: clips of similar length go together (sorted within pools of 64),
  the batch order is shuffled; both follow from the seed and the epoch alone.
- AdamW; the learning rate warms up linearly over the first WARMUP of the optimizer steps, then
  decays to zero on a cosine. Gradient accumulation: `accumulate` batches per optimizer step.
- Cross-entropy with class weights n / (V n_c), so every label counts as much as the others.
- bf16 autocast on CUDA and on CPUs with native bf16 (model/devices.py), fp32 elsewhere.
- One line per epoch (loss, validation WA / UA, learning rate, seconds); early stopping when
  validation UA has not improved for `patience` epochs; the best epoch's weights are kept.
- A checkpoint after each epoch (trainable weights, optimizer, schedule, curve, the best state),
  written whole: `resume` continues from it after a Ctrl-C or a crash, and with the same seed the
  result is that of an uninterrupted run (nothing random is drawn outside seed and epoch).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..fields import OptionError
from ..heads.report import classification_scores
from ..model.heap import trim_heap

logger = logging.getLogger(__name__)

WARMUP = 0.1  # of the optimizer steps
POOL = 64  # clips sorted by length together before batching
FRAMES_PER_S = 50


@dataclass(frozen=True)
class LoopOptions:
    epochs: int = 10
    lr: float = 5e-4
    weight_decay: float = 0.01
    batch_seconds: float = 60.0  # padded seconds per batch
    accumulate: int = 1  # batches per optimizer step
    patience: int = 3  # epochs without a better validation UA before stopping (0: never stop early)
    seed: int = 0
    precision: str = "auto"  # "auto" (bf16 where native), "bf16", "fp32"


@dataclass
class Example:
    tokens: np.ndarray  # (E+T, D) fp16
    label: int


@dataclass
class State:
    """What a checkpoint holds, beside the weights and the optimizer's state."""

    epoch: int = 0  # epochs finished
    curve: list[dict] = field(default_factory=list)
    best_ua: float = -1.0
    best_epoch: int = 0
    best: dict[str, torch.Tensor] | None = None  # the trainable weights of the best epoch
    stale: int = 0  # epochs since the best


def batches(lengths: list[int], max_frames: int, seed: int) -> list[list[int]]:
    """Index batches whose padded size (longest x count) stays within `max_frames` (one clip at
    least), similar lengths together, in an order that depends on `seed` only."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths)).tolist()
    out: list[list[int]] = []
    for lo in range(0, len(order), POOL):
        pool = sorted(order[lo : lo + POOL], key=lambda i: lengths[i])
        batch: list[int] = []
        for i in pool:
            if batch and max(lengths[i], lengths[batch[-1]]) * (len(batch) + 1) > max_frames:
                out.append(batch)
                batch = []
            batch.append(i)
        out.append(batch)
    return [out[k] for k in rng.permutation(len(out))]


def collate(examples: list[Example], extra: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tokens (B, E+T, D) fp32 zero-padded, mask (B, T) real frames, labels (B,))."""
    longest = max(len(e.tokens) for e in examples)
    x = np.zeros((len(examples), longest, examples[0].tokens.shape[1]), np.float32)
    for k, e in enumerate(examples):
        x[k, : len(e.tokens)] = e.tokens
    frames = torch.tensor([len(e.tokens) - extra for e in examples])
    mask = torch.arange(longest - extra)[None, :] < frames[:, None]
    labels = torch.tensor([e.label for e in examples])
    return torch.from_numpy(x).to(device), mask.to(device), labels.to(device)


def use_bf16(precision: str, device: torch.device) -> bool:
    from ..model.devices import cpu_has_native_bf16

    if precision == "fp32":
        return False
    native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    if precision == "bf16" and not native:
        raise OptionError("bf16 on this CPU would be emulated (no AVX512_BF16 or AMX-BF16), slower than fp32; use fp32")
    return native


def schedule(step: int, total: int) -> float:
    """The learning rate's factor at optimizer step `step` of `total`: warm-up, then cosine to 0."""
    warm = max(1, round(WARMUP * total))
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))


def predict(model, examples: list[Example], max_frames: int, bf16: bool) -> np.ndarray:
    """(N, V) fp32 probabilities, in the order of `examples`."""
    device, extra = next(model.parameters()).device, model.base.cfg.num_extra_tokens
    out = np.zeros((len(examples), model.base.head.out_features), np.float32)
    lengths = [len(e.tokens) for e in examples]
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
        for idx in batches(lengths, max_frames, 0):
            x, mask, _ = collate([examples[i] for i in idx], extra, device)
            out[idx] = torch.softmax(model(x, mask).float(), -1).cpu().numpy()
            trim_heap()  # batches differ in shape: what one frees, glibc would keep (model/heap.py)
    return out


def pooled(model, examples: list[Example], max_frames: int) -> np.ndarray:
    """(N, D) fp32 mean frames that the head reads, in the order of `examples`."""
    device, extra = next(model.parameters()).device, model.base.cfg.num_extra_tokens
    out = np.zeros((len(examples), model.base.head.in_features), np.float32)
    model.eval()
    with torch.no_grad():
        for idx in batches([len(e.tokens) for e in examples], max_frames, 0):
            x, mask, _ = collate([examples[i] for i in idx], extra, device)
            out[idx] = model(x, mask, pooled=True).float().cpu().numpy()
            trim_heap()
    return out


def scores(model, examples: list[Example], labels: tuple[str, ...], max_frames: int, bf16: bool) -> dict:
    p = predict(model, examples, max_frames, bf16)
    return classification_scores([labels[e.label] for e in examples], [labels[i] for i in p.argmax(1)], labels)


def train(
    model,
    train_set: list[Example],
    val_set: list[Example],
    labels: tuple[str, ...],
    opts: LoopOptions,
    *,
    checkpoint: Path,
    resume: bool = False,
    meta: dict | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> State:
    """Train `model` (a TopModel) in place; returns the State with the best epoch's weights.
    `meta` (what the run was started with) is stored in each checkpoint; `resume` refuses a
    checkpoint whose meta differs."""
    device = next(model.parameters()).device
    bf16 = use_bf16(opts.precision, device)
    extra = model.base.cfg.num_extra_tokens
    max_frames = max(1, int(opts.batch_seconds * FRAMES_PER_S))
    params = model.trainable()
    optimizer = torch.optim.AdamW(params.values(), lr=opts.lr, weight_decay=opts.weight_decay)
    lengths = [len(e.tokens) for e in train_set]
    per_epoch = math.ceil(len(batches(lengths, max_frames, opts.seed)) / opts.accumulate)
    total = max(1, per_epoch * opts.epochs)
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: schedule(s, total))
    counts = np.bincount([e.label for e in train_set], minlength=len(labels)).astype(np.float64)
    weights = torch.tensor(len(train_set) / (len(labels) * np.maximum(counts, 1)), dtype=torch.float32, device=device)
    state = State()
    if resume:
        saved = torch.load(checkpoint, map_location=device, weights_only=True)
        if saved["meta"] != (meta or {}):
            changed = sorted(k for k in {**saved["meta"], **(meta or {})} if saved["meta"].get(k) != (meta or {}).get(k))
            raise OptionError(
                f"--resume: the checkpoint {checkpoint} was made with other {', '.join(changed)}; "
                "resume with the same data and options, or start again without --resume"
            )
        model.load_state_dict(saved["trainable"], strict=False)
        optimizer.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["schedule"])
        state = State(**saved["state"])
        logger.info("resuming after epoch %d of %d", state.epoch, opts.epochs)
    if state.best is None:
        state.best = {k: v.detach().clone() for k, v in params.items()}
    steps_done = state.epoch * per_epoch
    while state.epoch < opts.epochs and not (opts.patience and state.stale >= opts.patience):
        t0 = time.perf_counter()
        model.train()
        epoch_batches = batches(lengths, max_frames, opts.seed * 100_003 + state.epoch)
        loss_sum, n_seen = 0.0, 0
        optimizer.zero_grad(set_to_none=True)
        for k, idx in enumerate(epoch_batches):
            x, mask, y = collate([train_set[i] for i in idx], extra, device)
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                logits = model(x, mask)
            loss = F.cross_entropy(logits.float(), y, weight=weights)
            (loss / opts.accumulate).backward()
            loss_sum += float(loss.detach()) * len(idx)
            n_seen += len(idx)
            del x, logits, loss
            trim_heap()
            if (k + 1) % opts.accumulate == 0 or k + 1 == len(epoch_batches):
                optimizer.step()
                sched.step()
                optimizer.zero_grad(set_to_none=True)
                steps_done += 1
                if on_step:
                    on_step(steps_done, total)
        state.epoch += 1
        val = scores(model, val_set, labels, max_frames, bf16)
        record = {
            "epoch": state.epoch, "loss": round(loss_sum / max(1, n_seen), 5), "val_wa": val["wa"], "val_ua": val["ua"],
            "lr": float(f"{sched.get_last_lr()[0]:.3g}"), "seconds": round(time.perf_counter() - t0, 3),
        }  # fmt: skip
        state.curve.append(record)
        if val["ua"] > state.best_ua:
            state.best_ua, state.best_epoch, state.stale = val["ua"], state.epoch, 0
            state.best = {k: v.detach().clone() for k, v in params.items()}
        else:
            state.stale += 1
        logger.info(
            "epoch %d/%d: loss %.4f, validation WA %.3f UA %.3f, lr %.3g, %.1f s",
            state.epoch, opts.epochs, record["loss"], val["wa"], val["ua"], record["lr"], record["seconds"],
        )  # fmt: skip
        save_checkpoint(checkpoint, model, optimizer, sched, state, meta or {})
        if on_epoch:
            on_epoch(record)
    if opts.patience and state.stale >= opts.patience and state.epoch < opts.epochs:
        logger.info("stopped early: validation UA has not improved for %d epochs", state.stale)
    with torch.no_grad():
        for k, v in state.best.items():
            params[k].copy_(v)
    return state


def save_checkpoint(path: Path, model, optimizer, sched, state: State, meta: dict) -> None:
    """The training state after an epoch, written whole (temporary file, then rename); plain
    tensors and containers only, so that resuming loads it with `weights_only`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    trainable = {k: v.detach() for k, v in model.trainable().items()}
    saved = {"trainable": trainable, "optimizer": optimizer.state_dict(), "schedule": sched.state_dict(),
             "state": asdict(state), "meta": meta}  # fmt: skip
    torch.save(saved, tmp)
    os.replace(tmp, path)
