"""The model's convs on channels-last rows (B, T, C), the layout the transformer works in: the
extractor's strided convs as GEMMs over strided views, the positional convs as a 2-d conv over the
rows' channels-last view, with bf16's weights packed for oneDNN (packed.py) and long items' rows
padded. Each computes what torch's conv1d computes on (B, C, T); the bf16 positional convs give its
very numbers, bit for bit (tests/test_cpu_kernels.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .packed import conv_rows_packed, packed_conv_weight, tracing


def strided_conv(x: torch.Tensor, taps: torch.Tensor, stride: int) -> torch.Tensor:
    """Conv1d without bias on channels-last input: (B, N, Cin) -> (B, T, Cout); `taps` is the
    conv's weight as (k, Cin, Cout), contiguous (a GEMM's right side, which the kernels would
    otherwise copy at every call: 1.5-2x the conv's time in bf16).

    Tap j of the kernel is one GEMM over the rows j, j+s, j+2s, ... (a strided view, no copy);
    a single input channel uses one small im2col GEMM instead. Item by item: each item's numbers
    are those it gives alone (a batched GEMM sums in another order).
    """
    k, c_in, c_out = taps.shape
    t = (x.shape[1] - k) // stride + 1
    outs = []
    for xb in x:  # (N, Cin)
        if c_in == 1:
            out = xb[:, 0].unfold(0, k, stride)[:t] @ taps[:, 0]  # (T, Cout)
        else:
            out = None
            for j in range(k):
                rows = xb[j : j + stride * (t - 1) + 1 : stride]  # (T, Cin)
                out = rows @ taps[j] if out is None else out.addmm_(rows, taps[j])
        outs.append(out)
    return outs[0].unsqueeze(0) if len(outs) == 1 else torch.stack(outs)


CONV_ALIGN = 16  # rows per item of the positional convs in bf16 on the CPU: a multiple of this ...
CONV_ALIGN_FROM = 256  # ... for items of more rows than this (up to it, padding costs more than it gains)


def conv_rows(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """`conv` over (B, T, D) rows -> (B, T', D) rows.

    In bf16 on the CPU the rows are taken as a (B, D, 1, T) image in channels-last memory (the same
    bytes): a 2-d conv reads them and writes (B, T', D) rows, with no transposed copy on either
    side; 1.4-5x faster than conv1d on (B, D, T) in bf16, most on long batches, and the same
    numbers. fp32 keeps conv1d: the 2-d kernel sums in another order there (4e-6 apart), enough
    to move the int8 gate of tests/test_int8.py, which sits at 0.048 of its 0.05 bound. CUDA keeps
    conv1d too (not measured there).

    The weight is laid out for oneDNN once and kept (packed.packed_conv_weight) where autograd
    records nothing. oneDNN's kernel for these grouped convs is then slow at some row counts past a few
    hundred, up to 6x (one item of 1599 rows 16.4 ms a conv, padded to 1600 rows 2.7 ms; of 839
    rows 8.7 ms, padded to 848 2.2 ms): an item of more than CONV_ALIGN_FROM rows goes in padded
    with zeros to a multiple of CONV_ALIGN, and the outputs past its own are cut off. The taps that
    reach past the end read zeros either way, so the numbers are the unpadded conv's. Up to
    CONV_ALIGN_FROM rows (the live meter's 3 s windows: 149) padding cost 10-30 % and is not done
    (bench/bench_kernels.py --conv-rows). A traced graph (torch.export) keeps the rows as they
    come and the plain weight. Stride and dilation 1, as the positional convs have.
    """
    if x.dtype == torch.float32 or x.device.type != "cpu":
        return conv(x.transpose(1, 2)).transpose(1, 2)
    t, p, k = x.shape[1], conv.padding[0], conv.kernel_size[0]
    extra = 0 if tracing() or x.dtype != torch.bfloat16 or t <= CONV_ALIGN_FROM else -t % CONV_ALIGN  # no size branch in a trace
    if extra:  # zero rows past the end: what the conv's own zero padding gives those taps anyway
        x = F.pad(x, (0, 0, 0, extra))
    image = x.transpose(1, 2).unsqueeze(2)  # (B, D, 1, T), channels last
    packed = packed_conv_weight(conv)
    if packed is not None:
        y = conv_rows_packed(image, packed, conv.bias, p, conv.groups)
    else:
        y = F.conv2d(image, conv.weight.unsqueeze(2), conv.bias, padding=(0, p), groups=conv.groups)
    return y.squeeze(2).transpose(1, 2)[:, : t + 2 * p - k + 1]
