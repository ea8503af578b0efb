"""The model on torch: load a hub folder into the native graph and run padded batches.

`TorchModel.run_chunks` is the torch side of the engine's one model call; onnx_backend.py's
`OnnxModel` is the other side, with the same contract (chunks in, ChunkOutputs out).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..constants import label_for_token
from ..errors import ModelLoadError
from .chunking import ChunkOutput
from .devices import resolve_dtype
from .heap import keep_freed_memory
from .sliding import StreamWindow, slide_features

logger = logging.getLogger(__name__)


def resolve_device(device: str):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ModelLoadError(f"unknown device {device!r}: use auto, cpu or cuda")
    return torch.device(device)


def load_model(model_dir: Path, device, dtype, cache_weights: bool = True):
    """Build the native model from a hub folder, on `device` in `dtype`. Returns (model, tokens)."""
    import torch

    from .checkpoint import load_weights
    from .config import read_config, read_tokens
    from .graph import Emotion2vec

    cfg, tokens = read_config(model_dir), read_tokens(model_dir)
    with torch.device("meta"):
        model = Emotion2vec(cfg, len(tokens))
    expected = {k: v.shape for k, v in model.state_dict().items()}
    weights = load_weights(model_dir / "model.pt", expected, cfg, use_cache=cache_weights)
    model.load_state_dict(weights, strict=True, assign=True)
    model.label_mask = torch.tensor([t.startswith("unuse") for t in tokens])
    return model.eval().to(device=device, dtype=dtype), tokens


class TorchModel:
    """The native emotion2vec+ graph of `model_dir` on `device` ("auto", "cpu", "cuda[:N]") in
    `dtype` ("auto", "fp32", "bf16", "fp16", "int8"; see devices.resolve_dtype). int8: loaded in
    fp32, then its linear layers quantized (quantize.py)."""

    backend = "torch"

    def __init__(
        self, model_dir: Path, device: str = "auto", dtype: str = "auto", *, cache_weights: bool = True, threads: int = 0
    ):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "int8": torch.float32}[self.dtype]
        self.model, tokens = load_model(Path(model_dir), self.device, torch_dtype, cache_weights)
        if self.dtype == "int8":
            from .quantize import quantize_linears

            quantize_linears(self.model)
        if self.device.type == "cpu":
            keep_freed_memory()
            if self.dtype == "bf16":
                from .packed import pack_linears

                pack_linears(self.model)
        keep = [i for i, t in enumerate(tokens) if not t.startswith("unuse")]
        self._keep = np.array(keep)
        self.tokens = tokens
        self.labels = tuple(label_for_token(tokens[i]).key for i in keep)
        self.embed_dim = self.model.cfg.embed_dim

    def run_chunks(self, chunks: Sequence[np.ndarray], keep_frames: bool = False) -> list[ChunkOutput]:
        """Run 16 kHz mono chunks (each at most a window long) in one padded batch."""
        import torch

        lengths = [len(c) for c in chunks]
        wav = np.zeros((len(chunks), max(lengths)), dtype=np.float32)
        for i, c in enumerate(chunks):
            wav[i, : len(c)] = c
        with torch.inference_mode():
            return self._outputs(self.model(torch.from_numpy(wav).to(self.device), torch.tensor(lengths)), keep_frames)

    @property
    def slides(self) -> bool:
        """Whether `run_windows` can slide live windows' conv features (model/sliding.py): the
        layer-norm extractor is local in time, the GroupNorm one is not."""
        return self.model.cfg.extractor_mode == "layer_norm"

    def run_windows(self, windows: Sequence[StreamWindow]) -> list[ChunkOutput]:
        """Score live windows in one padded batch, each stream's conv features slid from its last
        window (model/sliding.py: only the new audio's frames are computed; a documented
        approximation of `run_chunks` on the same samples)."""
        import torch

        with torch.inference_mode():
            return self._outputs(self.model.run_features(*slide_features(self.model, windows)), False)

    def _outputs(self, out, keep_frames: bool) -> list[ChunkOutput]:
        """The graph's ModelOutput as one ChunkOutput per item (probabilities over the kept labels)."""
        import torch

        utt = torch.softmax(out.utterance_logits.float(), -1)[:, self._keep].cpu().numpy()
        frame = torch.softmax(out.frame_logits.float(), -1)[..., self._keep].cpu().numpy()
        mean = out.mean.float().cpu().numpy()
        counts = out.mask.sum(1).tolist()
        feats = out.frames.float().cpu().numpy() if keep_frames else None
        return [ChunkOutput(mean[i], utt[i], frame[i, :t], feats[i, :t] if keep_frames else None) for i, t in enumerate(counts)]

    def head_probabilities(self, mean: np.ndarray) -> np.ndarray:
        """(D,) feature -> (V,) probabilities, as the model's head computes them."""
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(mean.astype(np.float32)).to(self.device, self.model.extra_tokens.dtype)
            logits = self.model.head_logits(x).float()
            return torch.softmax(logits, -1)[self._keep].cpu().numpy()
