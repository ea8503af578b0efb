"""How the engine loads and runs the model: `EngineOptions`, every option checked when it is made
(OptionError naming the valid values); what depends on the machine is checked at load (engine.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from pathlib import Path

from .constants import BACKENDS, DEFAULT_MAX_DURATION_S, DEFAULT_MODEL, DEFAULT_WINDOW_S, DTYPES, HUBS, Backend, Dtype, Hub
from .fields import OptionError, parse_choice

DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")  # cuda:N is the GPU of index N


@dataclass(frozen=True)
class EngineOptions:
    """How to load and run the model. `Engine(dict)` and `Engine(**kwargs)` are accepted too.
    Every option is checked here, when the options are made (OptionError naming the valid values);
    what depends on the machine (a dtype this device cannot run, a missing GPU) is checked at load."""

    model: str = DEFAULT_MODEL  # hub id, alias (emotion2vec_plus_large|base|seed) or local folder
    hub: Hub = "ms"  # "ms" (ModelScope) or "hf" (Hugging Face)
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:1"
    # auto (= fp32, FunASR's numbers; with onnx: the export's), fp32, bf16 (CUDA, or a CPU with native bf16),
    # fp16 (CUDA), int8 (CPU: int8 linear layers; with onnx: an `export-onnx --int8` folder)
    dtype: Dtype = "auto"
    backend: Backend = "torch"  # torch, or onnx: `model` is then a folder from `export-onnx`
    window_s: float = DEFAULT_WINDOW_S  # longer audio is processed in chunks of this length
    batch_size: int = 0  # inputs per model call; 0: 4 on CPU, 16 on CUDA
    max_batch_s: float = 0.0  # padded seconds per model call; 0: 60 on CPU, 480 on CUDA
    threads: int = 0  # the model's CPU threads (torch or onnxruntime); 0: their default, one per physical core
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    cache_weights: bool = True  # keep a safetensors copy of the converted weights
    cache_dir: str | None = None  # hub download cache (None: the hub's default)
    heads: tuple = ()  # your own heads: head folders, folders of heads, or Head objects (model/head.py)
    speaker_model: str = "campplus"  # CAM++ for telling speakers apart: alias, hub id or folder (loaded on first use)

    def __post_init__(self):
        for name, choices in (("hub", HUBS), ("dtype", DTYPES), ("backend", BACKENDS)):
            parse_choice(getattr(self, name), name, choices)
        if not isinstance(self.device, str) or not DEVICE.fullmatch(self.device):
            raise OptionError(f"device must be auto, cpu, cuda or cuda:N (N: the GPU's index), not {self.device!r}")
        for name, value in (("model", self.model), ("speaker_model", self.speaker_model)):
            if not isinstance(value, str) or not value.strip():
                raise OptionError(f"{name} must be a hub id, an alias or a local folder, not {value!r}")
        _check_number(self.window_s, "window_s", "seconds above 0", positive=True)
        _check_number(self.max_duration_s, "max_duration_s", "seconds above 0", positive=True)
        _check_number(self.max_batch_s, "max_batch_s", "seconds, 0 for automatic")
        _check_number(self.batch_size, "batch_size", "a whole number, 0 for automatic", whole=True)
        _check_number(self.threads, "threads", "a whole number, 0 for one per physical core", whole=True)
        # one path or a list for `heads`: a tuple, so the options stay hashable
        one = isinstance(self.heads, (str, Path)) or hasattr(self.heads, "labels")
        object.__setattr__(self, "heads", (self.heads,) if one else tuple(self.heads or ()))

    @classmethod
    def make(cls, options: EngineOptions | dict | None = None, **overrides) -> EngineOptions:
        """`options` (EngineOptions, a dict of its fields or None: the defaults) with `overrides`."""
        if isinstance(options, dict):
            options, overrides = None, {**options, **overrides}
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            known = ", ".join(f.name for f in fields(cls))
            raise OptionError(f"unknown engine options: {', '.join(sorted(unknown))}; the options are {known}")
        return replace(options or cls(), **overrides)


def _check_number(value, name: str, wanted: str, *, positive: bool = False, whole: bool = False) -> None:
    """OptionError unless `value` is a number (an int if `whole`), above 0 if `positive`, else 0 or more."""
    kinds = int if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not (value > 0 if positive else value >= 0):
        raise OptionError(f"{name} must be {wanted}, not {value!r}")
