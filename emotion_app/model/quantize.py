"""int8 on the CPU: the transformer's linear layers with int8 weights (one scale per output channel)
and int8 activations (one scale per call, computed from the input: "dynamic"), on torch's fbgemm /
x86 kernels; the ONNX side is tools/onnx_export.quantize_export (onnxruntime's own quantizer).

What stays in float, measured on the plus_large layout (2-core Zen 4, 10 s clip, docs/benchmarks.md):
the conv feature extractor (its strided GEMMs have no int8 kernel in torch), the attention products
(activation by activation), the layer norms and the 9-class head (10k weights: nothing to gain, and
its logits are what the user reads). torch's own `quantize_dynamic` would also swap the head; this
module is the same kernels with the choice of layers and of `reduce_range` in our hands.

`reduce_range`: without an int8 dot-product instruction (AVX-512 VNNI, AVX-VNNI) the kernels add
pairs of u8 x s8 products in 16 bits, which can saturate; 7-bit activations avoid that, at some
accuracy. With VNNI the full 8 bits are used (also faster here: 627 vs 864 ms).

Kernels: the weights are packed for torch's default engine (x86: fbgemm), or for oneDNN on a CPU
with AMX-INT8, where a 500 x 1024 x 4096 product takes 1.8 ms instead of 6.2 ms (whole model, 10 s
clip: 480 vs 627 ms). A packed weight keeps its engine; the process-wide setting is left as it was.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager

import torch
from torch import nn

from ..errors import ModelLoadError
from .devices import cpu_flags, cpu_has_int8_dot
from .swap import swap_linears

logger = logging.getLogger(__name__)

AMX_INT8_FLAG = "amx_int8"  # Intel AMX tiles: oneDNN's kernels use them, fbgemm's do not


class Int8Linear(nn.Module):
    """A float `nn.Linear` as int8 weights (per output channel) times int8 activations (per call)."""

    def __init__(self, linear: nn.Linear, reduce_range: bool):
        super().__init__()
        weight = linear.weight.detach().float()
        scale = (weight.abs().amax(1) / 127).clamp_(min=1e-12).double()  # symmetric: zero point 0
        bias = None if linear.bias is None else linear.bias.detach().float()
        with warnings.catch_warnings():  # torch 2.13 marks quantized tensors deprecated; see _check_kernels
            warnings.simplefilter("ignore", UserWarning)
            q = torch.quantize_per_channel(weight, scale, torch.zeros_like(scale, dtype=torch.long), 0, torch.qint8)
        self._packed = torch.ops.quantized.linear_prepack(q, bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.reduce_range = reduce_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        y = torch.ops.quantized.linear_dynamic(x.reshape(-1, shape[-1]).float(), self._packed, self.reduce_range)
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8, reduce_range={self.reduce_range}"


def _check_kernels() -> None:
    if not hasattr(torch.ops.quantized, "linear_dynamic") or torch.backends.quantized.engine == "none":
        raise ModelLoadError(
            f"dtype int8 needs torch's quantized CPU kernels, which this torch ({torch.__version__}) lacks; "
            "use --backend onnx with an `export-onnx --int8` folder, or --dtype fp32"
        )


def packing_engine(flags: set[str] | None = None) -> str:
    """The quantized engine to pack weights for: oneDNN on a CPU with AMX-INT8, else torch's default."""
    flags = cpu_flags() if flags is None else flags
    if AMX_INT8_FLAG in flags and "onednn" in torch.backends.quantized.supported_engines:
        return "onednn"
    return torch.backends.quantized.engine


@contextmanager
def _packing_with(engine: str):
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = before


def quantize_linears(model: nn.Module, reduce_range: bool | None = None, engine: str | None = None) -> nn.Module:
    """Swap every nn.Linear of `model` (an fp32 model on the CPU) but the head (swap.py) for Int8Linear,
    in place; returns the model."""
    _check_kernels()
    if reduce_range is None:
        reduce_range = not cpu_has_int8_dot()
        if reduce_range:
            logger.warning(
                "this CPU has no int8 dot products (VNNI): torch's int8 keeps 7 bits per activation here (8 would "
                "saturate), twice the rounding, so probabilities move about twice as far from fp32 as with VNNI, and it "
                "is barely faster than fp32. An `export-onnx --int8` folder on --backend onnx is closer to fp32 on such "
                "a CPU; or use --dtype fp32 (docs/engine.md, Fast CPU modes)"
            )
    engine = engine or packing_engine()
    with _packing_with(engine):
        swapped = swap_linears(model, lambda layer: Int8Linear(layer, reduce_range))
    logger.info("%d linear layers in int8 (reduce_range=%s, %s kernels)", swapped, reduce_range, engine)
    return model
