"""Cutting long recordings into utterances: voice activity (Silero VAD) or fixed windows.

Everything streams: the VAD reads the audio in 512-sample frames and keeps one probability per
frame (32 ms; 225,000 floats for 2 hours), and `cut_spans` hands out one span's samples at a time,
so memory does not grow with the length of the recording.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass

import numpy as np

from ..constants import RECEPTIVE_FIELD, SAMPLE_RATE
from ..fields import checked, given, parse_choice, parse_float
from .vad import VAD_FRAME, speech_spans, vad_model  # noqa: F401  (vad_model: re-exported for callers)

logger = logging.getLogger(__name__)

MODES = ("vad", "window", "none")
VAD_FIELDS = ("threshold", "min_speech_s", "min_silence_s", "max_segment_s", "speech_pad_s")
WINDOW_FIELDS = ("window_s", "hop_s")
SEGMENT_FIELDS = (*VAD_FIELDS, *WINDOW_FIELDS)


@dataclass(frozen=True)
class SegmentOptions:
    mode: str = "vad"  # vad: speech segments; window: fixed windows; none: the whole file
    threshold: float = 0.5  # VAD speech probability to enter speech (leaves below threshold - 0.15)
    min_speech_s: float = 0.25  # shorter speech is dropped
    min_silence_s: float = 0.3  # a pause shorter than this does not end a segment
    max_segment_s: float = 30.0  # longer speech is split (at the longest pause when there is one)
    speech_pad_s: float = 0.03  # added on both sides of each speech segment
    window_s: float = 10.0  # fixed windows: length
    hop_s: float = 10.0  # fixed windows: start-to-start distance (<= window_s so windows cover the file)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"segmentation must be one of {', '.join(MODES)}, not {self.mode!r}")
        checks = [
            ("VAD threshold", self.threshold, 0.05, 0.95, ""),
            ("minimum speech duration", self.min_speech_s, 0.0, 10.0, " s"),
            ("minimum silence duration", self.min_silence_s, 0.0, 10.0, " s"),
            ("maximum segment length", self.max_segment_s, 1.0, 600.0, " s"),
            ("speech padding", self.speech_pad_s, 0.0, 1.0, " s"),
            ("window length", self.window_s, 0.5, 600.0, " s"),
            ("window hop", self.hop_s, 0.5, 600.0, " s"),
        ]
        for what, value, lo, hi, unit in checks:
            if not lo <= value <= hi:
                raise ValueError(f"{what} must be from {lo:g} to {hi:g}{unit}, not {value!r}")
        if self.hop_s > self.window_s:
            raise ValueError(f"window hop ({self.hop_s:g} s) must not exceed the window length ({self.window_s:g} s)")

    @classmethod
    def from_fields(cls, mapping: Mapping | None, mode: str | None = None) -> SegmentOptions:
        """From form fields or flags (numbers may be strings); `hop_s` defaults to `window_s`.
        `mode` overrides the mapping's `segment` field."""
        v = given(mapping, ("segment", *SEGMENT_FIELDS))
        mode = parse_choice(mode or v.get("segment", cls.mode), "segment", MODES)
        numbers = {k: parse_float(v[k], k) for k in SEGMENT_FIELDS if k in v}
        if "window_s" in numbers and "hop_s" not in numbers:
            numbers["hop_s"] = numbers["window_s"]
        return checked(cls, mode, **numbers)

    def to_dict(self) -> dict:
        return asdict(self)


class VadScanner:
    """Feed 16 kHz blocks; collects one speech probability per 512-sample frame. `model`: one
    taken from `vad.vad_model()` for this scan alone."""

    def __init__(self, model):
        self.model = model
        self.probs: list[float] = []
        self._rest = np.zeros(0, np.float32)
        self.samples = 0

    def feed(self, block: np.ndarray) -> None:
        self.samples += len(block)
        data = np.concatenate([self._rest, block]) if len(self._rest) else block
        n = len(data) // VAD_FRAME * VAD_FRAME
        self._run(data[:n])
        self._rest = data[n:].copy()

    def _run(self, data: np.ndarray) -> None:
        self.probs += self.model(data)

    def finish(self) -> np.ndarray:
        """The probabilities; a last partial frame is zero-padded, as Silero does."""
        if len(self._rest):
            self._run(np.concatenate([self._rest, np.zeros(VAD_FRAME - len(self._rest), np.float32)]))
            self._rest = np.zeros(0, np.float32)
        return np.asarray(self.probs, dtype=np.float32)


def vad_spans(probs: np.ndarray, total: int, opts: SegmentOptions) -> list[tuple[int, int]]:
    """Speech spans (start, end) in samples from the per-frame probabilities (Silero's rules,
    vad.speech_spans); spans shorter than one model frame are dropped."""
    spans = speech_spans(
        probs,
        total,
        threshold=opts.threshold,
        min_speech_s=opts.min_speech_s,
        max_segment_s=opts.max_segment_s,
        min_silence_s=opts.min_silence_s,
        speech_pad_s=opts.speech_pad_s,
    )
    out = [(int(a), min(int(b), total)) for a, b in spans]
    return [(a, b) for a, b in out if b - a >= RECEPTIVE_FIELD]


def tighten(samples: np.ndarray, pad: int, max_trim: int = 5 * 1024, floor_db: float = -40.0) -> tuple[int, int]:
    """(start, end) offsets inside a VAD segment without its quiet edges.

    Silero's speech probability lags the voice by about 100 ms, so its segments end late. Each end
    is moved in to the outermost 10 ms block louder than `floor_db` below the segment's loudest
    block, plus `pad` samples, by at most `max_trim` samples."""
    hop = SAMPLE_RATE // 100
    n = len(samples) // hop
    if n == 0:
        return 0, len(samples)
    rms = np.sqrt(np.mean(np.square(samples[: n * hop].reshape(n, hop), dtype=np.float64), axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (floor_db / 20))
    if len(loud) == 0:
        return 0, len(samples)
    a = min(max(0, loud[0] * hop - pad), max_trim)
    b = max(min(len(samples), (loud[-1] + 1) * hop + pad), len(samples) - max_trim)
    return (a, b) if b - a >= RECEPTIVE_FIELD else (0, len(samples))


def window_spans(total: int, opts: SegmentOptions) -> list[tuple[int, int]]:
    """Fixed windows from 0 that cover [0, total) exactly; a last piece under half a window (or too
    short for the model) joins the window before it."""
    win, hop = int(round(opts.window_s * SAMPLE_RATE)), int(round(opts.hop_s * SAMPLE_RATE))
    spans = []
    start = 0
    while True:
        end = min(start + win, total)
        spans.append((start, end))
        if end >= total:
            break
        start += hop
    if len(spans) > 1:
        last = spans[-1]
        if last[1] - last[0] < max(win // 2, RECEPTIVE_FIELD) and last[1] > spans[-2][1]:
            spans[-2:] = [(spans[-2][0], total)]
        elif last[1] <= spans[-2][1]:
            spans.pop()
    return spans


def cut_spans(blocks: Iterable[np.ndarray], spans: list[tuple[int, int]]) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
    """Yield (span, samples) for sorted spans from a stream of blocks, holding only what the next
    spans need."""
    pending = sorted(spans)
    buf: list[np.ndarray] = []
    buf_start = 0  # sample index of buf[0][0]
    buffered = 0
    i = 0
    for block in blocks:
        buf.append(block)
        buffered += len(block)
        while i < len(pending) and pending[i][1] <= buf_start + buffered:
            a, b = pending[i]
            data = np.concatenate(buf) if len(buf) > 1 else buf[0]
            buf = [data]
            yield pending[i], data[a - buf_start : b - buf_start].copy()
            i += 1
        keep_from = pending[i][0] if i < len(pending) else buf_start + buffered
        drop = min(keep_from - buf_start, buffered)
        if drop > 0:
            data = np.concatenate(buf) if len(buf) > 1 else buf[0]
            data = data[drop:]
            buf, buf_start, buffered = ([data] if len(data) else []), buf_start + drop, len(data)
        if i >= len(pending):
            return
    if i < len(pending) and buffered:  # spans past the end: clipped to what there is
        data = np.concatenate(buf)
        for a, b in pending[i:]:
            if a - buf_start < len(data):
                yield (a, min(b, buf_start + len(data))), data[a - buf_start : b - buf_start].copy()
