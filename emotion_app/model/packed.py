"""bf16 on the CPU: the linear layers' weights laid out once for oneDNN's kernels, not at each call.

In eager torch a bf16 `nn.Linear` on the CPU hands oneDNN a plain weight, which oneDNN reorders
into its blocked layout (AMX / AVX512-BF16 tiles) inside every call: for a 1024 x 4096 weight that
is reading and writing 8 MB each time, from memory, since twelve blocks' weights do not stay in
cache. `PackedLinear` reorders once, at load, and calls the same kernel on the packed weight
(`mkldnn._linear_pointwise`, what inductor's freezing emits): per layer 0.6-0.8x the time (a 10 s
clip's 509 rows to a 3 s window's 159 rows; docs/benchmarks.md). The numbers are the same bit for
bit up to about a thousand rows; past that, oneDNN blocks some products (512 or 1024 outputs)
another way in one of the two paths, one bf16 rounding apart (a 2-clip batch: |dp| 0.0025).
fp32 gains nothing (its kernels are MKL's), so only bf16 is packed.

Inference only: a packed weight has no gradient, no state-dict entry of the usual layout and no
`.to()`. TorchModel packs its own model (never the one fine-tuning trains) after loading.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

FLOAT_LAYERS = frozenset({"head"})  # the 9-class head runs in fp32 (graph.head_logits reads its weight)


class PackedLinear(nn.Module):
    """A bf16 `nn.Linear` on the CPU with its weight in oneDNN's layout (see the module's docstring)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), None)
        self.bias = None if linear.bias is None else linear.bias.detach()
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bf16 packed for oneDNN"


def can_pack(linear: nn.Linear) -> bool:
    """Whether this torch packs `linear` (bf16, on the CPU) and the packed layer computes what it
    does: checked once on a small input, since the op is torch's internal one (inductor's)."""
    if linear.weight.dtype != torch.bfloat16 or linear.weight.device.type != "cpu":
        return False
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False
    try:
        x = torch.randn(3, linear.in_features, dtype=torch.bfloat16)
        with torch.inference_mode():
            same = torch.equal(PackedLinear(linear)(x), F.linear(x, linear.weight, linear.bias))
    except (RuntimeError, AttributeError) as exc:  # a build without these kernels
        logger.info("bf16 linears stay unpacked: %s", exc)
        return False
    if not same:
        logger.warning("bf16 linears stay unpacked: oneDNN's packed kernel gave other numbers than F.linear here")
    return same


def pack_linears(model: nn.Module) -> int:
    """Swap every bf16 nn.Linear of `model` (on the CPU) except FLOAT_LAYERS for PackedLinear, in
    place, when `can_pack` says this torch can; returns how many were swapped."""
    layers = [
        (parent, name, child)
        for parent_name, parent in model.named_modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.Linear) and (f"{parent_name}.{name}" if parent_name else name) not in FLOAT_LAYERS
    ]
    if not layers or not can_pack(layers[0][2]):
        return 0
    for parent, name, child in layers:
        setattr(parent, name, PackedLinear(child))
    logger.info("%d bf16 linear layers packed for oneDNN", len(layers))
    return len(layers)
