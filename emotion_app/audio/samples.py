"""Decoded audio and its facts: `Audio` (mono float32 at 16 kHz), `AudioInfo`, `AudioWarning`.

The checks every input goes through (rate, length, finite samples), PCM to float (`to_float`),
downmixing and resampling to 16 kHz (`resample`, `stream_resampler`: the only soxr calls), and
arrays -> `Audio` (`audio_from_array`). Files are decoded by decoding.py; source.py opens every
accepted input (`open_source`, `load_audio`). Every failure raises `AudioError` with a specific message and a
stable `code`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from ..constants import DEFAULT_MAX_DURATION_S, SAMPLE_RATE, SHORT_AUDIO_S, SILENCE_PEAK
from ..errors import AudioError

logger = logging.getLogger(__name__)

SUPPORTED = "WAV, MP3, M4A/AAC, FLAC, OGG/Vorbis, Opus, WEBM, AIFF, and the audio of MP4/MKV/MOV video"
MIN_RATE, MAX_RATE = 1_000, 768_000  # Hz: outside this a rate is treated as corrupt
MIN_SAMPLES = 400  # 25 ms at 16 kHz: the model's receptive field, one frame


@dataclass(frozen=True)
class AudioInfo:
    """Facts about the source: what it was and what was done to it."""

    source: str  # file name, "<bytes>", "<array>"
    container: str | None  # FFmpeg's demuxer name, e.g. "wav", "mp3", "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str | None  # e.g. "pcm_s16le", "mp3", "opus"
    sample_rate: int  # original rate, Hz
    channels: int  # original channel count (averaged to mono)
    duration_s: float  # of the decoded audio
    resampled: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AudioWarning:
    """Something the caller should show next to the result (the audio was still used)."""

    code: str  # "short" or "silent"
    message: str


@dataclass
class Audio:
    """Decoded audio: `samples` is (N,) float32 mono at 16 kHz; `channels`, for an input of several
    channels that was given as an array, each channel at 16 kHz, (N, C) (calls: one speaker each)."""

    samples: np.ndarray
    info: AudioInfo
    warnings: list[AudioWarning] = field(default_factory=list)
    channels: np.ndarray | None = None

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def fmt_duration(seconds: float) -> str:
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h} h {m} min" if h else (f"{m} min {s} s" if m else f"{seconds:.2f} s")


def check_rate(rate) -> int:
    try:
        rate = int(rate)
    except (TypeError, ValueError):
        raise AudioError(f"Invalid sample rate {rate!r}: give the rate in Hz as an integer.", "bad_rate") from None
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(
            f"Sample rate {rate} Hz is not plausible (expected {MIN_RATE}-{MAX_RATE} Hz); the file is corrupt "
            "or the rate was given wrong.",
            "bad_rate",
        )
    return rate


def to_float(arr: np.ndarray) -> np.ndarray:
    """Integer PCM (signed or unsigned, any width) to [-1, 1) float32; float stays float. The one
    conversion of the package: files, arrays, the Live tab's chunks and the WebSocket's frames."""
    if arr.dtype.kind == "f":
        return arr.astype(np.float32, copy=False)
    if arr.dtype.kind == "u":
        bits = arr.dtype.itemsize * 8
        return ((arr.astype(np.float64) - 2 ** (bits - 1)) / 2 ** (bits - 1)).astype(np.float32)
    if arr.dtype.kind == "i":
        return (arr.astype(np.float64) / 2 ** (arr.dtype.itemsize * 8 - 1)).astype(np.float32)
    raise AudioError(f"Unsupported sample type {arr.dtype}: give float or integer PCM samples.", "bad_array")


def check_finite(block: np.ndarray, prefix: str = "") -> None:
    if not np.isfinite(block).all():
        raise AudioError(f"{prefix}The audio contains NaN or infinite sample values; it is corrupt.", "not_finite")


def audio_warnings(num_samples: int, peak: float) -> list[AudioWarning]:
    out = []
    seconds = num_samples / SAMPLE_RATE
    if seconds < SHORT_AUDIO_S:
        out.append(AudioWarning("short", f"The audio is very short ({seconds:.2f} s); results below 1 s are unreliable."))
    if peak < SILENCE_PEAK:
        out.append(AudioWarning("silent", "The audio is silent (peak below -80 dBFS); the result says little."))
    return out


def check_length(num_samples: int, max_duration_s: float) -> None:
    if num_samples < MIN_SAMPLES:
        raise AudioError(
            f"The audio is too short ({num_samples / SAMPLE_RATE * 1000:.0f} ms); the model needs at least 25 ms.",
            "too_short",
        )
    if num_samples > max_duration_s * SAMPLE_RATE + SAMPLE_RATE:
        raise AudioError(too_long_message(num_samples / SAMPLE_RATE, max_duration_s), "too_long")


def too_long_message(seconds: float, max_duration_s: float) -> str:
    return (
        f"The audio is too long ({fmt_duration(seconds)}); the limit is {fmt_duration(max_duration_s)}. "
        "Cut it into parts or raise the limit."
    )


def resample(x: np.ndarray, rate: int) -> np.ndarray:
    """(n,) or (n, channels) float32 at `rate` Hz -> 16 kHz (soxr, high quality); unchanged at 16 kHz."""
    import soxr

    if rate == SAMPLE_RATE:
        return x
    return soxr.resample(x, rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)


def stream_resampler(rate: int, channels: int = 1):
    """A streaming resampler from `rate` Hz to 16 kHz (soxr, the same quality as `resample`), whose
    blocks join without seams: `.resample_chunk(x)` ((n,) or (n, channels)), then
    `.resample_chunk(empty, last=True)` for the tail. None at 16 kHz (nothing to do)."""
    import soxr

    return None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, channels, dtype="float32", quality="HQ")


def downmix(x: np.ndarray, channel_axis: int = 0) -> np.ndarray:
    """(C, n) (or (n, C) with channel_axis=1) float32 -> (n,) mono, the channels averaged; (n,) as is."""
    return x if x.ndim == 1 else x.mean(axis=channel_axis, dtype=np.float32)


def audio_from_array(array, sample_rate, *, max_duration_s: float = DEFAULT_MAX_DURATION_S, name: str = "<array>") -> Audio:
    """Audio from samples at `sample_rate`: shape (N,), (N, C) or (C, N) with C <= 8 channels."""
    arr = np.asarray(array)
    rate = check_rate(sample_rate)
    if arr.ndim == 2:
        if arr.shape[1] <= 8 and arr.shape[0] > arr.shape[1]:
            arr = arr.T  # (N, C) as Gradio and soundfile give it
        if arr.shape[0] > 8:
            raise AudioError(f"Cannot tell channels from samples in an array of shape {arr.shape}.", "bad_array")
    elif arr.ndim != 1:
        raise AudioError(f"Expected a 1-D or 2-D array of samples, got shape {arr.shape}.", "bad_array")
    if arr.size == 0:
        raise AudioError("The audio is empty (no samples).", "empty")
    x = to_float(arr)
    check_finite(x)
    channels = 1 if x.ndim == 1 else x.shape[0]
    mono = downmix(x)
    check_length(int(len(mono) * SAMPLE_RATE / rate), max_duration_s)
    samples = np.ascontiguousarray(resample(mono, rate), dtype=np.float32)
    check_length(len(samples), max_duration_s)
    peak = float(np.abs(samples).max())
    info = AudioInfo(name, None, None, rate, channels, len(samples) / SAMPLE_RATE, rate != SAMPLE_RATE)
    per_channel = np.ascontiguousarray(resample(np.ascontiguousarray(x.T), rate), dtype=np.float32) if channels > 1 else None
    return Audio(samples, info, audio_warnings(len(samples), peak), per_channel)
