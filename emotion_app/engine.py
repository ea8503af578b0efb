"""The inference engine: load the model once, then predict single inputs or batches.

Decoding happens before the model call (audio.py), assembling results after it (chunking.py,
results.py); `Engine.run_chunks` is the only place that touches the model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, fields, replace

import numpy as np

from .audio import Audio, AudioStream, is_array_input, load_audio
from .chunking import Accumulator, ChunkOutput, iter_chunks, window_frames
from .constants import DEFAULT_MAX_DURATION_S, DEFAULT_MODEL, DEFAULT_WINDOW_S, SAMPLE_RATE, label_for_token
from .errors import EmotionAppError, ModelLoadError
from .results import EmotionResult

logger = logging.getLogger(__name__)

GRANULARITIES = ("utterance", "frame")
DTYPES = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class EngineOptions:
    """How to load and run the model. `Engine(dict)` and `Engine(**kwargs)` are accepted too."""

    model: str = DEFAULT_MODEL  # hub id, alias (emotion2vec_plus_large|base|seed) or local folder
    hub: str = "ms"  # "ms" (ModelScope) or "hf" (Hugging Face)
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:1"
    dtype: str = "fp32"  # "fp32"; "fp16" / "bf16" on CUDA
    window_s: float = DEFAULT_WINDOW_S  # longer audio is processed in chunks of this length
    batch_size: int = 0  # inputs per model call; 0: 4 on CPU, 16 on CUDA
    max_batch_s: float = 0.0  # padded seconds per model call; 0: 60 on CPU, 480 on CUDA
    threads: int = 0  # CPU threads for torch; 0: torch's default (the physical cores)
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    cache_weights: bool = True  # keep a safetensors copy of the converted weights
    cache_dir: str | None = None  # hub download cache (None: the hub's default)

    @classmethod
    def make(cls, options=None, **overrides) -> EngineOptions:
        if isinstance(options, dict):
            unknown = set(options) - {f.name for f in fields(cls)}
            if unknown:
                raise ValueError(f"unknown engine options: {', '.join(sorted(unknown))}")
            options = cls(**options)
        return replace(options or cls(), **overrides)


def resolve_device(device: str):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ModelLoadError(f"unknown device {device!r}: use auto, cpu or cuda")
    return torch.device(device)


def load_model(model_dir, device, dtype, cache_weights: bool = True):
    """Build the native model from a hub folder, on `device` in `dtype`. Returns (model, tokens)."""
    import torch

    from .checkpoint import load_weights
    from .config import read_config, read_tokens
    from .model import Emotion2vec

    cfg, tokens = read_config(model_dir), read_tokens(model_dir)
    with torch.device("meta"):
        model = Emotion2vec(cfg, len(tokens))
    expected = {k: v.shape for k, v in model.state_dict().items()}
    weights = load_weights(model_dir / "model.pt", expected, cfg, use_cache=cache_weights)
    model.load_state_dict(weights, strict=True, assign=True)
    model.label_mask = torch.tensor([t.startswith("unuse") for t in tokens])
    return model.eval().to(device=device, dtype=dtype), tokens


class Engine:
    """emotion2vec+ loaded once; thread-safe (model calls are serialised)."""

    def __init__(self, options: EngineOptions | dict | None = None, **overrides):
        import torch

        from .hub import resolve_model

        self.options = opts = EngineOptions.make(options, **overrides)
        t0 = time.perf_counter()
        if opts.dtype not in DTYPES:
            raise ModelLoadError(f"unknown dtype {opts.dtype!r}: use one of {', '.join(DTYPES)}")
        self.device = resolve_device(opts.device)
        if opts.dtype != "fp32" and self.device.type != "cuda":
            raise ModelLoadError(f"dtype {opts.dtype} is for CUDA GPUs; on the CPU use fp32")
        if opts.threads:
            torch.set_num_threads(opts.threads)
        self.model_dir = resolve_model(opts.model, opts.hub, cache_dir=opts.cache_dir)
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[opts.dtype]
        self.model, tokens = load_model(self.model_dir, self.device, dtype, opts.cache_weights)
        keep = [i for i, t in enumerate(tokens) if not t.startswith("unuse")]
        self._keep = np.array(keep)
        self.labels = tuple(label_for_token(tokens[i]).key for i in keep)
        self.embed_dim = self.model.cfg.embed_dim
        cuda = self.device.type == "cuda"
        self.batch_size = opts.batch_size or (16 if cuda else 4)
        self.max_batch_samples = int((opts.max_batch_s or (480.0 if cuda else 60.0)) * SAMPLE_RATE)
        self._frames_per_window = window_frames(opts.window_s)
        self._lock = threading.Lock()
        self.load_seconds = time.perf_counter() - t0
        logger.info("model %s ready on %s (%s) in %.1f s", opts.model, self.device, opts.dtype, self.load_seconds)

    @property
    def info(self) -> dict[str, str]:
        return {"id": self.options.model, "path": str(self.model_dir), "device": str(self.device), "dtype": self.options.dtype}

    # -- the model call -------------------------------------------------------------------------
    def run_chunks(self, chunks: Sequence[np.ndarray], keep_frames: bool = False) -> list[ChunkOutput]:
        """Run 16 kHz mono chunks (each at most a window long) in one padded batch."""
        import torch

        lengths = [len(c) for c in chunks]
        wav = np.zeros((len(chunks), max(lengths)), dtype=np.float32)
        for i, c in enumerate(chunks):
            wav[i, : len(c)] = c
        with self._lock, torch.inference_mode():
            out = self.model(torch.from_numpy(wav).to(self.device), torch.tensor(lengths))
            utt = torch.softmax(out.utterance_logits, -1)[:, self._keep].cpu().numpy()
            frame = torch.softmax(out.frame_logits, -1)[..., self._keep].cpu().numpy()
            mean = out.mean.cpu().numpy()
            counts = out.mask.sum(1).tolist()
            feats = out.frames.float().cpu().numpy() if keep_frames else None
        return [ChunkOutput(mean[i], utt[i], frame[i, :t], feats[i, :t] if keep_frames else None) for i, t in enumerate(counts)]

    def head_probabilities(self, mean: np.ndarray) -> np.ndarray:
        """(D,) feature -> (V,) probabilities, as the model's head computes them."""
        import torch

        with torch.inference_mode():
            logits = self.model.head_logits(torch.from_numpy(mean.astype(np.float32)).to(self.device))
            return torch.softmax(logits, -1)[self._keep].cpu().numpy()

    # -- public API -----------------------------------------------------------------------------
    def predict(
        self,
        source,
        granularity: str = "utterance",
        extract_embedding: bool = False,
        *,
        sample_rate: int | None = None,
        name: str | None = None,
    ) -> EmotionResult:
        """Predict one input (path, bytes, file object, array + sample_rate, (rate, array), Audio)."""
        if isinstance(source, np.ndarray):
            source = load_audio(source, sample_rate, max_duration_s=self.options.max_duration_s, name=name)
        return self.predict_batch([source], granularity, extract_embedding, names=[name])[0]

    def predict_batch(
        self,
        sources: Iterable,
        granularity: str = "utterance",
        extract_embedding: bool = False,
        *,
        errors: str = "raise",
        names: Sequence[str | None] | None = None,
    ) -> list:
        """Predict many inputs, batched by length. Each result equals the one-at-a-time result.

        errors="raise" stops at the first bad input; errors="return" puts the EmotionAppError in
        that input's place and goes on.
        """
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be 'utterance' or 'frame', not {granularity!r}")
        if errors not in ("raise", "return"):
            raise ValueError("errors must be 'raise' or 'return'")
        sources = list(sources)
        names = list(names) if names is not None else [None] * len(sources)
        keep_frames = extract_embedding and granularity == "frame"
        results: list = [None] * len(sources)
        pending: list[tuple[int, np.ndarray, dict]] = []  # short inputs waiting to be batched
        for i, src in enumerate(sources):
            try:
                state = {"t0": time.perf_counter(), "acc": Accumulator(), "infer": 0.0}
                single = self._feed(src, names[i], state, keep_frames)
                if single is not None:
                    pending.append((i, single, state))
                else:
                    results[i] = self._finish(state, granularity, extract_embedding)
                if len(pending) >= 8 * self.batch_size:
                    self._flush(pending, results, granularity, extract_embedding, keep_frames)
            except EmotionAppError as exc:
                if errors == "raise":
                    raise
                logger.info("input %d failed: %s", i, exc)
                results[i] = exc
        self._flush(pending, results, granularity, extract_embedding, keep_frames)
        return results

    # -- internals ------------------------------------------------------------------------------
    def _feed(self, src, name, state, keep_frames) -> np.ndarray | None:
        """Decode `src`; run long inputs chunk by chunk now. Returns a short input's samples."""
        opts = self.options
        if isinstance(src, Audio) or is_array_input(src):
            audio = load_audio(src, max_duration_s=opts.max_duration_s, name=name)
            stream, blocks = None, [audio.samples]
            state["info"], state["warnings"] = audio.info, audio.warnings
        else:
            stream = AudioStream(src, max_duration_s=opts.max_duration_s, name=name)
            blocks = stream
        with stream if stream is not None else nullcontext():
            chunks = iter_chunks(blocks, self._frames_per_window)
            first = next(chunks)
            second = next(chunks, None)
            if second is not None:  # long: run its chunks now, a batch at a time
                group = [first, second]
                for item in chunks:
                    if len(group) * len(item[1]) >= self.max_batch_samples or len(group) >= self.batch_size:
                        self._run_group(group, state, keep_frames)
                        group = []
                    group.append(item)
                self._run_group(group, state, keep_frames)
        if stream is not None:
            state["info"], state["warnings"] = stream.info, stream.warnings
        state["chunks"] = len(state["acc"].parts) or 1
        state["decode"] = time.perf_counter() - state["t0"] - state["infer"]
        return first[1] if second is None else None

    def _run_group(self, group, state, keep_frames) -> None:
        t = time.perf_counter()
        for (start, _), out in zip(group, self.run_chunks([c for _, c in group], keep_frames)):
            state["acc"].add(start, out)
        state["infer"] += time.perf_counter() - t

    def _flush(self, pending, results, granularity, extract_embedding, keep_frames) -> None:
        pending.sort(key=lambda item: len(item[1]))
        while pending:
            n = 1
            while n < min(self.batch_size, len(pending)) and (n + 1) * len(pending[n][1]) <= self.max_batch_samples:
                n += 1
            batch, pending[:n] = pending[:n], []
            t = time.perf_counter()
            outs = self.run_chunks([samples for _, samples, _ in batch], keep_frames)
            share = (time.perf_counter() - t) / sum(len(s) for _, s, _ in batch)
            for (i, samples, state), out in zip(batch, outs):
                state["acc"].add(0, out)
                state["infer"] += share * len(samples)
                results[i] = self._finish(state, granularity, extract_embedding)

    def _finish(self, state, granularity, extract_embedding) -> EmotionResult:
        acc: Accumulator = state["acc"]
        parts = acc.ordered()
        if len(parts) == 1:  # exactly FunASR's computation
            probs, mean = parts[0].probabilities, parts[0].mean
        else:
            mean = acc.mean_feature().astype(np.float32)
            probs = self.head_probabilities(mean)
        embedding = None
        if extract_embedding:
            embedding = acc.frames() if granularity == "frame" else mean
        info = state["info"]
        return EmotionResult(
            labels=self.labels,
            probabilities=probs,
            frame_probabilities=acc.frame_probabilities(),
            granularity=granularity,
            duration_s=info.duration_s,
            embedding=embedding,
            audio=info,
            warnings=list(state["warnings"]),
            chunks=len(parts),
            timings={"decode": state["decode"], "inference": state["infer"], "total": time.perf_counter() - state["t0"]},
            model={"id": self.options.model, "device": str(self.device), "dtype": self.options.dtype},
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
