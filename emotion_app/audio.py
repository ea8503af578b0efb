"""Audio in any common form -> mono float32 at 16 kHz, with facts about the source.

`load_audio` accepts a path, bytes, a binary file object, a numpy array with its rate, or a
Gradio-style `(rate, array)` tuple. Files are decoded with PyAV (FFmpeg bundled) block by block
and resampled with soxr, so `AudioStream` can feed hours of audio in bounded memory. Every
failure raises `AudioError` with a specific message and a stable `code`.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .constants import DEFAULT_MAX_DURATION_S, SAMPLE_RATE, SHORT_AUDIO_S, SILENCE_PEAK
from .errors import AudioError

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
    """Decoded audio: `samples` is (N,) float32 mono at 16 kHz."""

    samples: np.ndarray
    info: AudioInfo
    warnings: list[AudioWarning] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def _fmt_duration(seconds: float) -> str:
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h} h {m} min" if h else (f"{m} min {s} s" if m else f"{seconds:.2f} s")


def _check_rate(rate) -> int:
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


def _to_float(arr: np.ndarray) -> np.ndarray:
    """Integer PCM to [-1, 1) float32; float stays float."""
    if arr.dtype.kind == "f":
        return arr.astype(np.float32, copy=False)
    if arr.dtype.kind == "u":
        bits = arr.dtype.itemsize * 8
        return ((arr.astype(np.float64) - 2 ** (bits - 1)) / 2 ** (bits - 1)).astype(np.float32)
    if arr.dtype.kind == "i":
        return (arr.astype(np.float64) / 2 ** (arr.dtype.itemsize * 8 - 1)).astype(np.float32)
    raise AudioError(f"Unsupported sample type {arr.dtype}: give float or integer PCM samples.", "bad_array")


def _check_finite(block: np.ndarray, prefix: str = "") -> None:
    if not np.isfinite(block).all():
        raise AudioError(f"{prefix}The audio contains NaN or infinite sample values; it is corrupt.", "not_finite")


def _warnings(num_samples: int, peak: float) -> list[AudioWarning]:
    out = []
    seconds = num_samples / SAMPLE_RATE
    if seconds < SHORT_AUDIO_S:
        out.append(AudioWarning("short", f"The audio is very short ({seconds:.2f} s); results below 1 s are unreliable."))
    if peak < SILENCE_PEAK:
        out.append(AudioWarning("silent", "The audio is silent (peak below -80 dBFS); the result says little."))
    return out


def _check_length(num_samples: int, max_duration_s: float) -> None:
    if num_samples < MIN_SAMPLES:
        raise AudioError(
            f"The audio is too short ({num_samples / SAMPLE_RATE * 1000:.0f} ms); the model needs at least 25 ms.",
            "too_short",
        )
    if num_samples > max_duration_s * SAMPLE_RATE + SAMPLE_RATE:
        raise AudioError(_too_long_message(num_samples / SAMPLE_RATE, max_duration_s), "too_long")


def _too_long_message(seconds: float, max_duration_s: float) -> str:
    return (
        f"The audio is too long ({_fmt_duration(seconds)}); the limit is {_fmt_duration(max_duration_s)}. "
        "Cut it into parts or raise the limit."
    )


def _resample(x: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    if rate == SAMPLE_RATE:
        return x
    return soxr.resample(x, rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)


def audio_from_array(array, sample_rate, *, max_duration_s: float = DEFAULT_MAX_DURATION_S, name: str = "<array>") -> Audio:
    """Audio from samples at `sample_rate`: shape (N,), (N, C) or (C, N) with C <= 8 channels."""
    arr = np.asarray(array)
    rate = _check_rate(sample_rate)
    if arr.ndim == 2:
        if arr.shape[1] <= 8 and arr.shape[0] > arr.shape[1]:
            arr = arr.T  # (N, C) as Gradio and soundfile give it
        if arr.shape[0] > 8:
            raise AudioError(f"Cannot tell channels from samples in an array of shape {arr.shape}.", "bad_array")
    elif arr.ndim != 1:
        raise AudioError(f"Expected a 1-D or 2-D array of samples, got shape {arr.shape}.", "bad_array")
    if arr.size == 0:
        raise AudioError("The audio is empty (no samples).", "empty")
    x = _to_float(arr)
    _check_finite(x)
    channels = 1 if x.ndim == 1 else x.shape[0]
    mono = x if x.ndim == 1 else x.mean(axis=0, dtype=np.float32)
    _check_length(int(len(mono) * SAMPLE_RATE / rate), max_duration_s)
    samples = np.ascontiguousarray(_resample(mono, rate), dtype=np.float32)
    _check_length(len(samples), max_duration_s)
    peak = float(np.abs(samples).max())
    info = AudioInfo(name, None, None, rate, channels, len(samples) / SAMPLE_RATE, rate != SAMPLE_RATE)
    return Audio(samples, info, _warnings(len(samples), peak))


class AudioStream:
    """Decode a file block by block: iterate to get (n,) float32 blocks at 16 kHz, mono.

    Use as a context manager. `info` and `warnings` are complete once iteration has ended.
    """

    def __init__(self, source, *, max_duration_s: float = DEFAULT_MAX_DURATION_S, name: str | None = None):
        self.max_duration_s = max_duration_s
        self.name, self._file, self._size = _open_source(source, name)
        self._container = None
        self.num_samples = 0
        self.peak = 0.0
        self.info: AudioInfo | None = None
        self.warnings: list[AudioWarning] = []

    def __enter__(self) -> AudioStream:
        import av

        if self._size == 0:
            raise AudioError(f"{self.name}: the file is empty (0 bytes).", "empty")
        self._check_wav_header()
        try:
            self._container = av.open(self._file, mode="r", metadata_errors="ignore")
        except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise AudioError(
                f"{self.name}: not an audio or video file that can be decoded ({_ffmpeg_reason(exc)}). Supported: {SUPPORTED}.",
                "not_audio",
            ) from None
        audio_streams = self._container.streams.audio
        if not audio_streams:
            self.close()
            raise AudioError(f"{self.name}: the file has no audio track.", "no_audio_track")
        self._stream = audio_streams[0]
        ctx = self._stream.codec_context
        self.rate = _check_rate(ctx.sample_rate)
        self.channels = ctx.channels if hasattr(ctx, "channels") else ctx.layout.nb_channels
        if not self.channels:
            raise AudioError(f"{self.name}: the audio track declares 0 channels; the file is corrupt.", "corrupt")
        self.declared_s = self._declared_duration()
        self._check_declared()
        return self

    def _check_wav_header(self) -> None:
        """Check a WAV header before FFmpeg sees it.

        FFmpeg refuses a 0 Hz rate as 'invalid data' and silently clamps a data size larger than
        the file; both get a specific message here, and nothing is ever allocated from a header.
        """
        head = self._peek(65536)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        pos, byte_rate = 12, 0
        while pos + 8 <= len(head):
            chunk, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
            if chunk == b"fmt " and pos + 24 <= len(head):
                try:
                    _check_rate(int.from_bytes(head[pos + 12 : pos + 16], "little"))
                except AudioError as exc:
                    raise AudioError(f"{self.name}: the WAV header says: {exc.message}", exc.code) from None
                byte_rate = int.from_bytes(head[pos + 16 : pos + 20], "little")
            elif chunk == b"data":
                available = (self._size or 0) - pos - 8
                # 0 and 0xFFFFFFFF mean "length unknown" (streamed recordings): accepted
                if self._size and size not in (0, 0xFFFFFFFF) and size > available + 4096:
                    claim = f" ({_fmt_duration(size / byte_rate)})" if byte_rate else ""
                    raise AudioError(
                        f"{self.name}: the WAV header declares {size / 1e6:.0f} MB of audio{claim} but the file holds "
                        f"only {max(available, 0) / 1e6:.1f} MB; it is truncated or corrupt.",
                        "truncated",
                    )
                return
            pos += 8 + size + (size & 1)

    def _peek(self, n: int) -> bytes:
        if isinstance(self._file, str):
            with open(self._file, "rb") as f:
                return f.read(n)
        try:
            pos = self._file.tell()
            head = self._file.read(n)
            self._file.seek(pos)
            return head
        except (OSError, AttributeError, ValueError):  # not seekable: let FFmpeg judge
            return b""

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def _declared_duration(self) -> float | None:
        s = self._stream
        if s.duration is not None and s.time_base is not None:
            return float(s.duration * s.time_base)
        if self._container.duration is not None:
            return self._container.duration / 1_000_000  # AV_TIME_BASE
        return None

    def _check_declared(self) -> None:
        """Refuse headers that claim more than the file can hold, before decoding anything."""
        declared, ctx = self.declared_s, self._stream.codec_context
        if declared is None:
            return
        if ctx.name.startswith("pcm_") and self._size and ctx.bit_rate:
            needed = declared * ctx.bit_rate / 8
            if needed > 1.05 * self._size + 65536:
                raise AudioError(
                    f"{self.name}: the header declares {_fmt_duration(declared)} of audio ({needed / 1e6:.0f} MB) "
                    f"but the file holds only {self._size / 1e6:.1f} MB; it is truncated or corrupt.",
                    "truncated",
                )
        if declared > self.max_duration_s + 1:
            raise AudioError(f"{self.name}: " + _too_long_message(declared, self.max_duration_s), "too_long")

    def __iter__(self) -> Iterator[np.ndarray]:
        import av
        import soxr

        resampler = (
            None if self.rate == SAMPLE_RATE else soxr.ResampleStream(self.rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        )
        limit = self.max_duration_s * SAMPLE_RATE + SAMPLE_RATE
        try:
            for frame in self._container.decode(self._stream):
                if frame.sample_rate != self.rate:
                    raise AudioError(f"{self.name}: the sample rate changes inside the stream; the file is corrupt.", "corrupt")
                block = self._mono(frame)
                if resampler is not None:
                    block = resampler.resample_chunk(block)
                if block.size:
                    yield self._account(block, limit)
            if resampler is not None:
                tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
                if tail.size:
                    yield self._account(tail, limit)
        except av.FFmpegError as exc:
            raise AudioError(
                f"{self.name}: the audio stream is corrupt or truncated ({_ffmpeg_reason(exc)}).", "corrupt"
            ) from None
        self._finish()

    def _mono(self, frame) -> np.ndarray:
        arr = frame.to_ndarray()
        channels = frame.layout.nb_channels
        if not frame.format.is_planar:
            arr = arr.reshape(-1, channels).T  # packed (1, n*C) -> (C, n)
        x = _to_float(arr)
        _check_finite(x, f"{self.name}: ")
        return x[0] if channels == 1 else x.mean(axis=0, dtype=np.float32)

    def _account(self, block: np.ndarray, limit: float) -> np.ndarray:
        self.num_samples += len(block)
        self.peak = max(self.peak, float(np.abs(block).max()))
        if self.num_samples > limit:
            raise AudioError(
                f"{self.name}: " + _too_long_message(self.num_samples / SAMPLE_RATE, self.max_duration_s), "too_long"
            )
        return np.ascontiguousarray(block, dtype=np.float32)

    def _finish(self) -> None:
        if self.num_samples == 0:
            raise AudioError(f"{self.name}: the file contains no audio samples.", "empty")
        decoded = self.num_samples / SAMPLE_RATE
        if self.declared_s and decoded < 0.5 * self.declared_s and self.declared_s - decoded > 2:
            raise AudioError(
                f"{self.name}: the file declares {_fmt_duration(self.declared_s)} of audio but only "
                f"{_fmt_duration(decoded)} could be decoded; it is truncated or corrupt.",
                "truncated",
            )
        _check_length(self.num_samples, self.max_duration_s)
        ctx = self._stream.codec_context
        self.info = AudioInfo(
            self.name, self._container.format.name, ctx.name, self.rate, self.channels, decoded, self.rate != SAMPLE_RATE
        )
        self.warnings = _warnings(self.num_samples, self.peak)


def _ffmpeg_reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _open_source(source, name: str | None):
    """(display name, path or file object for PyAV, size in bytes or None)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise AudioError(f"{path}: no such file.", "not_found")
        return name or path.name, str(path), path.stat().st_size
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return name or "<bytes>", io.BytesIO(data), len(data)
    if hasattr(source, "read"):
        size = None
        try:
            pos = source.tell()
            size = source.seek(0, io.SEEK_END) - pos
            source.seek(pos)
        except (OSError, AttributeError, ValueError):
            pass
        return name or Path(str(getattr(source, "name", "<file>"))).name, source, size
    raise AudioError(
        f"Cannot read audio from a {type(source).__name__}: give a path, bytes, a binary file object, "
        "a numpy array with sample_rate=, or a (rate, array) tuple.",
        "bad_input",
    )


def is_array_input(source) -> bool:
    return isinstance(source, np.ndarray) or (
        isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], np.ndarray)
    )


def load_audio(
    source,
    sample_rate: int | None = None,
    *,
    max_duration_s: float = DEFAULT_MAX_DURATION_S,
    name: str | None = None,
) -> Audio:
    """Decode `source` to mono float32 at 16 kHz.

    source: a path, bytes, a binary file object, a numpy array (give `sample_rate`), a
    `(rate, array)` tuple (Gradio's form), or an `Audio` (returned as is).
    Raises AudioError with a specific message; very short or silent audio gives `warnings`.
    """
    if isinstance(source, Audio):
        return source
    if isinstance(source, tuple) and is_array_input(source):
        rate, array = source
        return audio_from_array(array, rate, max_duration_s=max_duration_s, name=name or "<array>")
    if isinstance(source, np.ndarray):
        if sample_rate is None:
            raise AudioError("A numpy array needs its sample rate: load_audio(array, sample_rate=16000).", "bad_rate")
        return audio_from_array(source, sample_rate, max_duration_s=max_duration_s, name=name or "<array>")
    with AudioStream(source, max_duration_s=max_duration_s, name=name) as stream:
        blocks = list(stream)
    return Audio(np.concatenate(blocks), stream.info, stream.warnings)
