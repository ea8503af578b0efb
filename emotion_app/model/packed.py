"""bf16 on the CPU: the linear layers' weights laid out once for oneDNN's kernels, not at each call.

In eager torch a bf16 `nn.Linear` on the CPU hands oneDNN a plain weight, which oneDNN reorders
into its blocked layout (AMX / AVX512-BF16 tiles) inside every call: for a 1024 x 4096 weight that
is reading and writing 8 MB each time, from memory, since twelve blocks' weights do not stay in
cache. `PackedLinear` reorders once, at load, and calls the same kernel on the packed weight
(`mkldnn._linear_pointwise`, what inductor's freezing emits): alone, a layer takes 0.6-0.8x the
time (a 10 s clip's 509 rows to a 3 s window's 159 rows); in the model, a 10 s clip 5 % less and
a 3 s window 11 % less (bench/bench_kernels.py, docs/benchmarks.md). The numbers are the same bit for
bit up to about a thousand rows; past that, oneDNN blocks some products (512 or 1024 outputs)
another way in one of the two paths, one bf16 rounding apart (a 2-clip batch: |dp| 0.0025).
fp32 gains nothing (its kernels are MKL's), so only bf16 is packed.

The positional convs' weights are laid out once too (`packed_conv_weight`, convs.conv_rows): a
bf16 grouped conv otherwise reorders its weight and sets oneDNN's kernel up again at every call,
which costs more than the conv itself on a short input (one item of 45-250 rows: 0.9-1.1 ms a
conv, packed 0.2-0.4 ms; 8 items: 1.6-2.8 ms, packed 0.9-2.1 ms; bench/bench_kernels.py
--conv-rows), with the same numbers bit for bit. That copy is kept beside the model (not in it:
a state dict or a deep copy never sees it), made again when the weight changes, and used only
where autograd records nothing (inference) and no graph is traced.

Inference only: a packed weight has no gradient. A packed layer saves (`state_dict`) and copies
(`copy.deepcopy`, as a plain `nn.Linear`) with its weight in the usual layout, and cast or moved it
holds the plain weight (tools/onnx_export.export_model copies a non-fp32 model and casts the copy
to fp32). TorchModel packs its own model (never the one fine-tuning trains) after loading.
"""

from __future__ import annotations

import copy
import functools
import logging
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from .swap import linear_layers, swap_linears

logger = logging.getLogger(__name__)


class PackedLinear(nn.Module):
    """A bf16 `nn.Linear` on the CPU with its weight in oneDNN's layout (see the module's docstring).
    Cast or moved (`.to()`, `.float()`, `.cuda()`), it holds the plain weight instead and computes
    as nn.Linear does; back in bf16 on the CPU, it packs again."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.bias = None if linear.bias is None else linear.bias.detach()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self._hold(linear.weight.detach())

    def _hold(self, weight: torch.Tensor) -> None:
        if weight.dtype == torch.bfloat16 and weight.device.type == "cpu":
            self.packed, self.weight = torch.ops.mkldnn._reorder_linear_weight(weight, None), None
        else:
            self.packed, self.weight = None, weight

    def dense_weight(self) -> torch.Tensor:
        """The weight in the usual (out, in) layout, the same numbers bit for bit."""
        return self.weight if self.packed is None else self.packed.to_dense()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is None:
            return F.linear(x, self.weight, self.bias)
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def unpacked(self) -> nn.Linear:
        """The plain layer with the same weight and bias."""
        weight = self.dense_weight()
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, dtype=weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(weight)
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear.to(weight.device)

    def __deepcopy__(self, memo) -> nn.Linear:
        return copy.deepcopy(self.unpacked(), memo)  # oneDNN's opaque tensor has no storage to copy

    def _apply(self, fn, recurse: bool = True):
        weight = fn(self.dense_weight())
        self.bias = None if self.bias is None else fn(self.bias)
        self._hold(weight)
        return self

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        destination[prefix + "weight"] = self.dense_weight()
        if self.bias is not None:
            destination[prefix + "bias"] = self.bias

    def extra_repr(self) -> str:
        kind = "bf16 packed for oneDNN" if self.packed is not None else f"{self.weight.dtype} unpacked"
        return f"in_features={self.in_features}, out_features={self.out_features}, {kind}"


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
    """Swap every bf16 nn.Linear of `model` (on the CPU) but the head (swap.py) for PackedLinear, in
    place, when `can_pack` says this torch can; returns how many were swapped."""
    layers = linear_layers(model)
    if not layers or not can_pack(layers[0][2]):
        return 0
    swapped = swap_linears(model, PackedLinear)
    logger.info("%d bf16 linear layers packed for oneDNN", swapped)
    return swapped


# conv -> (a weak reference to its weight, the weight's state, the packed weight): see packed_conv_weight
_conv_packs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def tracing() -> bool:
    """Whether a graph is being traced (torch.export, torch.compile, torch.jit.trace): what runs
    then must be plain torch ops with no branch on a size (the export makes sizes symbolic)."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing()


def packed_conv_weight(conv: nn.Conv1d) -> torch.Tensor | None:
    """`conv`'s weight as a 2-d (Cout, Cin / groups, 1, k) weight in oneDNN's layout for
    `conv_rows_packed`, kept while the weight is the same tensor with the same data (changed in
    place or replaced: packed again; written through `.data`: not seen, as for the extractor's
    taps); None where it is not packed: not bf16 on the CPU, autograd recording (the packed kernel
    has no backward), a graph being traced, a weight made in inference mode (no version counter
    to watch), or a torch without the kernel. Stride and dilation 1 (the positional convs')."""
    w = conv.weight
    if w.dtype != torch.bfloat16 or w.device.type != "cpu" or w.is_inference():
        _conv_packs.pop(conv, None)  # cast or moved: the bf16 copy is not kept for nothing
        return None
    if torch.is_grad_enabled() or tracing() or not _conv_packing_works():
        return None
    state = (w.data_ptr(), w._version)
    kept = _conv_packs.get(conv)
    if kept is None or kept[0]() is not w or kept[1] != state:
        dense = w.detach().unsqueeze(2).to_mkldnn()
        packed = torch._C._nn.mkldnn_reorder_conv2d_weight(dense, [0, conv.padding[0]], [1, 1], [1, 1], conv.groups, None)
        kept = (weakref.ref(w), state, packed)
        _conv_packs[conv] = kept
    return kept[2]


def conv_rows_packed(image: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None, padding: int, groups: int):
    """A conv over a (B, Cin, 1, T) channels-last image with its packed weight (stride and dilation
    1, `padding` zeros on both ends of T): what F.conv2d gives."""
    bias = None if bias is None else bias.detach()
    return torch.ops.mkldnn._convolution_pointwise(image, packed, bias, [0, padding], [1, 1], [1, 1], groups, "none", [], "")


@functools.cache
def _conv_packing_works() -> bool:
    """Whether this torch has the packed conv kernel and it gives F.conv2d's numbers (checked once
    on a small grouped conv, with its own random numbers: the ops are torch's internal ones,
    inductor's)."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")):
        return False
    try:
        g = torch.Generator().manual_seed(0)
        weight = torch.randn(32, 8, 1, 5, generator=g).to(torch.bfloat16)
        bias = torch.randn(32, generator=g).to(torch.bfloat16)
        image = torch.randn(2, 32, 1, 21, generator=g).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            packed = torch._C._nn.mkldnn_reorder_conv2d_weight(weight.to_mkldnn(), [0, 2], [1, 1], [1, 1], 4, None)
            plain = F.conv2d(image, weight, bias, padding=(0, 2), groups=4)
            same = torch.equal(conv_rows_packed(image, packed, bias, 2, 4), plain)
    except (RuntimeError, AttributeError, NotImplementedError) as exc:  # a build without these kernels
        logger.info("bf16 positional convs stay unpacked: %s", exc)
        return False
    if not same:
        logger.warning("bf16 positional convs stay unpacked: oneDNN's packed kernel gave other numbers than F.conv2d here")
    return same
