"""Which files are audio, and zip members read safely: one answer for batches and labelled sets.

`is_audio_name` decides by the suffix (the decoder gives the final word); `member_chunks` streams
one zip member and refuses what a zip can lie about: an encrypted member, one over a size limit,
and one that holds more than its header declares (a zip bomb stops at the declared size).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

AUDIO_EXTS = {
    ".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".oga", ".opus", ".webm",
    ".aiff", ".aif", ".mp4", ".mkv", ".mov", ".wma", ".amr",
}  # fmt: skip
ARCHIVE_EXTS = {".zip"}
CHUNK = 1 << 20  # bytes read at a time


class UnsafeMember(ValueError):
    """A zip member that is not read (the message says why, as a clause: "it is encrypted")."""


def is_audio_name(name: str) -> bool:
    """Whether a file or member name has an audio or video suffix we decode."""
    return PurePosixPath(name.replace("\\", "/")).suffix.lower() in AUDIO_EXTS


def is_archive_name(name: str) -> bool:
    return PurePosixPath(name.replace("\\", "/")).suffix.lower() in ARCHIVE_EXTS


def is_encrypted(info: zipfile.ZipInfo) -> bool:
    return bool(info.flag_bits & 0x1)


def member_chunks(archive: Path, member: zipfile.ZipInfo | str, limit: int | None = None) -> Iterator[bytes]:
    """The bytes of one member of `archive`, CHUNK at a time. Raises UnsafeMember for an encrypted
    member, one whose header declares more than `limit` bytes, and one holding more than its header
    declares; zipfile's own errors (bad CRC, unsupported compression) pass through."""
    with zipfile.ZipFile(archive) as zf:
        info = member if isinstance(member, zipfile.ZipInfo) else zf.getinfo(member)
        if is_encrypted(info):
            raise UnsafeMember("it is encrypted")
        if limit is not None and info.file_size > limit:
            raise UnsafeMember(f"it is larger than {limit // 1024**2} MB")
        read = 0
        with zf.open(info) as src:
            while chunk := src.read(CHUNK):
                read += len(chunk)
                if read > info.file_size:
                    raise UnsafeMember("it holds more than its zip header declares")
                yield chunk
