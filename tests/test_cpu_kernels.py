"""The CPU's own speed-ups under the model: bf16 linears packed for oneDNN once (model/packed.py),
the C heap keeping what a call frees for the next one and given back when idle (model/heap.py),
the extractor's taps laid out once and kept (graph.FeatureExtractor._taps), the positional convs'
channels-last path with its weights packed and long items' rows padded to 16 (convs.conv_rows), bf16 tokens padded to 32 rows
(graph._aligned_rows). Each must give the numbers the plain path gives.

bf16 runs here whatever the CPU: on one without native bf16 the engine refuses it (emulated is
slower than fp32), so the tests say the CPU has it (`native_bf16`); the numbers are the same. What
oneDNN packs depends on the CPU (tests/cpu_features.py): where it does not, the plain path is checked."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cpu_features import ONEDNN_PACKS_BF16 as PACKS

from emotion_app.model import convs, devices
from emotion_app.model import packed as packed_module
from emotion_app.model.convs import conv_rows, strided_conv
from emotion_app.model.heap import IdleTrim
from emotion_app.model.packed import PackedLinear, pack_linears, packed_conv_weight
from emotion_app.model.torch_backend import TorchModel

ROOT = Path(__file__).resolve().parents[1]


def test_a_packed_linear_gives_the_plain_linears_numbers_bit_for_bit():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 96).to(torch.bfloat16)
    assert packed_module.can_pack(linear) == PACKS
    if not PACKS:  # oneDNN refuses to pack here (tests/cpu_features.py): the layers stay plain
        with pytest.raises(RuntimeError):
            PackedLinear(linear)
        return
    packed = PackedLinear(linear)
    for shape in [(1, 64), (37, 64), (2, 159, 64)]:  # any rows, 2-d or 3-d, as the blocks call it
        x = torch.randn(*shape, dtype=torch.bfloat16)
        with torch.inference_mode():
            assert torch.equal(packed(x), F.linear(x, linear.weight, linear.bias))


@pytest.fixture
def native_bf16(monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)


def test_the_bf16_model_on_the_cpu_is_packed_and_scores_as_the_unpacked_one(tiny_dir, native_bf16):
    packed = TorchModel(tiny_dir, "cpu", "bf16")
    plain = TorchModel(tiny_dir, "cpu", "bf16")
    plain.model = TorchModel(tiny_dir, "cpu", "fp32").model.to(torch.bfloat16)  # the same weights, never packed
    kinds = {name: type(m).__name__ for name, m in packed.model.named_modules() if "Linear" in type(m).__name__}
    assert kinds["head"] == "Linear"  # the head stays as it is (read in fp32 by head_logits)
    if PACKS:
        assert set(kinds.values()) == {"Linear", "PackedLinear"} and list(kinds.values()).count("Linear") == 1
    else:  # a CPU that oneDNN does not pack for: every layer plain, the same numbers
        assert set(kinds.values()) == {"Linear"}
    assert not any(isinstance(m, PackedLinear) for m in plain.model.modules())
    rng = np.random.default_rng(3)
    chunks = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16000, 27000)]
    for a, b in zip(packed.run_chunks(chunks, keep_frames=True), plain.run_chunks(chunks, keep_frames=True)):
        np.testing.assert_array_equal(a.probabilities, b.probabilities)
        np.testing.assert_array_equal(a.frames, b.frames)


def test_a_packed_model_saves_copies_and_casts_as_a_plain_one(tiny_dir, native_bf16, tmp_path):
    """state_dict, deepcopy and .to() see the usual weights: a packed engine's model can be saved,
    copied, exported (onnx_export copies and casts a non-fp32 model) or moved."""
    from emotion_app.tools.onnx_export import export_model

    packed = TorchModel(tiny_dir, "cpu", "bf16")
    plain = TorchModel(tiny_dir, "cpu", "fp32").model.to(torch.bfloat16)
    saved = packed.model.state_dict()
    assert saved.keys() == plain.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in plain.state_dict().items())
    twin = copy.deepcopy(packed.model).float()
    assert type(twin.blocks[0].fc1) is torch.nn.Linear and twin.blocks[0].fc1.weight.dtype == torch.float32
    wav = (0.1 * np.random.default_rng(4).standard_normal(20000)).astype(np.float32)
    before = packed.run_chunks([wav])[0].probabilities
    layer = packed.model.blocks[0].fc1
    assert isinstance(layer, PackedLinear) == PACKS  # plain where oneDNN does not pack (tests/cpu_features.py)
    packed.model.float()  # in place: the layers hold plain fp32 weights and still compute
    assert getattr(layer, "packed", None) is None and layer.weight.dtype == torch.float32
    assert np.abs(packed.run_chunks([wav])[0].probabilities - before).max() < 0.025  # fp32 against bf16
    packed.model.to(torch.bfloat16)  # and packed again
    assert (getattr(layer, "packed", None) is not None) == PACKS
    np.testing.assert_array_equal(packed.run_chunks([wav])[0].probabilities, before)
    export_model(TorchModel(tiny_dir, "cpu", "bf16").model, packed.tokens, tmp_path / "onnx", "tiny")
    assert (tmp_path / "onnx" / "model.onnx").stat().st_size > 0


def test_fp32_is_not_packed(tiny_dir):
    model = TorchModel(tiny_dir, "cpu", "fp32").model
    assert pack_linears(model) == 0 and not any(isinstance(m, PackedLinear) for m in model.modules())


def test_the_taps_conv_equals_torchs_conv1d():
    torch.manual_seed(1)
    for c_in, k, stride in [(1, 10, 5), (8, 3, 2), (8, 2, 2)]:
        weight = torch.randn(16, c_in, k, dtype=torch.float64)
        x = torch.randn(2, 103, c_in, dtype=torch.float64)  # (B, N, Cin), channels last
        ours = strided_conv(x, weight.permute(2, 1, 0).contiguous(), stride)
        ref = F.conv1d(x.transpose(1, 2), weight, stride=stride).transpose(1, 2)
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


FAULTS = """
import ctypes, resource, sys
import numpy as np
# faults of 4 KB pages, whatever /sys/kernel/mm/transparent_hugepage says
assert ctypes.CDLL(None, use_errno=True).prctl(41, 1, 0, 0, 0) == 0  # PR_SET_THP_DISABLE
from emotion_app.model import devices, torch_backend
devices.cpu_has_native_bf16 = lambda: True  # bf16 on any CPU (the test's numbers, not its speed)
if sys.argv[2] == "default":
    torch_backend.keep_freed_memory = lambda: False  # glibc's own thresholds
model = torch_backend.TorchModel(sys.argv[1], "cpu", "bf16", threads=1)
wav = (0.1 * np.random.default_rng(0).standard_normal(160000)).astype(np.float32)
clips = [wav, wav[:120000]]  # a batch of two lengths: the count depends less on oneDNN's kernels
model.run_chunks(clips); model.run_chunks(clips)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    model.run_chunks(clips)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4)
"""


def test_a_call_reuses_the_heap_pages_of_the_last_one(tiny_dir):
    """With glibc's own thresholds each call faults in fresh pages (4000-5000 on the tiny model with
    10 s + 7.5 s here, whatever oneDNN's ISA; 25 000 for one 10 s clip on plus_large); with the
    thresholds fixed (heap.keep_freed_memory), few. One 10 s clip alone gave 1226-1972 here and 512
    on a CI machine (why is not known: its CPU, its kernel's huge pages), hence the batch and a
    bound well under what it gives here."""
    faults = {}
    for mode in ("default", "kept"):
        cmd = [sys.executable, "-c", FAULTS, str(tiny_dir), mode]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
        faults[mode] = float(out.stdout.split()[-1])
    assert faults["default"] > 300 and faults["kept"] < faults["default"] / 5, faults  # kept: 0-86 here


def test_the_heap_is_given_back_once_calls_stop():
    trims = []
    idle = IdleTrim(idle_s=1.0, trim=lambda: trims.append(time.monotonic()))
    for _ in range(4):  # calls 0.1 s apart: never idle for 1 s (room for a loaded machine's late wake-ups)
        last = time.monotonic()
        idle.touch()
        time.sleep(0.1)
    assert trims == []
    watcher = idle._watcher
    watcher.join(5)
    assert not watcher.is_alive() and len(trims) == 1 and trims[0] - last >= 1.0  # 1 s after the last call
    idle.touch()  # calls again: a new watcher, a second trim
    idle._watcher.join(5)
    assert len(trims) == 2


def test_the_engine_touches_the_idle_trim_after_each_model_call(tiny_engine, monkeypatch):
    touched = []
    monkeypatch.setattr(tiny_engine._idle, "touch", lambda: touched.append(1))
    tiny_engine.run_chunks([np.zeros(16000, np.float32)])
    assert touched == [1]


def assert_conv1ds_numbers(conv: torch.nn.Conv1d, x: torch.Tensor, *context) -> None:
    """conv_rows gives conv1d's numbers: bit for bit where oneDNN packs (every CPU that runs bf16:
    tests/cpu_features.py). On an AVX2 CPU, where the engine refuses bf16 and the test forces it, the
    unpacked 2-d kernel blocks a long item's padded rows another way: a few outputs one bf16
    rounding apart (3e-5 of 1e-1 measured on an AMD Zen 1)."""
    got, want = conv_rows(conv, x), conv(x.transpose(1, 2)).transpose(1, 2)
    if PACKS:
        assert torch.equal(got, want), context
    else:
        torch.testing.assert_close(got, want, msg=lambda m: f"{context}: {m}")  # bf16's own tolerance


def test_the_positional_convs_bf16_path_gives_conv1ds_numbers(monkeypatch):
    """bf16 on the CPU runs the grouped conv as a 2-d conv over the rows' channels-last view, its
    weight packed for oneDNN and the rows of a long item padded to 16: conv1d's numbers
    (assert_conv1ds_numbers), packed or not, for odd and even kernels (an even one gives a row
    more, which PositionalConv trims)."""
    assert packed_module._conv_packing_works() == PACKS  # where it packs, the first pass below runs packed
    torch.manual_seed(2)
    for packs in (True, False) if PACKS else (False,):
        monkeypatch.setattr(packed_module, "_conv_packing_works", lambda packs=packs: packs)
        for kernel in (19, 16):
            conv = torch.nn.Conv1d(64, 64, kernel, padding=kernel // 2, groups=16).to(torch.bfloat16)
            for b, t in [(1, 37), (3, 149), (1, 499), (2, 300)]:
                x = torch.randn(b, t, 64, dtype=torch.bfloat16)
                with torch.inference_mode():
                    assert (packed_conv_weight(conv) is not None) == packs
                    assert_conv1ds_numbers(conv, x, packs, kernel, b, t)


def test_long_items_run_the_positional_convs_on_rows_padded_to_16(monkeypatch):
    """oneDNN's grouped conv is up to 6x slower at some row counts past a few hundred, so an item of
    more than CONV_ALIGN_FROM rows goes in padded to a multiple of 16 (and its outputs are cut
    back, as the test above checks); shorter ones as they are (padding them cost more)."""
    widths = []  # the rows each conv ran on, packed or (where oneDNN does not pack) plain
    packed, plain = convs.conv_rows_packed, F.conv2d
    monkeypatch.setattr(convs, "conv_rows_packed", lambda image, *a: widths.append(image.shape[-1]) or packed(image, *a))
    monkeypatch.setattr(F, "conv2d", lambda image, *a, **k: widths.append(image.shape[-1]) or plain(image, *a, **k))
    conv = torch.nn.Conv1d(64, 64, 19, padding=9, groups=16).to(torch.bfloat16)
    with torch.inference_mode():
        for t in (149, 256, 257, 300, 499, 512):
            conv_rows(conv, torch.randn(2, t, 64, dtype=torch.bfloat16))
    assert convs.CONV_ALIGN_FROM == 256 and widths == [149, 256, 272, 304, 512, 512]


def test_a_packed_conv_weight_follows_its_weight_and_never_takes_a_gradient():
    """The packed copy is kept between calls and made anew once the weight changes in place or is
    replaced; with a gradient wanted the plain path runs, so the gradient reaches the weight; a
    deep copy of the conv copies its plain weight (the packed one is kept outside the module)."""
    torch.manual_seed(4)
    conv = torch.nn.Conv1d(64, 64, 19, padding=9, groups=16).to(torch.bfloat16)
    x = torch.randn(2, 300, 64, dtype=torch.bfloat16)

    def check():
        with torch.inference_mode():
            assert_conv1ds_numbers(conv, x)

    with torch.inference_mode():
        first = packed_conv_weight(conv)
        assert (first is not None) == PACKS and packed_conv_weight(conv) is first  # kept (None: not packed here)
    check()
    with torch.no_grad():
        conv.weight.mul_(2)
    with torch.inference_mode():
        again = packed_conv_weight(conv)
    assert again is not first if PACKS else again is None
    check()
    conv.weight = torch.nn.Parameter(conv.weight.detach() + 1)
    with torch.inference_mode():
        third = packed_conv_weight(conv)
    assert third is not again if PACKS else third is None
    check()
    twin = copy.deepcopy(conv)
    assert torch.equal(twin.weight, conv.weight) and twin.weight is not conv.weight
    assert packed_conv_weight(conv) is None  # autograd records: the plain conv, which has a backward
    conv_rows(conv, x).float().sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    conv.requires_grad_(False)  # a frozen conv under a trained input: the gradient reaches the input
    x.requires_grad_(True)
    conv_rows(conv, x).float().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_a_traced_graph_keeps_the_plain_positional_conv():
    """torch.export (the AOTInductor probe's path) traces the plain conv, not oneDNN's packed op,
    and a trace that comes first leaves the packing on for later calls (the one-time check of the
    packed kernel never runs on a trace's fake tensors)."""
    packed_module._conv_packing_works.cache_clear()

    class Rows(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(64, 64, 19, padding=9, groups=16).to(torch.bfloat16).requires_grad_(False)

        def forward(self, x):
            return conv_rows(self.conv, x)

    rows, x = Rows(), torch.randn(1, 300, 64, dtype=torch.bfloat16)
    frames = torch.export.Dim("frames", min=2, max=3000)
    with torch.no_grad():  # any length: no branch on it in the graph (the rows are not padded)
        program = torch.export.export(rows, (x,), dynamic_shapes=({1: frames},), strict=False)
        ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
        assert "aten.conv2d.default" in ops and not any("mkldnn" in op for op in ops)
        for t in (300, 37, 499):
            y = torch.randn(1, t, 64, dtype=torch.bfloat16)
            assert torch.equal(program.module()(y), rows(y))
    with torch.inference_mode():
        assert (packed_conv_weight(rows.conv) is not None) == PACKS


def test_the_extractors_taps_follow_its_weights(tiny_dir):
    """The taps are kept between calls (inference) and made anew once a weight changes in place or
    is replaced; with a gradient wanted they are made at each call, so the gradient reaches the
    weights."""
    features = TorchModel(tiny_dir, "cpu", "fp32").model.features
    with torch.inference_mode():
        first = features._taps()
        assert features._taps() is first  # kept
    with torch.no_grad():
        features.convs[1].weight.mul_(2)
    with torch.inference_mode():
        again = features._taps()
    assert again is not first and torch.equal(again[1], first[1] * 2)
    features.convs[2].weight = torch.nn.Parameter(features.convs[2].weight.detach() + 1)
    with torch.inference_mode():
        assert torch.equal(features._taps()[2], again[2] + 1)
    features.requires_grad_(True)
    features(torch.randn(1, 4000), torch.tensor([4000])).sum().backward()
    assert all(c.weight.grad is not None and c.weight.grad.abs().sum() > 0 for c in features.convs)


def _rows_seen(model, chunks) -> tuple[list[int], list]:
    """The tokens per item the first block runs on, and the engine's outputs for `chunks`."""
    rows: list[int] = []
    hook = model.model.block(0).register_forward_pre_hook(lambda _m, args: rows.append(args[0].shape[1]))
    try:
        return rows, model.run_chunks(chunks, keep_frames=True)
    finally:
        hook.remove()


def test_bf16_blocks_run_on_tokens_padded_to_32_rows_with_the_same_scores(tiny_dir, native_bf16, monkeypatch):
    """The CPU's flash attention is up to twice as slow off its 32-row blocks: bf16 pads the tokens, masks
    them as keys and cuts them off, and scores as the unpadded blocks do (to bf16's rounding)."""
    from emotion_app.model import graph

    rng = np.random.default_rng(5)
    chunks = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (48000, 30000)]
    model = TorchModel(tiny_dir, "cpu", "bf16")
    rows, padded = _rows_seen(model, chunks)
    tokens = model.model.cfg.num_extra_tokens + model.model.cfg.num_frames(48000)
    assert rows == [160] and tokens % 32 != 0 and tokens <= 160  # 3 s: 159 tokens
    monkeypatch.setattr(graph, "_aligned_rows", lambda x: x.shape[1])
    rows, plain = _rows_seen(model, chunks)
    assert rows == [tokens]
    for a, b in zip(padded, plain):
        assert a.frames.shape == b.frames.shape
        assert np.abs(a.probabilities - b.probabilities).max() < 0.01  # bf16: other blocks, other roundings
        assert np.abs(a.frames - b.frames).max() < 0.05 * np.abs(b.frames).max()


def test_fp32_blocks_keep_their_rows(tiny_dir):
    rows, _ = _rows_seen(TorchModel(tiny_dir, "cpu", "fp32"), [np.zeros(48000, np.float32)])
    assert rows == [159]


def test_one_padding_for_every_item_gives_one_bias_for_the_batch(tiny_dir):
    """Items padded alike (aligned rows, windows of one length) share one (1, H, T, T) bias; items of
    other lengths get one each."""
    model = TorchModel(tiny_dir, "cpu", "fp32").model
    alike = torch.tensor([[False] * 5 + [True] * 3] * 4)
    apart = torch.tensor([[False] * 5 + [True] * 3, [False] * 8, [False] * 7 + [True], [False] * 8])
    heads, e = model.cfg.num_heads, model.cfg.num_extra_tokens
    shared = model.attention_bias(8, alike, 0, torch.float32)
    assert shared.shape == (1, heads, e + 8, e + 8)
    assert torch.isinf(shared[0, :, :, e + 5 :]).all() and torch.isfinite(shared[0, :, :, : e + 5]).all()
    own = model.attention_bias(8, apart, 0, torch.float32)
    assert own.shape == (4, heads, e + 8, e + 8) and torch.equal(own[0], shared[0])
    assert torch.isfinite(own[1]).all() and torch.isinf(own[2, :, :, -1]).all()


def test_padded_tokens_are_masked_as_keys(tiny_dir, monkeypatch):
    """The padding itself, in fp32 where rounding cannot hide it: 1 s (59 tokens) padded to 64 scores as
    the unpadded blocks to 1e-5; with the padded keys left unmasked it moved by 3e-2."""
    from emotion_app.model import graph

    rng = np.random.default_rng(6)
    chunks = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16000, 12000)]
    model = TorchModel(tiny_dir, "cpu", "fp32")
    _, plain = _rows_seen(model, chunks)
    monkeypatch.setattr(graph, "_aligned_rows", lambda x: -(-x.shape[1] // 32) * 32)
    rows, padded = _rows_seen(model, chunks)
    assert rows == [64]
    for a, b in zip(padded, plain):
        np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=0, atol=1e-5)
        np.testing.assert_allclose(a.frames, b.frames, rtol=0, atol=1e-4)
