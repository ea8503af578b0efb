"""Long audio in model windows, and the bookkeeping that puts chunk results back together.

A chunk holds `window_frames` frames: `window_frames * 320 + 80` samples, and the next chunk
starts `window_frames * 320` samples later. The 80-sample overlap (receptive field 400 minus
hop 320) makes the chunks' frames tile the global 50 Hz grid exactly: the concatenated frame
results have the length and timing a single pass would have. A last piece shorter than a
quarter window is merged into the chunk before it, so no chunk is a sliver.

The utterance result over several chunks is defined as FunASR's rule applied to all frames:
softmax(head(mean of every frame feature)), i.e. the frame-count-weighted mean of the chunks'
mean features. With one chunk it is exactly FunASR's result.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..constants import FRAME_HOP, RECEPTIVE_FIELD, SAMPLE_RATE

OVERLAP = RECEPTIVE_FIELD - FRAME_HOP  # 80 samples


def window_frames(window_s: float) -> int:
    return max(1, int(round(window_s * SAMPLE_RATE / FRAME_HOP)))


def iter_chunks(blocks: Iterable[np.ndarray], frames_per_window: int) -> Iterator[tuple[int, np.ndarray]]:
    """Cut a stream of 16 kHz blocks into (start_sample, chunk) model windows, in bounded memory."""
    step = frames_per_window * FRAME_HOP
    length = step + OVERLAP
    min_tail = step // 4
    buf: list[np.ndarray] = []
    buffered = 0
    start = 0
    for block in blocks:
        buf.append(block)
        buffered += len(block)
        if buffered < length + min_tail:
            continue
        data = np.concatenate(buf)
        while len(data) >= length + min_tail:
            yield start, data[:length]
            data = data[step:]
            start += step
        buf, buffered = [data], len(data)
    if buffered:
        yield start, np.concatenate(buf)


@dataclass
class ChunkOutput:
    """What the model gives for one chunk (numpy, on the CPU)."""

    mean: np.ndarray  # (D,) mean frame feature
    probabilities: np.ndarray  # (V,) utterance probabilities of this chunk alone
    frame_probabilities: np.ndarray  # (T, V)
    frames: np.ndarray | None  # (T, D) frame features, only when asked for


@dataclass
class Accumulator:
    """Collects an input's chunk outputs in order of their start sample."""

    parts: dict[int, ChunkOutput] = field(default_factory=dict)

    def add(self, start: int, out: ChunkOutput) -> None:
        self.parts[start] = out

    def ordered(self) -> list[ChunkOutput]:
        return [self.parts[s] for s in sorted(self.parts)]

    def mean_feature(self) -> np.ndarray:
        """(D,) frame-count-weighted mean of the chunk means, in float64."""
        parts = self.ordered()
        counts = np.array([len(p.frame_probabilities) for p in parts], dtype=np.float64)
        means = np.stack([p.mean.astype(np.float64) for p in parts])
        return (means * counts[:, None]).sum(0) / counts.sum()

    def frame_probabilities(self) -> np.ndarray:
        return np.concatenate([p.frame_probabilities for p in self.ordered()])

    def frames(self) -> np.ndarray:
        return np.concatenate([p.frames for p in self.ordered()])
