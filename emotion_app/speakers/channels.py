"""Calls recorded one speaker per channel: which speech on a channel is that channel's own.

On a call each party is recorded on a channel of their own, but each channel also carries the other
party faintly (cross-talk, echo: "bleed", typically 30 dB or more below the voice it copies). A VAD
cannot tell bleed from quiet speech, so its frames are judged against the other channels: where a
channel is at least `BLEED_MARGIN_DB` below the loudest channel, what it carries there is taken as
bleed, not as its speaker's speech. Both parties talking at once (overlap) stay speech on both
channels, since each is loud on its own channel.

`ChannelLevels` measures each channel's level (dB, per 512-sample VAD frame) block by block, as the
VAD reads the same blocks; `bleed` gives the frames to drop before the VAD's spans are drawn, and
`is_bleed` the spans to drop after (taken whole). numpy only.
"""

from __future__ import annotations

import numpy as np

from ..audio.vad import VAD_FRAME

BLEED_MARGIN_DB = 20.0  # a channel this far below the loudest one carries bleed, not its own speech
FLOOR_DB = -100.0  # the level of digital silence


class ChannelLevels:
    """Feed (n, C) blocks at 16 kHz; `levels()` gives (F, C) RMS levels in dBFS per VAD frame."""

    def __init__(self):
        self._rest: np.ndarray | None = None
        self._levels: list[np.ndarray] = []

    def feed(self, block: np.ndarray) -> None:
        data = block if self._rest is None or not len(self._rest) else np.concatenate([self._rest, block])
        n = len(data) // VAD_FRAME * VAD_FRAME
        if n:
            frames = data[:n].reshape(n // VAD_FRAME, VAD_FRAME, data.shape[1]).astype(np.float64)
            self._levels.append(_db(np.sqrt(np.mean(frames**2, axis=1))))
        self._rest = data[n:].copy()

    def levels(self) -> np.ndarray:
        """(F, C) levels, the last partial frame zero-padded as the VAD pads it."""
        if self._rest is not None and len(self._rest):
            pad = np.zeros((VAD_FRAME - len(self._rest), self._rest.shape[1]), self._rest.dtype)
            self.feed(pad)
            self._rest = None
        return np.concatenate(self._levels) if self._levels else np.zeros((0, 1))


def _db(rms: np.ndarray) -> np.ndarray:
    return np.maximum(20 * np.log10(np.maximum(rms, 1e-12)), FLOOR_DB)


def bleed(levels: np.ndarray, margin_db: float = BLEED_MARGIN_DB) -> np.ndarray:
    """(F, C) True where a channel is `margin_db` or more below the loudest channel in that frame."""
    if levels.size == 0:
        return np.zeros(levels.shape, dtype=bool)
    return levels <= levels.max(axis=1, keepdims=True) - margin_db


def is_bleed(levels: np.ndarray, channel: int, span: tuple[int, int], margin_db: float = BLEED_MARGIN_DB) -> bool:
    """Whether a speech span found on `channel` is, taken whole, `margin_db` or more below another
    channel: the VAD's memory carries speech on through the pauses of the other party's words, where
    both channels are quiet and no frame says which one is speaking; the span's energy does."""
    a, b = span[0] // VAD_FRAME, max(span[1] // VAD_FRAME, span[0] // VAD_FRAME + 1)
    power = np.sum(10 ** (levels[a:b] / 10), axis=0)  # (C,) energy of each channel over the span
    own, other = power[channel], np.delete(power, channel).max(initial=0.0)
    return other > 0 and 10 * np.log10(max(own, 1e-30) / other) <= -margin_db
