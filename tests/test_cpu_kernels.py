"""The CPU's own speed-ups under the model: bf16 linears packed for oneDNN once (model/packed.py),
the C heap keeping what a call frees for the next one (model/heap.py), the extractor's taps laid
out once per call (graph.strided_conv). Each must give the numbers the plain path gives."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from emotion_app.model import batcher as batcher_module
from emotion_app.model.graph import _conv_rows, strided_conv
from emotion_app.model.packed import PackedLinear, pack_linears
from emotion_app.model.torch_backend import TorchModel

ROOT = Path(__file__).resolve().parents[1]


def test_a_packed_linear_gives_the_plain_linears_numbers_bit_for_bit():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 96).to(torch.bfloat16)
    packed = PackedLinear(linear)
    for shape in [(1, 64), (37, 64), (2, 159, 64)]:  # any rows, 2-d or 3-d, as the blocks call it
        x = torch.randn(*shape, dtype=torch.bfloat16)
        with torch.inference_mode():
            assert torch.equal(packed(x), F.linear(x, linear.weight, linear.bias))


def test_the_bf16_model_on_the_cpu_is_packed_and_scores_as_the_unpacked_one(tiny_dir):
    packed = TorchModel(tiny_dir, "cpu", "bf16")
    plain = TorchModel(tiny_dir, "cpu", "bf16")
    plain.model = TorchModel(tiny_dir, "cpu", "fp32").model.to(torch.bfloat16)  # the same weights, never packed
    kinds = {name: type(m).__name__ for name, m in packed.model.named_modules() if "Linear" in type(m).__name__}
    assert kinds["head"] == "Linear"  # the head stays as it is (read in fp32 by head_logits)
    assert set(kinds.values()) == {"Linear", "PackedLinear"} and list(kinds.values()).count("Linear") == 1
    assert not any(isinstance(m, PackedLinear) for m in plain.model.modules())
    rng = np.random.default_rng(3)
    chunks = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16000, 27000)]
    for a, b in zip(packed.run_chunks(chunks, keep_frames=True), plain.run_chunks(chunks, keep_frames=True)):
        np.testing.assert_array_equal(a.probabilities, b.probabilities)
        np.testing.assert_array_equal(a.frames, b.frames)


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
import resource, sys
import numpy as np
from emotion_app.model import torch_backend
if sys.argv[2] == "default":
    torch_backend.keep_freed_memory = lambda: False  # glibc's own thresholds
model = torch_backend.TorchModel(sys.argv[1], "cpu", "bf16", threads=1)
wav = (0.1 * np.random.default_rng(0).standard_normal(160000)).astype(np.float32)
model.run_chunks([wav]); model.run_chunks([wav])
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    model.run_chunks([wav])
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4)
"""


def test_a_call_reuses_the_heap_pages_of_the_last_one(tiny_dir):
    """With glibc's own thresholds each 10 s call faults in fresh pages (about 2000 on the tiny
    model, 25 000 on plus_large); with the thresholds fixed (heap.keep_freed_memory), few."""
    faults = {}
    for mode in ("default", "kept"):
        out = subprocess.run(
            [sys.executable, "-c", FAULTS, str(tiny_dir), mode], capture_output=True, text=True, cwd=ROOT, check=True
        )
        faults[mode] = float(out.stdout.split()[-1])
    assert faults["default"] > 1000 and faults["kept"] < faults["default"] / 5, faults  # 16-141 kept, beside a busy worker


def test_the_batcher_gives_the_heap_back_when_idle(monkeypatch):
    trimmed = threading.Event()
    monkeypatch.setattr(batcher_module, "IDLE_EXIT_S", 0.05)
    monkeypatch.setattr(batcher_module, "trim_heap", trimmed.set)
    batcher = batcher_module.Batcher(lambda chunks, keep: [len(c) for c in chunks], max_chunks=4, max_samples=10**6)
    assert batcher.run([np.zeros(5, np.float32)]) == [5]
    assert trimmed.wait(5)
    time.sleep(0.05)
    assert batcher._thread is None  # the worker ended after the trim


def test_the_positional_convs_bf16_path_gives_conv1ds_numbers():
    """bf16 runs the grouped conv as a 2-d conv over the rows' channels-last view (graph._conv_rows)."""
    torch.manual_seed(2)
    conv = torch.nn.Conv1d(64, 64, 19, padding=9, groups=16).to(torch.bfloat16)
    for b, t in [(1, 37), (3, 149)]:
        x = torch.randn(b, t, 64, dtype=torch.bfloat16)
        with torch.inference_mode():
            assert torch.equal(_conv_rows(conv, x), conv(x.transpose(1, 2)).transpose(1, 2))


def test_the_extractors_taps_follow_its_weights(tiny_dir):
    """The taps are kept between calls (inference) and made anew once a weight changes; with a
    gradient wanted they are made at each call, so the gradient reaches the weights."""
    features = TorchModel(tiny_dir, "cpu", "fp32").model.features
    with torch.inference_mode():
        first = features._taps()
        assert features._taps() is first  # kept
    with torch.no_grad():
        features.convs[1].weight.mul_(2)
    with torch.inference_mode():
        again = features._taps()
    assert again is not first and torch.equal(again[1], first[1] * 2)
    features.requires_grad_(True)
    wav = torch.randn(1, 4000)
    features(wav, torch.tensor([4000])).sum().backward()
    assert all(c.weight.grad is not None and c.weight.grad.abs().sum() > 0 for c in features.convs)
