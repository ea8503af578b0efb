"""What the engine loads: the emotion model's backend (torch here, an ONNX export on onnxruntime, or
a model that runs elsewhere: Ray Serve replicas) and, on the first conversation that needs it, CAM++."""

from __future__ import annotations

import threading
from pathlib import Path

from .audio.vad import ONNX_NAME as VAD_ONNX
from .audio.vad import silero_onnx_file
from .engine_options import EngineOptions
from .errors import ModelLoadError
from .model.devices import cpu_has_native_bf16


def load_backend(opts: EngineOptions, remote=None) -> tuple[Path, object, Path | None]:
    """(the model's folder, its backend, Silero VAD's ONNX file or None for its TorchScript model)."""
    if remote is not None:  # nothing is loaded here
        return Path(opts.model), remote, silero_onnx_file() if opts.backend == "onnx" else None
    if opts.backend == "onnx":  # an exported folder on onnxruntime: torch is never imported
        from .model.onnx_backend import OnnxModel

        model_dir = Path(opts.model)
        backend = OnnxModel(model_dir, threads=opts.threads, dtype=opts.dtype)
        # Silero VAD's ONNX model: the export's copy, else the installed silero-vad package's
        # (never its TorchScript model: this backend does not import torch)
        return model_dir, backend, model_dir / VAD_ONNX if (model_dir / VAD_ONNX).is_file() else silero_onnx_file()
    from .model.hub import resolve_model
    from .model.torch_backend import TorchModel

    model_dir = resolve_model(opts.model, opts.hub, cache_dir=opts.cache_dir)
    backend = TorchModel(model_dir, opts.device, opts.dtype, cache_weights=opts.cache_weights, threads=opts.threads)
    return model_dir, backend, None


def load_speaker_model(opts: EngineOptions, device, dtype: str, *, remote: bool):
    """CAM++ for an engine on `device` in `dtype`, its calls taking turns (ModelLoadError with the ONNX
    backend, which does not load torch)."""
    if opts.backend == "onnx":
        raise ModelLoadError(
            "telling speakers apart by voice needs torch (CAM++), which the ONNX backend does not load; "
            "use speakers=channels or a turns file, or --backend torch"
        )
    from .speakers.model import SpeakerModel

    # with Ray Serve the replicas have the GPU, not this front: CAM++ runs here on the CPU
    device = "cuda" if not remote and str(device).startswith("cuda") else "cpu"
    speaker_dtype = dtype if dtype == "bf16" or (dtype == "fp16" and device == "cuda") else "fp32"
    if dtype == "int8" and cpu_has_native_bf16():  # a fast mode was asked for: CAM++'s is bf16
        speaker_dtype = "bf16"
    return Serialised(SpeakerModel(opts.speaker_model, opts.hub, device=device, dtype=speaker_dtype, cache_dir=opts.cache_dir))


class Serialised:
    """A model whose calls take turns (one per process, many request threads), its attributes as is."""

    def __init__(self, model):
        self._model, self._lock = model, threading.Lock()

    def __getattr__(self, name):
        value = getattr(self._model, name)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            with self._lock:
                return value(*args, **kwargs)

        return call
