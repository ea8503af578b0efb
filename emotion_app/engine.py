"""The inference engine: load the model once, then predict single inputs or batches.

Decoding happens before the model call (audio/source.py), assembling results after it
(model/chunking.py, results.py); `Engine.run_chunks` is the only place that touches the model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from .audio.samples import AudioInfo, AudioWarning
from .audio.source import open_source
from .constants import (
    FRAME_HOP,
    GRANULARITIES,
    SAMPLE_RATE,
    Granularity,
)
from .engine_load import load_backend, load_speaker_model
from .engine_options import EngineOptions
from .errors import AudioError, EmotionAppError
from .fields import parse_choice
from .labelset import LabelSet
from .model.batcher import MAX_PADDING, Batcher, BatchStats
from .model.chunking import Accumulator, ChunkOutput, iter_chunks, window_frames
from .model.head import engine_model_id, frame_readings, load_heads, select_heads
from .model.heap import IdleTrim
from .model.sliding import StreamWindow
from .results import EmotionResult, read_heads

logger = logging.getLogger(__name__)

ERRORS_MODES = ("raise", "return")  # predict_batch's `errors`
MAX_FRAME_EMBEDDING_S = 600.0  # per-frame embeddings are kept in memory: (T, D) float32, 12 MB a minute at D=1024
MAX_FRAME_EMBEDDING_SAMPLES = int(MAX_FRAME_EMBEDDING_S * SAMPLE_RATE)
FAN_OUT = 8  # a request's model batches in flight at once on a concurrent backend (its replicas)


@dataclass
class _Work:
    """One input on its way through predict_batch: its partial outputs and its timings (s)."""

    t0: float
    acc: Accumulator = field(default_factory=Accumulator)
    infer: float = 0.0
    decode: float = 0.0
    info: AudioInfo | None = None
    warnings: list[AudioWarning] = field(default_factory=list)
    heads: list = field(default_factory=list)  # the custom heads to apply (model/head.py)
    head_frames: dict = field(default_factory=dict)  # chunk start -> {head name: (T, V)}, frame mode
    keep_features: bool = False  # keep the (T, D) frame features (the embedding was asked for)
    labels: LabelSet | None = None  # the label set the result is given in (labelset.py); None: all


class Engine:
    """emotion2vec+ loaded once; thread-safe (model calls are serialised, or merged across requests
    once `enable_batching` was called).

    `remote`: a model that runs elsewhere instead of `options.model` loaded here (scale/remote.py:
    Ray Serve replicas, which batch), with the TorchModel contract (labels, embed_dim, device, dtype,
    run_chunks, head_probabilities) and `concurrent = True`: it is called from many threads at once
    and reports its batches through its `observe` attribute."""

    def __init__(self, options: EngineOptions | dict | None = None, *, remote=None, **overrides):
        self.options = opts = EngineOptions.make(options, **overrides)
        t0 = time.perf_counter()
        self.model_dir, self.backend, self.vad_file = load_backend(opts, remote)
        self.device, self.dtype = self.backend.device, self.backend.dtype
        shown = Path(opts.model).name if Path(opts.model).is_dir() else opts.model  # a local folder by its name only
        self._model_info = {"id": shown, "device": str(self.device), "dtype": self.dtype, "backend": opts.backend}
        self.labels = self.backend.labels
        self.embed_dim = self.backend.embed_dim
        self.heads = load_heads(opts.heads, engine_model_id(self), self.embed_dim)  # name -> Head
        cuda = str(self.device).startswith("cuda")
        self.batch_size = opts.batch_size or (16 if cuda else 4)
        self.max_batch_samples = int((opts.max_batch_s or (480.0 if cuda else 60.0)) * SAMPLE_RATE)
        self._frames_per_window = window_frames(opts.window_s)
        self._lock = threading.Lock()
        self._batcher: Batcher | None = None
        self._idle = IdleTrim()  # the C heap given back when no model call ran for a while (model/heap.py)
        self.observers: list = []  # functions of BatchStats, called after each model call (the server's metrics)
        if self.remote:
            self.backend.observe = self._observe
        self._speakers = None  # the CAM++ model, once a conversation asks for it
        self._speakers_lock = threading.Lock()
        self.load_seconds = time.perf_counter() - t0
        how = [opts.backend, self.dtype]
        if str(self.device) == "cpu" and not self.remote:
            how.append(f"{opts.threads} thread{'s' * (opts.threads > 1)}" if opts.threads else "a thread per core")
        logger.info("model %s ready on %s (%s) in %.1f s", opts.model, self.device, ", ".join(how), self.load_seconds)

    @property
    def model(self):
        """The torch module (torch backend only)."""
        return self.backend.model

    @property
    def model_info(self) -> dict[str, str]:
        """The model as result.json's `model` and /api/health say it: id (a local folder by its name
        only: no path of this machine), device, dtype, backend. `model_dir` is the local folder."""
        return dict(self._model_info)

    # -- the model call -------------------------------------------------------------------------
    def run_chunks(self, chunks: Sequence[np.ndarray], keep_frames: bool = False) -> list[ChunkOutput]:
        """Run 16 kHz mono chunks (each at most a window long) in one padded batch: the only
        place that calls the model. Calls are serialised (one model, many request threads), or merged
        with other threads' calls into shared model calls after `enable_batching`; a concurrent
        backend (Ray Serve replicas) takes them all at once and batches them itself."""
        if self.remote:
            return self.backend.run_chunks(chunks, keep_frames)
        if self._batcher is not None:
            outputs = self._batcher.run(chunks, keep_frames)
        else:
            t0 = time.perf_counter()
            with self._lock:
                t1 = time.perf_counter()
                outputs = self.backend.run_chunks(chunks, keep_frames)
            if self.observers:
                self._observe(BatchStats(1, len(chunks), (t1 - t0,), time.perf_counter() - t1))
        self._idle.touch()
        return outputs

    @property
    def slides(self) -> bool:
        """Whether `run_windows` slides live windows' conv features (model/sliding.py): the torch
        backend here with a layer-norm extractor. Not the ONNX backend (its graph takes samples)
        nor remote replicas (the caches would live in another process): they score whole windows."""
        return not self.remote and bool(getattr(self.backend, "slides", False))

    def run_windows(self, windows: Sequence[StreamWindow]) -> list[ChunkOutput]:
        """Score live windows (the live scheduler's model call when `slides`): each stream's conv
        features slid from its last window, the rest of the model on the whole window; under the
        model's lock, as `run_chunks`."""
        t0 = time.perf_counter()
        with self._lock:
            t1 = time.perf_counter()
            outputs = self.backend.run_windows(windows)
        if self.observers:
            self._observe(BatchStats(1, len(windows), (t1 - t0,), time.perf_counter() - t1))
        self._idle.touch()
        return outputs

    @property
    def remote(self) -> bool:
        """Whether the model runs elsewhere (Ray Serve replicas, scale/remote.py): a concurrent
        backend, called from many threads at once, with no model object here."""
        return getattr(self.backend, "concurrent", False)

    def enable_batching(self, max_chunks: int | None = None, wait_s: float = 0.0) -> None:
        """Merge the model calls of concurrent requests (model/batcher.py): at most `max_chunks` chunks
        a model call (None: the engine's batch size) and its padded-samples budget, waiting at most
        `wait_s` for more calls once one arrives. Results equal unbatched ones. A concurrent backend
        batches in its replicas instead: nothing changes for it."""
        if self.remote:
            return
        max_chunks = max_chunks or self.batch_size
        if self._batcher is None:
            self._batcher = Batcher(self._run_locked, max_chunks, self.max_batch_samples, wait_s, on_batch=self._observe)
        else:
            self._batcher.max_chunks, self._batcher.wait_s = max_chunks, wait_s

    def _run_locked(self, chunks, keep_frames):
        with self._lock:
            return self.backend.run_chunks(chunks, keep_frames)

    def _observe(self, stats: BatchStats) -> None:
        for observer in list(self.observers):
            try:
                observer(stats)
            except Exception:  # the metrics must not fail a request
                logger.exception("a batch observer failed")

    def head_probabilities(self, mean: np.ndarray) -> np.ndarray:
        """(D,) feature -> (V,) probabilities, as the model's head computes them (under the same lock:
        the head is part of the model)."""
        if self.remote:
            return self.backend.head_probabilities(mean)
        with self._lock:
            return self.backend.head_probabilities(mean)

    def speaker_model(self):
        """CAM++ (speakers/model.py), loaded on the first conversation that needs it, on this engine's
        device; its calls are serialised like the emotion model's."""
        with self._speakers_lock:
            if self._speakers is None:
                self._speakers = load_speaker_model(self.options, self.device, self.dtype, remote=self.remote)
            return self._speakers

    # -- public API -----------------------------------------------------------------------------
    def predict(
        self,
        source,
        *,
        granularity: Granularity = "utterance",
        extract_embedding: bool = False,
        sample_rate: int | None = None,
        name: str | None = None,
        heads: Sequence | None = None,
        labels=None,
    ) -> EmotionResult:
        """Predict one input (path, bytes, file object, array + sample_rate, (rate, array), Audio).
        `granularity`, `extract_embedding`, `heads`, `labels`: as for predict_batch."""
        if isinstance(source, np.ndarray):
            source = open_source(source, sample_rate, max_duration_s=self.options.max_duration_s, name=name)
        results = self.predict_batch(
            [source], granularity=granularity, extract_embedding=extract_embedding, names=[name], heads=heads, labels=labels
        )
        return results[0]

    def predict_batch(
        self,
        sources: Iterable,
        *,
        granularity: Granularity = "utterance",
        extract_embedding: bool = False,
        errors: Literal["raise", "return"] = "raise",
        names: Sequence[str | None] | None = None,
        heads: Sequence | None = None,
        labels=None,
    ) -> list[EmotionResult | EmotionAppError]:
        """Predict many inputs, batched by length. Each result equals the one-at-a-time result.

        `granularity`: "utterance" (one reading per input) or "frame" (50 Hz frame probabilities as
        well); `extract_embedding`: the (D,) utterance feature, or (T, D) frame features in frame mode.
        errors="raise" stops at the first bad input; errors="return" puts the EmotionAppError in
        that input's place and goes on. `heads`: the custom heads whose readings each result gets
        (`EmotionResult.heads`): None for all the engine's heads, else names of loaded heads or Head
        objects; in frame mode each head also reads every frame. `labels`: a label set (names, a
        comma-separated string or a LabelSet; labelset.py): every probability renormalised over it.
        """
        granularity = parse_choice(granularity, "granularity", GRANULARITIES, "bad_granularity")
        parse_choice(errors, "errors", ERRORS_MODES)
        sources = list(sources)
        names = list(names) if names is not None else [None] * len(sources)
        chosen = select_heads(self.heads, heads, engine_model_id(self), self.embed_dim)
        label_set = self.label_set(labels)
        keep_frames = granularity == "frame" and (extract_embedding or bool(chosen))
        results: list = [None] * len(sources)
        pending: list[tuple[int, np.ndarray, _Work]] = []  # short inputs waiting to be batched
        for i, src in enumerate(sources):
            try:
                work = _Work(time.perf_counter(), heads=chosen, keep_features=extract_embedding, labels=label_set)
                single = self._feed(src, names[i], work, keep_frames)
                if single is not None:
                    pending.append((i, single, work))
                else:
                    results[i] = self._finish(work, granularity, extract_embedding)
                if len(pending) >= 8 * self.batch_size:
                    self._flush(pending, results, granularity, extract_embedding, keep_frames)
            except EmotionAppError as exc:
                if errors == "raise":
                    raise
                logger.info("input %d failed: %s", i, exc)
                results[i] = exc
        self._flush(pending, results, granularity, extract_embedding, keep_frames)
        return results

    def label_set(self, labels) -> LabelSet | None:
        """`labels` (None, names, a comma-separated string or a LabelSet) checked against this model's labels."""
        if labels is None or isinstance(labels, LabelSet):
            if labels is not None:
                LabelSet.parse(labels.keys, self.labels)  # a set made for another model is refused here
            return labels
        return LabelSet.parse(labels, self.labels)

    # -- internals ------------------------------------------------------------------------------
    def _feed(self, src, name, work: _Work, keep_frames) -> np.ndarray | None:
        """Decode `src`; run long inputs chunk by chunk now. Returns a short input's samples."""
        source = open_source(src, max_duration_s=self.options.max_duration_s, name=name)
        with source.blocks() as blocks:
            chunks = iter_chunks(blocks, self._frames_per_window)
            first = next(chunks)
            second = next(chunks, None)
            if second is not None:  # long: run its chunks now, a batch at a time
                group = [first, second]
                for item in chunks:
                    if len(group) * len(item[1]) >= self.max_batch_samples or len(group) >= self.batch_size:
                        self._run_group(group, work, keep_frames)
                        group = []
                    group.append(item)
                self._run_group(group, work, keep_frames)
        work.info, work.warnings = source.info, list(source.warnings)
        work.decode = time.perf_counter() - work.t0 - work.infer
        return first[1] if second is None else None

    def _run_group(self, group, work: _Work, keep_frames) -> None:
        t = time.perf_counter()
        for (start, _), out in zip(group, self.run_chunks([c for _, c in group], keep_frames)):
            self._add(work, start, out)
        work.infer += time.perf_counter() - t

    def _flush(self, pending, results, granularity, extract_embedding, keep_frames) -> None:
        pending.sort(key=lambda item: len(item[1]))
        batches = []
        while pending:
            n = 1
            shortest = len(pending[0][1])
            while (
                n < min(self.batch_size, len(pending))
                and (n + 1) * len(pending[n][1]) <= self.max_batch_samples
                and len(pending[n][1]) <= MAX_PADDING * shortest
            ):
                n += 1
            batch, pending[:n] = pending[:n], []
            batches.append(batch)
        for batch, (outs, seconds) in zip(batches, self._run_batches(batches, keep_frames)):
            share = seconds / sum(len(s) for _, s, _ in batch)
            for (i, samples, work), out in zip(batch, outs):
                self._add(work, 0, out)
                work.infer += share * len(samples)
                results[i] = self._finish(work, granularity, extract_embedding)

    def _run_batches(self, batches, keep_frames):
        """Each batch's (outputs, seconds), in order: one after the other (lazily), or, on a concurrent
        backend (Ray Serve replicas), all at once, so that a long recording's segments fan out over
        the replicas."""

        def run(batch):
            t = time.perf_counter()
            return self.run_chunks([samples for _, samples, _ in batch], keep_frames), time.perf_counter() - t

        if len(batches) > 1 and self.remote:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(len(batches), FAN_OUT), thread_name_prefix="fan-out") as pool:
                return list(pool.map(run, batches))
        return map(run, batches)

    @staticmethod
    def _add(work: _Work, start: int, out: ChunkOutput) -> None:
        """Keep a chunk's output. Custom heads read its frame features now, so an input's (T, D)
        features are kept whole only when its embedding was asked for."""
        if work.keep_features and out.frames is not None and start + len(out.frames) * FRAME_HOP > MAX_FRAME_EMBEDDING_SAMPLES:
            raise AudioError(
                f"Per-frame embeddings are limited to {MAX_FRAME_EMBEDDING_S / 60:g} minutes of audio (each minute takes "
                f"{3000 * out.frames.shape[1] * 4 / 1e6:.0f} MB); use utterance granularity, or segment=window with "
                "extract_embedding for one embedding per window.",
                "too_long",
            )
        if work.heads and out.frames is not None:
            work.head_frames[start] = frame_readings(work.heads, out.frames)
            if not work.keep_features:
                out = replace(out, frames=None)
        work.acc.add(start, out)

    def _finish(self, work: _Work, granularity, extract_embedding) -> EmotionResult:
        parts = work.acc.ordered()
        if len(parts) == 1:  # exactly FunASR's computation
            probs, mean = parts[0].probabilities, parts[0].mean
        else:
            mean = work.acc.mean_feature().astype(np.float32)
            probs = self.head_probabilities(mean)
        embedding = None
        if extract_embedding:
            embedding = work.acc.frames() if granularity == "frame" else mean
        labels, frames = self.labels, work.acc.frame_probabilities()
        if work.labels is not None:
            probs, frames = work.labels.restrict(labels, probs), work.labels.restrict(labels, frames)
            labels = work.labels.keys
        return EmotionResult(
            labels=labels,
            probabilities=probs,
            frame_probabilities=frames,
            granularity=granularity,
            duration_s=work.info.duration_s,
            embedding=embedding,
            audio=work.info,
            warnings=work.warnings,
            chunks=len(parts),
            timings={"decode": work.decode, "inference": work.infer, "total": time.perf_counter() - work.t0},
            model=self.model_info,
            heads=read_heads(work.heads, mean, [work.head_frames[s] for s in sorted(work.head_frames)] or None),
            label_set=work.labels.keys if work.labels is not None else None,
        )


_shared: dict[EngineOptions, Engine] = {}
_shared_lock = threading.Lock()


def get_engine(options: EngineOptions | dict | None = None, **overrides) -> Engine:
    """The process-wide engine for these options, loaded on first use (one model per process)."""
    opts = EngineOptions.make(options, **overrides)
    with _shared_lock:
        if opts not in _shared:
            _shared[opts] = Engine(opts)
        return _shared[opts]
