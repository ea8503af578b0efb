"""How an MCP tool's `audio` string becomes audio (mcp_server.py's tools read it through `AudioRefs`):
a base64 data URL, a file uploaded to this server, a download link of this server's results, or,
when the operator allows it, an http(s) URL; and the sizes the guard and the tools allow for it.
"""

import base64
import binascii
import os
from pathlib import Path
from urllib.parse import urlsplit

from ...errors import EmotionAppError
from ...outputs import output_file

MAX_INLINE_MB = 16.0  # audio in one data URL: 21 MB of JSON, parsed on the loop in about 30 ms
FETCH_TIMEOUT_S = 30.0
MAX_REDIRECTS = 3
AUDIO_HELP = (
    "the audio: a base64 data URL (data:audio/wav;base64,...; WAV, FLAC, MP3, OGG, M4A, WEBM...), the path that "
    "POST /gradio_api/upload on this server returned, or a download link of this server's results"
)


class AudioRefs:
    """Turns a tool's `audio` string into what service.analyze reads (bytes or a path), or an
    EmotionAppError saying what was wrong and what to send instead."""

    def __init__(self, outputs_dir: Path, max_upload_mb: float, allow_urls: bool, upload_dir: Path | None = None):
        self.outputs_dir, self.allow_urls = Path(outputs_dir), allow_urls
        self.max_upload_mb, self.max_inline_mb = max_upload_mb, inline_mb(max_upload_mb)
        self.max_bytes = int(max_upload_mb * 1024 * 1024)
        self.upload_dir = Path(upload_dir).resolve() if upload_dir is not None else _gradio_upload_dir()

    def too_large(self, limit_mb: float | None = None) -> EmotionAppError:
        message = f"The upload is larger than the limit of {limit_mb or self.max_upload_mb:g} MB."
        if limit_mb is not None and limit_mb < self.max_upload_mb:
            message += (
                f" A data URL carries at most {limit_mb:g} MB of audio: send a larger file (up to"
                f" {self.max_upload_mb:g} MB) with POST /gradio_api/upload and pass the path it returns."
            )
        return EmotionAppError(message, "too_large")

    def open(self, ref: str) -> tuple[bytes | Path, str]:
        """(bytes or a path, the name shown in results). Blocking: call it in a worker thread."""
        ref = (ref or "").strip()
        if ref.startswith("data:"):
            return self._data_url(ref), "audio"
        try:
            parts = urlsplit(ref)
        except ValueError as exc:  # "http://[::1": an IPv6 host without its bracket
            raise EmotionAppError(f"audio: not a usable URL ({exc}); send {AUDIO_HELP}", "no_audio") from None
        if parts.path.startswith("/api/outputs/") and (not parts.scheme or parts.scheme in ("http", "https")):
            return self._download_link(parts.path)
        if parts.scheme in ("http", "https"):
            if not self.allow_urls:
                raise EmotionAppError(
                    "This server does not fetch URLs (its operator can allow it with --mcp-allow-urls); "
                    "send the audio as a base64 data URL: data:audio/wav;base64,...",
                    "url_not_allowed",
                )
            return self._fetch(ref), Path(parts.path).name or "audio"
        if ref and not parts.scheme:
            return self._uploaded(ref)
        raise EmotionAppError(f"audio: unsupported reference; send {AUDIO_HELP}", "no_audio")

    def _data_url(self, ref: str) -> bytes:
        head, sep, payload = ref.partition(",")
        if not sep or not head.endswith(";base64"):
            raise EmotionAppError("audio: a data URL must be base64: data:audio/wav;base64,<the file's bytes>", "no_audio")
        limit = int(self.max_inline_mb * 1024 * 1024)
        if len(payload) > (limit + 2) // 3 * 4 + 4:  # before decoding: base64 is 4/3 of the bytes
            raise self.too_large(self.max_inline_mb)
        try:
            data = base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError) as exc:
            raise EmotionAppError(f"audio: the data URL's base64 cannot be decoded ({exc})", "no_audio") from None
        if len(data) > limit:
            raise self.too_large(self.max_inline_mb)
        if not data:
            raise EmotionAppError("audio: the data URL holds no bytes", "no_audio")
        return data

    def _download_link(self, path: str) -> tuple[Path, str]:
        parts = path.split("/")  # "", "api", "outputs", folder, key, name
        found = output_file(self.outputs_dir, *parts[3:6]) if len(parts) == 6 else None
        if found is None:  # a wrong key reads like a missing file, as for a download
            raise EmotionAppError("audio: no such result file on this server", "not_found")
        return found, found.name

    def _uploaded(self, ref: str) -> tuple[Path, str]:
        try:
            resolved = Path(os.path.abspath(ref)).resolve(strict=True)
        except (OSError, RuntimeError, ValueError):  # ValueError: a NUL character, which no path holds
            resolved = None
        inside = resolved is not None and self.upload_dir in resolved.parents and resolved.is_file()
        if not inside:
            raise EmotionAppError(
                f"audio: {Path(ref).name!r} is not a file uploaded to this server; send {AUDIO_HELP}", "no_audio"
            )
        return resolved, resolved.name

    def _fetch(self, url: str) -> bytes:
        import httpx

        data = bytearray()
        try:
            with httpx.Client(timeout=FETCH_TIMEOUT_S, follow_redirects=True, max_redirects=MAX_REDIRECTS) as client:
                with client.stream("GET", url) as response:
                    response.raise_for_status()
                    for chunk in response.iter_bytes():
                        data += chunk
                        if len(data) > self.max_bytes:
                            raise self.too_large()
        except httpx.HTTPError as exc:
            raise EmotionAppError(f"audio: fetching {url} failed ({exc.__class__.__name__}: {exc})", "fetch_failed") from None
        return bytes(data)


def _gradio_upload_dir() -> Path:
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def inline_mb(max_upload_mb: float) -> float:
    """The most audio one data URL may carry."""
    return min(MAX_INLINE_MB, max_upload_mb)


def envelope_bytes(max_upload_mb: float) -> int:
    """The largest MCP request the guard lets through: two data URLs of the inline limit (compare_clips;
    base64: 4/3 of the bytes) plus the JSON around them."""
    return int(2 * inline_mb(max_upload_mb) * 1024 * 1024 * 4 / 3) + 64 * 1024
