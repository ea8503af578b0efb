"""One opener for every accepted input: `open_source` -> `Source`, read as 16 kHz mono blocks.

Accepted: a path, bytes, a binary file object, a numpy array with its rate, a Gradio-style
`(rate, array)` tuple, or an `Audio`. The engine (one pass), long recordings (two passes) and
batches all go through `Source.blocks()`; `load_audio` reads a source whole. In-memory inputs are
checked and resampled once; files are decoded block by block each time they are read (never held
whole), so a second pass decodes again instead of keeping hours of audio in memory.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..constants import DEFAULT_MAX_DURATION_S, SAMPLE_RATE
from ..errors import AudioError
from .samples import Audio, AudioInfo, AudioWarning, audio_from_array

BLOCK = SAMPLE_RATE  # in-memory audio is handed out in 1 s blocks


def is_array_input(source) -> bool:
    return isinstance(source, np.ndarray) or (
        isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], np.ndarray)
    )


@dataclass
class Source:
    """An opened input. `audio` is set for in-memory inputs; `data` is a path, bytes or a file
    object for files. `info` and `warnings` are complete after a full read; `declared_s` (the
    header's duration, when it has one) once `probe()` has run or `blocks()` has been entered."""

    name: str | None
    max_duration_s: float
    audio: Audio | None = None
    data: object = None
    info: AudioInfo | None = None
    warnings: list[AudioWarning] = field(default_factory=list)
    declared_s: float | None = None
    _start: int | None = None  # a seekable file object's starting position, for a second read
    _reads: int = 0
    _open: object = None  # the stream `probe` opened, handed to the first `blocks()`

    @property
    def in_memory(self) -> bool:
        return self.audio is not None

    def probe(self) -> Source:
        """Open the input and read its header (not its samples): `declared_s` is known after this,
        and the header's faults (not audio, truncated, too long by its header) are raised here.
        The stream stays open for the first `blocks()`, so a file is opened once for one pass."""
        if self.audio is not None:
            self.declared_s = self.audio.duration_s
            return self
        if self._open is None:
            from .decoding import AudioStream

            self._rewind()
            stream = AudioStream(self.data, max_duration_s=self.max_duration_s, name=self.name)
            self._open = stream.__enter__()
            self.declared_s = stream.declared_s
        return self

    def close(self) -> None:
        """Close a stream `probe` opened and no pass read (idempotent)."""
        if self._open is not None:
            self._open.close()
            self._open = None

    @property
    def channels(self) -> int:
        """The input's channel count (after `probe()` for files)."""
        if self.audio is not None:
            return self.audio.info.channels if self.audio.channels is not None else 1
        return self.probe()._open.channels if self._open is not None else self.info.channels

    @contextmanager
    def blocks(self, channels: bool = False) -> Iterator[Iterator[np.ndarray]]:
        """Yield an iterator of (n,) float32 blocks at 16 kHz, or with `channels` (n, C) blocks with
        every channel; may be entered again for another pass."""
        if self.audio is not None:
            self.info, self.warnings, self.declared_s = self.audio.info, self.audio.warnings, self.audio.duration_s
            x = self.audio.samples
            if channels:
                x = self.audio.channels if self.audio.channels is not None else x[:, None]
            yield (x[i : i + BLOCK] for i in range(0, len(x), BLOCK))
            return
        self.probe()
        stream, self._open = self._open, None
        stream.keep_channels = channels
        try:
            yield stream
            if stream.info is not None:  # a pass that stopped early (the last span cut) leaves the first pass's facts
                self.info, self.warnings = stream.info, stream.warnings
        finally:
            stream.close()

    def read(self) -> Audio:
        """The whole input in memory."""
        if self.audio is not None:
            return self.audio
        with self.blocks() as blocks:
            samples = np.concatenate(list(blocks))
        return Audio(samples, self.info, self.warnings)

    def _rewind(self) -> None:
        self._reads += 1
        if self._reads > 1 and self._start is not None:
            self.data.seek(self._start)


def open_source(
    source,
    sample_rate: int | None = None,
    *,
    max_duration_s: float = DEFAULT_MAX_DURATION_S,
    name: str | None = None,
) -> Source:
    """Open any accepted input (see the module docstring). Arrays are checked and resampled here;
    files are only opened when read. A file object that cannot seek is read into memory once, so
    it can be read twice."""
    if isinstance(source, Source):
        return source
    if isinstance(source, Audio):
        return Source(name or source.info.source, max_duration_s, audio=source)
    if isinstance(source, tuple) and is_array_input(source):
        rate, array = source
        return Source(
            name, max_duration_s, audio=audio_from_array(array, rate, max_duration_s=max_duration_s, name=name or "<array>")
        )
    if isinstance(source, np.ndarray):
        if sample_rate is None:
            raise AudioError("A numpy array needs its sample rate: load_audio(array, sample_rate=16000).", "bad_rate")
        return Source(
            name,
            max_duration_s,
            audio=audio_from_array(source, sample_rate, max_duration_s=max_duration_s, name=name or "<array>"),
        )
    if hasattr(source, "read") and not isinstance(source, (str, bytes)):
        try:
            if source.seekable():
                return Source(name, max_duration_s, data=source, _start=source.tell())
        except (OSError, AttributeError, ValueError):
            pass
        name = name or Path(str(getattr(source, "name", "<file>"))).name
        return Source(name, max_duration_s, data=io.BytesIO(source.read()), _start=0)
    return Source(name, max_duration_s, data=source)


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
    return open_source(source, sample_rate, max_duration_s=max_duration_s, name=name).read()
