"""Turns someone already has: who spoke when (and what), read from RTTM, WebVTT, SRT or whisper JSON.

`read_turns(path_or_text)` gives `Turn(start, end, speaker, text)`, times in seconds, sorted by
start (then end). Overlapping turns are kept: people talk over each other. The format (rttm, vtt,
srt or json: RTTM, WebVTT, SRT, whisper JSON; each described in turn_formats.py, which reads them
line by line) is `fmt`, else the file's suffix, else told by its content.

Text is UTF-8, with or without a byte order mark (UTF-16 with a BOM is read too); CRLF, CR and LF
line ends all work. Anything unusable raises `TurnsError` (code `bad_turns`) naming the file, the
line (1-based; for JSON `segments[i]`, 0-based as in the file), what is wrong and what was
expected, e.g. `turns.srt line 7: "00:00:05,000 --> 00:00:04,000": the end is before the start`.
Refused: a turn whose end is not after its start, a negative time and, given `duration_s`, a turn
that starts at or after the end of the recording or ends more than END_TOLERANCE_S after it;
ends less than that past the end are clipped to the duration. A file without any turn is refused too.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from .turn_formats import EXPECTED, RawTurn, TurnsError, rttm, snip, srt, vtt, whisper_json
from .turn_formats import fail as line_error

FORMATS = ("rttm", "vtt", "srt", "json")
SUFFIXES = {".rttm": "rttm", ".vtt": "vtt", ".srt": "srt", ".json": "json"}
END_TOLERANCE_S = 0.5  # s: ends up to this far past the recording's end are clipped, beyond it refused
MAX_BYTES = 20 * 1024**2  # a turns file larger than this is refused (2 h of subtitles are well under 1 MB)


@dataclass(frozen=True)
class Turn:
    """One turn: who (None when the file does not say) spoke from `start` to `end` (s), saying `text`."""

    start: float  # s
    end: float  # s
    speaker: str | None = None
    text: str | None = None

    @property
    def duration_s(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class TurnsFile:
    """A turns file as a request carries it (its bytes and name), read once to check it when the
    request is parsed and again against the recording's duration when it is analysed."""

    data: bytes
    name: str

    @classmethod
    def of(cls, value, name: str | None = None) -> TurnsFile:
        """From a path, bytes (an upload: give its `name`) or a TurnsFile; checked now (TurnsError)."""
        if isinstance(value, TurnsFile):
            return value
        if isinstance(value, (bytes, bytearray)):
            turns = cls(bytes(value), name or "turns")
        elif not isinstance(value, (str, os.PathLike)):
            raise TurnsError(f"turns: a {type(value).__name__}; give the turns file (a path, or its bytes with its name).")
        else:
            path = Path(value)
            if not path.is_file():
                raise TurnsError(f"{path.name}: no such turns file; give an RTTM, WebVTT, SRT or whisper JSON file.")
            turns = cls(path.read_bytes(), path.name)
        read_turns(turns.data, name=turns.name, every_recording=True)
        return turns

    def read(self, duration_s: float | None = None, recording: str | None = None) -> list[Turn]:
        """The turns of the recording named `recording` (the audio's name without its extension:
        an RTTM of several recordings gives its lines), checked against `duration_s`."""
        return read_turns(self.data, name=self.name, duration_s=duration_s, recording=recording)

    @property
    def format(self) -> str:
        """rttm, vtt, srt or json (from the name's suffix, else the content)."""
        data, shown, suffix = _source(self.data, self.name)
        return _format(None, suffix, _decode(data, shown), shown)

    @classmethod
    def beside(cls, audio: Path, shown: str | None = None) -> TurnsFile:
        """The turns file beside an audio file: its name with .rttm, .vtt, .srt or .json (TurnsError
        naming the names looked for when there is none)."""
        audio = Path(audio)
        for suffix in SUFFIXES:
            candidate = audio.with_suffix(suffix)
            if candidate.is_file():
                return cls.of(candidate)
        looked = ", ".join(audio.with_suffix(x).name for x in SUFFIXES)
        raise TurnsError(f"{shown or audio.name}: no turns file beside it (looked for {looked}).")


def read_turns(
    path_or_text: str | os.PathLike | bytes,
    *,
    fmt: str | None = None,
    duration_s: float | None = None,
    name: str | None = None,
    recording: str | None = None,
    every_recording: bool = False,
) -> list[Turn]:
    """The turns of a file (a path) or of its content (text or bytes), sorted by start.

    `fmt`: rttm, vtt, srt or json; None: from the suffix, else from the content. `duration_s`: the
    recording's duration, to refuse turns outside it and clip ends just past it. `name`: the file
    name shown in messages when content is given (default "turns"; for a path, the file's name).
    `recording`: the audio's name without its extension, which selects an RTTM's lines when it holds
    several recordings; `every_recording`: all of them (a check of the file before the audio is known).
    A str is read as a path when it is one line naming an existing file or ending in .rttm, .vtt,
    .srt or .json; otherwise as the content. Raises TurnsError (code bad_turns)."""
    if duration_s is not None and not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s must be a positive number of seconds, not {duration_s!r}")
    data, shown, suffix = _source(path_or_text, name)
    text = _decode(data, shown)
    fmt = _format(fmt, suffix, text, shown)
    if not text.strip():
        raise TurnsError(f"{shown}: the file is empty; expected {EXPECTED[fmt]}")
    if fmt == "json":
        raw = whisper_json(text, shown)
    else:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        raw = rttm(lines, shown, recording, every_recording) if fmt == "rttm" else {"vtt": vtt, "srt": srt}[fmt](lines, shown)
    turns = [_checked(r, shown, duration_s) for r in raw]
    if not turns:
        raise TurnsError(f"{shown}: no turns found; expected {EXPECTED[fmt]}")
    return sorted(turns, key=lambda t: (t.start, t.end))


# ---------------------------------------------------------------------------------------------
# reading and telling the format


def _source(path_or_text, name: str | None) -> tuple[bytes, str, str]:
    """(content, name shown in messages, lower-case suffix or "")."""
    if isinstance(path_or_text, (bytes, bytearray)):
        shown = name or "turns"
        return bytes(path_or_text), shown, Path(shown).suffix.lower()
    if isinstance(path_or_text, str) and not _looks_like_path(path_or_text):
        shown = name or "turns"
        return path_or_text.encode("utf-8"), shown, Path(shown).suffix.lower()
    path = Path(path_or_text)
    shown = name or path.name
    try:
        if not path.is_file():
            raise TurnsError(f"{shown}: no such file; give an .rttm, .vtt, .srt or whisper .json file of turns")
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise TurnsError(f"{shown}: the file is {size / 1024**2:.0f} MB; a turns file may be up to {MAX_BYTES // 1024**2} MB")
        return path.read_bytes(), shown, path.suffix.lower()
    except OSError as e:
        raise TurnsError(f"{shown}: cannot be read ({e.strerror or e})") from e


def _looks_like_path(text: str) -> bool:
    if not text.strip() or "\n" in text or "\r" in text or len(text) > 4096:
        return False
    if Path(text.strip()).suffix.lower() in SUFFIXES:
        return True
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def _decode(data: bytes, shown: str) -> str:
    if len(data) > MAX_BYTES:
        raise TurnsError(f"{shown}: the text is {len(data) / 1024**2:.0f} MB; turns may be up to {MAX_BYTES // 1024**2} MB")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16").removeprefix("\ufeff")
        except UnicodeDecodeError as e:
            raise TurnsError(f"{shown}: the text starts like UTF-16 but is not ({e.reason}); save it as UTF-8") from e
    try:
        return data.decode("utf-8-sig").removeprefix("\ufeff")  # a BOM in text that was given as str
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise TurnsError(f"{shown} line {line}: the text is not UTF-8 (byte {data[e.start]:#04x}); save the file as UTF-8") from e


def _format(fmt: str | None, suffix: str, text: str, shown: str) -> str:
    if fmt is not None:
        fmt = fmt.strip().lower().lstrip(".")
        if fmt not in FORMATS:
            raise TurnsError(f"{shown}: unknown turns format {fmt!r}; expected one of {', '.join(FORMATS)}")
        return fmt
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not first:
        raise TurnsError(f"{shown}: the file is empty; expected turns as RTTM, WebVTT, SRT or whisper JSON")
    if first.startswith("WEBVTT"):
        return "vtt"
    if first[:1] in ("{", "["):
        return "json"
    if first.startswith(";;") or first.split()[0] in ("SPEAKER", "SPKR-INFO"):
        return "rttm"
    if first.isdigit() or "-->" in first:
        return "srt"
    raise TurnsError(
        f'{shown} line 1: "{snip(first)}": cannot tell the format; expected RTTM (SPEAKER lines), WebVTT '
        "(starting with WEBVTT), SRT (numbered subtitles) or whisper JSON, or name the format (rttm, vtt, srt, json)"
    )


# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# range checks


def _checked(r: RawTurn, shown: str, duration_s: float | None) -> Turn:
    def fail(problem: str) -> TurnsError:
        if r.where.startswith("line "):
            return line_error(shown, int(r.where[5:]), r.shown, problem)
        return TurnsError(f"{shown} {r.where}: start {r.start:g} s, end {r.end:g} s: {problem}")

    if r.start < 0:
        raise fail("the start is negative; expected times from 0 s")
    if r.end < r.start:
        raise fail("the end is before the start")
    if r.end == r.start:
        raise fail("the turn has no length (the end equals the start); expected an end after the start")
    end = r.end
    if duration_s is not None:
        if r.start >= duration_s:
            raise fail(
                f"the turn starts at {r.start:.3f} s, after the recording ends ({duration_s:.3f} s); "
                "expected the turns of this recording"
            )
        if end > duration_s + END_TOLERANCE_S:
            raise fail(
                f"the turn ends at {end:.3f} s, more than {END_TOLERANCE_S:g} s after the recording ends "
                f"({duration_s:.3f} s); expected the turns of this recording"
            )
        end = min(end, duration_s)
    return Turn(r.start, end, r.speaker, r.text)
