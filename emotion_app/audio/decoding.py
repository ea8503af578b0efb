"""Decoding files with PyAV (FFmpeg bundled): `AudioStream` gives 16 kHz mono blocks.

Block by block, resampled with soxr as it goes, so hours of audio stay in bounded memory. Headers
are checked before anything is allocated from them, and every failure of the decoder, whatever
PyAV raises, becomes an `AudioError` with a specific message and a stable `code`.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..constants import DEFAULT_MAX_DURATION_S, SAMPLE_RATE
from ..errors import AudioError
from .samples import (
    SUPPORTED,
    AudioInfo,
    AudioWarning,
    audio_warnings,
    check_finite,
    check_length,
    check_rate,
    downmix,
    fmt_duration,
    stream_resampler,
    to_float,
    too_long_message,
)

logger = logging.getLogger(__name__)


def _fmt_size(n_bytes: float) -> str:
    """A byte count for a message: 44 bytes, 12 KB, 3.4 MB, 2.1 GB (decimal units)."""
    if n_bytes < 1e3:
        return f"{n_bytes:.0f} bytes"
    for unit, scale in (("KB", 1e3), ("MB", 1e6)):
        if n_bytes < 1e3 * scale:
            return f"{n_bytes / scale:.{0 if n_bytes >= 10 * scale else 1}f} {unit}"
    return f"{n_bytes / 1e9:.1f} GB"


class AudioStream:
    """Decode a file block by block: iterate to get (n,) float32 blocks at 16 kHz, mono, or with
    `keep_channels` (n, C) blocks, each channel resampled on its own (C: `channels`).

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
        self.keep_channels = False

    def __enter__(self) -> AudioStream:
        import av

        if self._size == 0:
            raise AudioError(f"{self.name}: the file is empty (0 bytes).", "empty")
        self._check_wav_header()
        try:
            self._container = av.open(self._file, mode="r", metadata_errors="ignore")
        except Exception as exc:  # av.FFmpegError, UnicodeDecodeError, ValueError, ...
            raise AudioError(
                f"{self.name}: not an audio or video file that can be decoded ({_ffmpeg_reason(exc)}). Supported: {SUPPORTED}.",
                "not_audio",
            ) from None
        audio_streams = self._container.streams.audio
        if not audio_streams:
            self.close()
            raise AudioError(f"{self.name}: the file has no audio track.", "no_audio_track")
        self._stream = audio_streams[0]
        try:
            self._describe()
        except AudioError:
            self.close()
            raise
        except Exception as exc:  # PyAV on a damaged header: None contexts, odd attribute errors
            self.close()
            raise self._corrupt(exc) from None
        return self

    def _describe(self) -> None:
        ctx = self._stream.codec_context
        if ctx is None or not ctx.sample_rate:
            raise AudioError(
                f"{self.name}: the audio track has no usable codec (damaged header?). Supported: {SUPPORTED}.", "corrupt"
            )
        self.rate = check_rate(ctx.sample_rate)
        self.channels = ctx.channels if hasattr(ctx, "channels") else ctx.layout.nb_channels
        if not self.channels:
            raise AudioError(f"{self.name}: the audio track declares 0 channels; the file is corrupt.", "corrupt")
        self.declared_s = self._declared_duration()
        self._check_declared()

    def _corrupt(self, exc: Exception) -> AudioError:
        logger.info("%s: decoder failure %s: %s", self.name, type(exc).__name__, exc)
        return AudioError(f"{self.name}: the audio stream is corrupt or truncated ({_ffmpeg_reason(exc)}).", "corrupt")

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
                    check_rate(int.from_bytes(head[pos + 12 : pos + 16], "little"))
                except AudioError as exc:
                    raise AudioError(f"{self.name}: the WAV header says: {exc.message}", exc.code) from None
                byte_rate = int.from_bytes(head[pos + 16 : pos + 20], "little")
            elif chunk == b"data":
                available = (self._size or 0) - pos - 8
                # 0 and 0xFFFFFFFF mean "length unknown" (streamed recordings): accepted
                if self._size and size not in (0, 0xFFFFFFFF) and size > available + 4096:
                    claim = f" ({fmt_duration(size / byte_rate)})" if byte_rate else ""
                    raise AudioError(
                        f"{self.name}: the WAV header declares {_fmt_size(size)} of audio{claim} but the file holds "
                        f"only {_fmt_size(max(available, 0))}; it is truncated or corrupt.",
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
                    f"{self.name}: the header declares {fmt_duration(declared)} of audio ({_fmt_size(needed)}) "
                    f"but the file holds only {_fmt_size(self._size)}; it is truncated or corrupt.",
                    "truncated",
                )
        if declared > self.max_duration_s + 1:
            raise AudioError(f"{self.name}: " + too_long_message(declared, self.max_duration_s), "too_long")

    def __iter__(self) -> Iterator[np.ndarray]:
        import av

        width = self.channels if self.keep_channels else 1
        resampler = stream_resampler(self.rate, width)
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
                tail = resampler.resample_chunk(np.zeros((0, width) if self.keep_channels else 0, np.float32), last=True)
                if tail.size:
                    yield self._account(tail, limit)
        except AudioError:
            raise
        except (av.FFmpegError, Exception) as exc:  # any decoder failure is the file's fault, never a crash
            raise self._corrupt(exc) from None
        self._finish()

    def _mono(self, frame) -> np.ndarray:
        arr = frame.to_ndarray()
        channels = frame.layout.nb_channels
        if not frame.format.is_planar:
            arr = arr.reshape(-1, channels).T  # packed (1, n*C) -> (C, n)
        x = to_float(arr)
        check_finite(x, f"{self.name}: ")
        if self.keep_channels:
            if channels != self.channels:
                raise AudioError(
                    f"{self.name}: the number of channels changes inside the stream; the file is corrupt.", "corrupt"
                )
            return np.ascontiguousarray(x.T)  # (n, C)
        return x[0] if channels == 1 else downmix(x)

    def _account(self, block: np.ndarray, limit: float) -> np.ndarray:
        self.num_samples += len(block)
        self.peak = max(self.peak, float(np.abs(block).max()))
        if self.num_samples > limit:
            raise AudioError(f"{self.name}: " + too_long_message(self.num_samples / SAMPLE_RATE, self.max_duration_s), "too_long")
        return np.ascontiguousarray(block, dtype=np.float32)

    def _finish(self) -> None:
        if self.num_samples == 0:
            raise AudioError(f"{self.name}: the file contains no audio samples.", "empty")
        decoded = self.num_samples / SAMPLE_RATE
        if self.declared_s and decoded < 0.5 * self.declared_s and self.declared_s - decoded > 2:
            raise AudioError(
                f"{self.name}: the file declares {fmt_duration(self.declared_s)} of audio but only "
                f"{fmt_duration(decoded)} could be decoded; it is truncated or corrupt.",
                "truncated",
            )
        try:
            check_length(self.num_samples, self.max_duration_s)
        except AudioError as exc:
            raise AudioError(f"{self.name}: {exc.message}", exc.code) from None
        ctx = self._stream.codec_context
        self.info = AudioInfo(
            self.name, self._container.format.name, ctx.name, self.rate, self.channels, decoded, self.rate != SAMPLE_RATE
        )
        self.warnings = audio_warnings(self.num_samples, self.peak)


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
