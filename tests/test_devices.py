"""dtype per device, the CPU's native-bf16 probe, and what bf16 costs in accuracy on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cpu_features import ONEDNN_PACKS_BF16

from emotion_app.errors import ModelLoadError
from emotion_app.model import devices
from emotion_app.model.devices import cpu_has_native_bf16, resolve_dtype

UTTERANCE_BOUND, FRAME_BOUND = 0.025, 0.1  # bf16 vs fp32 |dp|, argued in test_bf16_stays_close_to_fp32_on_the_cpu
CPUINFO = "processor\t: {i}\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f avx512bw {extra}\n\n"


@pytest.mark.parametrize(
    "extra, expected",
    [("avx512_bf16 avx512_vnni", True), ("amx_bf16 amx_tile", True), ("avx512_vnni avx512_fp16", False), ("", False)],
)
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, extra, expected):
    path = tmp_path / "cpuinfo"
    path.write_text("".join(CPUINFO.format(i=i, extra=extra) for i in range(2)))
    assert cpu_has_native_bf16(path) is expected


@pytest.mark.parametrize("extra, expected", [("avx512_vnni", True), ("avx_vnni", True), ("avx512f", False), ("", False)])
def test_int8_dot_products_are_read_from_the_cpu_flags(tmp_path, extra, expected):
    from emotion_app.model.devices import cpu_has_int8_dot

    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(i=0, extra=extra))
    assert cpu_has_int8_dot(path) is expected
    path.write_text(f"processor\t: 0\nFeatures\t: fp asimd {'asimddp' if expected else ''}\n")  # ARM's line
    assert cpu_has_int8_dot(path) is expected


def test_without_proc_cpuinfo_torch_probes_the_cpu(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    for native in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda native=native: native, raising=False)
        assert cpu_has_native_bf16(tmp_path / "no_such_file") is native


@pytest.mark.parametrize(
    "requested, device, native, expected",
    [
        ("auto", "cpu", True, "fp32"),  # auto is the FunASR-parity mode everywhere
        ("auto", "cuda", True, "fp32"),
        ("fp32", "cpu", False, "fp32"),
        ("fp32", torch.device("cuda", 1), False, "fp32"),
        ("bf16", "cuda:0", False, "bf16"),
        ("bf16", "cpu", True, "bf16"),
        ("bf16", torch.device("cpu"), True, "bf16"),
        ("fp16", "cuda", False, "fp16"),
        ("int8", "cpu", False, "int8"),
    ],
)
def test_resolve_dtype(monkeypatch, requested, device, native, expected):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    assert resolve_dtype(requested, device) == expected


@pytest.mark.parametrize(
    "requested, device, native, message",
    [
        ("bf16", "cpu", False, r"emulated .* slower than fp32; use --dtype fp32"),
        ("fp16", "cpu", True, r"fp16 is for CUDA"),
        ("int8", "cuda", True, r"int8 is a CPU mode; on a GPU use --dtype fp16 or bf16"),
        ("int4", "cpu", True, r"unknown dtype 'int4'"),
    ],
)
def test_resolve_dtype_refuses_with_the_reason(monkeypatch, requested, device, native, message):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    with pytest.raises(ModelLoadError, match=message):
        resolve_dtype(requested, device)


def clip(kind: str, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    if kind == "tone":
        return (0.4 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    if kind == "noise":
        return (0.1 * np.random.default_rng(1).standard_normal(len(t))).astype(np.float32)
    return (0.3 * np.sin(2 * np.pi * (100 + 200 * t) * t)).astype(np.float32)


def test_bf16_stays_close_to_fp32_on_the_cpu(tiny_dir):
    """The bound, argued: bf16 keeps 8 significant bits, so each rounded weight and activation is off
    by at most 2^-9 (0.2 %) of itself. The tiny model rounds about 20 times on the way to a logit
    (7 convs, projection, 5 positional convs, 3 blocks of attention and MLP; LayerNorm accumulates
    in fp32 on the CPU already: fp32 norms change nothing, measured). The errors partly cancel:
    frame logits spanning ~8 units move by at most 0.2, utterance logits by at most 0.05 (the
    mean over frames averages independent rounding errors out). Softmax moves each probability by
    at most half the largest logit change: |dp_i| = p_i |dz_i - sum_j p_j dz_j| <= 2 p_i (1 - p_i)
    max|dz| <= max|dz| / 2. Hence the bounds 0.1 per frame and 0.025 per utterance. Measured on
    these clips: frames 0.036 (|dz| 0.18), utterance 0.0047 (|dz| 0.043); on the plus_large layout
    0.018 and 0.0093.
    """
    from emotion_app.model.packed import pack_linears
    from emotion_app.model.torch_backend import load_model

    fp32, _ = load_model(tiny_dir, torch.device("cpu"), torch.float32, cache_weights=False)
    bf16, _ = load_model(tiny_dir, torch.device("cpu"), torch.bfloat16, cache_weights=False)
    assert (pack_linears(bf16) > 0) == ONEDNN_PACKS_BF16  # as TorchModel runs bf16 on the CPU (model/packed.py)
    agree = []
    for kind, seconds in [("tone", 1.0), ("noise", 5.0), ("chirp", 8.0), ("chirp", 3.0)]:
        wav = torch.from_numpy(clip(kind, seconds))[None]
        with torch.inference_mode():
            a, b = fp32(wav), bf16(wav)  # the model normalises in fp32, then casts to its dtype
        assert b.frames.dtype == torch.bfloat16 and torch.isfinite(b.frame_logits).all()
        pairs = [(a.utterance_logits, b.utterance_logits, UTTERANCE_BOUND), (a.frame_logits, b.frame_logits, FRAME_BOUND)]
        for logits_a, logits_b, bound in pairs:
            pa, pb = torch.softmax(logits_a, -1), torch.softmax(logits_b, -1)
            dp, dz = (pa - pb).abs().max().item(), (logits_a - logits_b).abs().max().item()
            assert dp <= bound, f"{kind} {seconds} s: |dp| {dp:.3g}"
            assert dp <= dz / 2 + 1e-6  # the softmax bound above
        top = torch.softmax(a.utterance_logits, -1)[0].sort(descending=True).values
        if top[0] - top[1] > 2 * UTTERANCE_BOUND:  # a clear winner stays the winner
            assert a.utterance_logits.argmax() == b.utterance_logits.argmax(), f"{kind} {seconds} s"
        agree.append((a.frame_logits.argmax(-1) == b.frame_logits.argmax(-1)).float().mean().item())
    assert min(agree) >= 0.95  # frames with near-ties may flip; measured 0.99
