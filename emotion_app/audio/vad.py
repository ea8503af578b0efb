"""Silero VAD models, one per scan: its bundled TorchScript model (torch backend) or its ONNX
model on onnxruntime (the ONNX backend, torch never imported).

Silero keeps recurrent state (an LSTM state and 64 samples of context) between 512-sample frames,
so a model is never shared: `vad_model()` lends one from a pool for one scan and takes it back
reset. Both kinds take (n,) float32 at 16 kHz, n a multiple of 512, and give one speech
probability per frame.
"""

from __future__ import annotations

import importlib.util
import queue
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..constants import SAMPLE_RATE
from ..errors import ModelLoadError

VAD_FRAME = 512  # samples per Silero VAD step at 16 kHz
CONTEXT = 64  # samples of the previous frame Silero's ONNX model sees before each frame
ONNX_NAME = "vad.onnx"  # the file name in an export-onnx folder

_pools: dict[str, queue.SimpleQueue] = {}


def silero_onnx_file() -> Path | None:
    """The ONNX model inside the installed silero-vad package (found without importing it)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "silero_vad.onnx"
    return path if path.is_file() else None


class TorchVad:
    """Silero's TorchScript model (its import sets torch to 1 thread; that is undone)."""

    def __init__(self):
        import torch
        from silero_vad import load_silero_vad

        threads = torch.get_num_threads()
        self.model = load_silero_vad()
        torch.set_num_threads(threads)

    def reset(self) -> None:
        self.model.reset_states()

    def __call__(self, data: np.ndarray) -> list[float]:
        import torch

        with torch.inference_mode():
            return [
                float(self.model(torch.from_numpy(data[i : i + VAD_FRAME].copy()), SAMPLE_RATE))
                for i in range(0, len(data), VAD_FRAME)
            ]


class OnnxVad:
    """Silero's ONNX model on onnxruntime, numpy only (the same steps as silero's OnnxWrapper)."""

    def __init__(self, path: Path):
        from ..optional import import_onnxruntime

        ort = import_onnxruntime()
        options = ort.SessionOptions()
        options.inter_op_num_threads = options.intra_op_num_threads = 1  # tiny steps: threads only cost
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros((1, CONTEXT), np.float32)

    def __call__(self, data: np.ndarray) -> list[float]:
        out = []
        rate = np.array(SAMPLE_RATE, dtype=np.int64)
        for i in range(0, len(data), VAD_FRAME):
            x = np.concatenate([self._context, data[None, i : i + VAD_FRAME].astype(np.float32)], axis=1)
            prob, self._state = self.session.run(None, {"input": x, "state": self._state, "sr": rate})
            self._context = x[:, -CONTEXT:]
            out.append(float(prob[0, 0]))
        return out


def _load(onnx_file: Path | None):
    if onnx_file is not None:
        return OnnxVad(onnx_file)
    try:
        return TorchVad()
    except ImportError as exc:
        raise ModelLoadError(
            f"voice activity detection needs silero-vad with torch, or an ONNX export with {ONNX_NAME} ({exc}); "
            "export the model again with export-onnx (silero-vad installed), or use segment=window"
        ) from exc


@contextmanager
def vad_model(onnx_file: Path | None = None) -> Iterator:
    """A VAD model for one scan: Silero's ONNX model from `onnx_file`, else its TorchScript model."""
    pool = _pools.setdefault(str(onnx_file), queue.SimpleQueue())
    try:
        model = pool.get_nowait()
    except queue.Empty:
        model = _load(onnx_file)
    model.reset()
    try:
        yield model
    finally:
        model.reset()
        pool.put(model)


def speech_spans(
    probs,
    total: int,
    *,
    threshold: float,
    min_speech_s: float,
    max_segment_s: float,
    min_silence_s: float,
    speech_pad_s: float,
) -> list[tuple[int, int]]:
    """Speech spans (start, end) in samples from one probability per 512-sample frame.

    Silero VAD's rules (its `get_speech_timestamps_from_probs`, defaults; re-implemented here so
    that neither torch nor silero-vad is needed, and checked against it in the tests): speech
    starts at a frame >= `threshold` and ends after `min_silence_s` below `threshold - 0.15`;
    speech longer than `max_segment_s` is cut at its longest pause over 98 ms (or where it
    stands); spans shorter than `min_speech_s` are dropped; each span is padded by
    `speech_pad_s`, or by half the gap when two spans are closer than twice that.
    """
    rate = SAMPLE_RATE
    pad = rate * speech_pad_s
    min_speech, min_silence = rate * min_speech_s, rate * min_silence_s
    max_speech = rate * max_segment_s - VAD_FRAME - 2 * pad
    min_pause_at_max = rate * 0.098
    low = max(threshold - 0.15, 0.01)
    spans: list[list[int]] = []
    start: int | None = None  # the open span's start
    temp_end = prev_end = next_start = 0
    pauses: list[tuple[int, int]] = []  # (start, length) of pauses inside the open span
    for i, p in enumerate(probs):
        t = VAD_FRAME * i
        if p >= threshold and temp_end:  # speech again after a pause shorter than min_silence
            if t - temp_end > min_pause_at_max:
                pauses.append((temp_end, t - temp_end))
            temp_end = 0
            if next_start < prev_end:
                next_start = t
        if p >= threshold and start is None:
            start = t
            continue
        if start is not None and t - start > max_speech:  # too long: cut
            if pauses:
                prev_end, length = max(pauses, key=lambda x: x[1])
                spans.append([start, prev_end])
                next_start = prev_end + length
                start = next_start if next_start < prev_end + t else None
                prev_end = next_start = temp_end = 0
                pauses = []
            else:
                spans.append([start, t])
                start, prev_end, next_start, temp_end, pauses = None, 0, 0, 0, []
                continue
        if p < low and start is not None:
            temp_end = temp_end or t
            if t - temp_end < min_silence:
                continue
            if temp_end - start > min_speech:
                spans.append([start, temp_end])
            start, prev_end, next_start, temp_end, pauses = None, 0, 0, 0, []
    if start is not None and total - start > min_speech:
        spans.append([start, total])
    return _pad(spans, pad, total)


def _pad(spans: list[list[int]], pad: float, total: int) -> list[tuple[int, int]]:
    """Pad each span; two spans closer than 2 * pad meet in the middle of their gap."""
    for i, s in enumerate(spans):
        if i == 0:
            s[0] = int(max(0, s[0] - pad))
        if i == len(spans) - 1:
            s[1] = int(min(total, s[1] + pad))
            continue
        gap = spans[i + 1][0] - s[1]
        if gap < 2 * pad:
            s[1] += int(gap // 2)
            shift = gap // 2
        else:
            s[1] = int(min(total, s[1] + pad))
            shift = pad
        spans[i + 1][0] = int(max(0, spans[i + 1][0] - shift))
    return [(a, b) for a, b in spans]
