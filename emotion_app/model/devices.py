"""Which dtype the model runs in on which device, and whether this CPU computes bf16 natively.

No torch at import: the CPU probe reads /proc/cpuinfo, and torch is imported only where there
is no such file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..constants import DTYPES
from ..errors import ModelLoadError

logger = logging.getLogger(__name__)

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # x86 flags in /proc/cpuinfo
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (x86 `flags`, ARM `Features`); empty elsewhere."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


INT8_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "asimddp"})  # x86 VNNI, ARM dotprod


def cpu_has_int8_dot(cpuinfo: Path = CPUINFO) -> bool:
    """True when the CPU multiplies int8 pairs and accumulates in 32 bits in one instruction (VNNI,
    ARM dotprod). Without it (AMD Zen 1-3; Intel Xeons before Cascade Lake and client CPUs before
    Ice Lake) int8 kernels add pairs of products in 16 bits, which can saturate: torch's int8 keeps 7
    bits per activation there (model/quantize.py), and an int8 ONNX graph gets unsigned weights
    (model/onnx_int8.py). Where /proc/cpuinfo is missing (macOS, Windows) the answer is False: the
    safe side (exact, at some cost)."""
    return bool(cpu_flags(cpuinfo) & INT8_DOT_FLAGS)


def cpu_has_native_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """True when the CPU computes bf16 in hardware (x86 AVX512_BF16 or AMX-BF16).

    Linux: the `flags` lines of /proc/cpuinfo. Elsewhere: torch's own cpuinfo probe when this
    torch has it, else False. `torch.backends.cpu.get_cpu_capability()` is no answer: it says
    "AVX512" on CPUs with and without bf16 (Skylake-X has AVX-512 but no AVX512_BF16).
    ARM CPUs with the BF16 extension are reported False: not measured here.
    """
    flags = cpu_flags(cpuinfo)
    if flags:
        return bool(flags & NATIVE_BF16_FLAGS)
    try:
        import torch

        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (ImportError, AttributeError):
        return False


def _device_kind(device) -> str:
    """ "cpu" or "cuda" for a torch.device or a name such as "cuda:1"."""
    kind = getattr(device, "type", None)
    return kind if isinstance(kind, str) else str(device).split(":", 1)[0]


def resolve_dtype(requested: str, device) -> str:
    """The dtype ("fp32", "fp16", "bf16" or "int8") to run the model in on `device`, or ModelLoadError.

    - fp32: always.
    - bf16: on CUDA; on the CPU only when it computes bf16 natively (`cpu_has_native_bf16`).
      Without AVX512_BF16/AMX, torch emulates bf16 through fp32 conversions, which is slower
      than plain fp32 and less accurate, so it is refused rather than silently slow.
    - fp16: on CUDA only (CPU fp16 matmuls are emulated).
    - int8: on the CPU only (model/quantize.py: int8 linear layers; for CPUs without bf16, and
      the smallest weights). GPUs have fp16/bf16 for that.
    - auto: fp32 on every device. fp32 is the mode whose numbers are FunASR's (parity tested to
      1e-5 in probability); bf16 moves probabilities by up to a few 1e-2 (tests/test_devices.py)
      and can flip a close top label, so lower precision is something a caller asks for.
    """
    kind = _device_kind(device)
    if requested in ("auto", "fp32"):
        return "fp32"
    if requested == "bf16":
        if kind == "cuda":
            return "bf16"
        if kind == "cpu":
            if cpu_has_native_bf16():
                return "bf16"
            raise ModelLoadError(
                "dtype bf16 on this CPU would be emulated (it lacks AVX512_BF16 and AMX-BF16), "
                "which is slower than fp32; use --dtype fp32"
            )
    if requested == "int8":
        if kind == "cpu":
            return "int8"
        raise ModelLoadError("dtype int8 is a CPU mode; on a GPU use --dtype fp16 or bf16")
    if requested == "fp16":
        if kind == "cuda":
            return "fp16"
        raise ModelLoadError("dtype fp16 is for CUDA GPUs; on the CPU use fp32 (or bf16 on a CPU with native bf16)")
    if requested not in DTYPES:
        raise ModelLoadError(f"unknown dtype {requested!r}: use one of {', '.join(DTYPES)}")
    raise ModelLoadError(f"dtype {requested} is not supported on device {device}; use fp32")
