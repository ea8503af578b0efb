"""Turns someone already has: who spoke when (and what), read from RTTM, WebVTT, SRT or whisper JSON.

`read_turns(path_or_text)` gives `Turn(start, end, speaker, text)`, times in seconds, sorted by
start (then end). Overlapping turns are kept: people talk over each other. The formats, chosen by
`fmt`, else by the file's suffix, else by its content:

- rttm: what pyannote writes, one `SPEAKER <file> <chan> <onset> <duration> <NA> <NA> <speaker> <NA> <NA>`
  line per turn (onset and duration in seconds). Other line types (SPKR-INFO, ...) and `;;`
  comments are skipped. A file holding several recordings (a corpus's reference) gives the lines of
  `recording` (the audio's name without its extension, as RTTM's file id names it), an error listing
  the ids present when none matches; a single recording's lines are taken whatever their id.
- vtt: WebVTT. The speaker is the first `<v Name>` voice tag of the cue (`<v.loud Name>` too); a cue
  without one takes a leading `Name:` as the speaker, as in SRT. The text is the cue's lines without
  tags, joined by spaces. Cue ids, NOTE/STYLE/REGION blocks and cue settings are skipped; times are
  `mm:ss.ttt` or `hh:mm:ss.ttt`.
- srt: numbered subtitles, `hh:mm:ss,ttt --> hh:mm:ss,ttt`. The speaker is a leading `Name:` of the
  first text line (also `Name：`), taken only when it looks like a name: it starts with a letter,
  has at most MAX_NAME_CHARS (32) characters and MAX_NAME_WORDS (4) words of letters, digits, spaces
  and `_ - ' .`, no word of a several-word name starts in lower case ("The reason is: ..." is a
  sentence, "Dr. Jane Smith:" a name), and an ASCII colon is followed by a space or the end of the
  line (so "at 10:30" names nobody); otherwise the cue has no speaker and the whole line is text.
  The text is the lines without SRT's formatting tags (<i>, <b>, <u>, <s>, <font ...>, {\\an8});
  any other `<...>` is text.
- json: whisper / whisperX output, an object whose `segments` each have `start`, `end` (s), `text`
  and, from whisperX's diarization, `speaker`; a bare list of such segments works too.
- Times in WebVTT and SRT: a `.` or a `,` before the milliseconds is accepted in both formats, and hours may be left out.

Text is UTF-8, with or without a byte order mark (UTF-16 with a BOM is read too); CRLF, CR and LF
line ends all work. Anything unusable raises `TurnsError` (code `bad_turns`) naming the file, the
line (1-based; for JSON `segments[i]`, 0-based as in the file), what is wrong and what was
expected, e.g. `turns.srt line 7: "00:00:05,000 --> 00:00:04,000": the end is before the start`.
Refused: a turn whose end is not after its start, a negative time and, given `duration_s`, a turn
that starts at or after the end of the recording or ends more than END_TOLERANCE_S after it;
ends less than that past the end are clipped to the duration. A file without any turn is refused too.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import EmotionAppError
from ..fields import read_json

FORMATS = ("rttm", "vtt", "srt", "json")
SUFFIXES = {".rttm": "rttm", ".vtt": "vtt", ".srt": "srt", ".json": "json"}
END_TOLERANCE_S = 0.5  # s: ends up to this far past the recording's end are clipped, beyond it refused
MAX_BYTES = 20 * 1024**2  # a turns file larger than this is refused (2 h of subtitles are well under 1 MB)
MAX_NAME_CHARS = 32  # a `Name:` prefix longer than this is text, not a speaker
MAX_NAME_WORDS = 4
SHOWN_CHARS = 60  # characters of a bad line quoted in a message
MAX_IDS_SHOWN = 10  # an RTTM's file ids listed in a message

EXPECTED = {
    "rttm": "SPEAKER <file> <channel> <onset s> <duration s> <NA> <NA> <speaker> <NA> <NA>",
    "vtt": "a cue: an optional id line, then 'start --> end' with times like 00:01.000 or 00:00:01.000, then the text",
    "srt": "a subtitle: its number, then 'hh:mm:ss,ttt --> hh:mm:ss,ttt', then the text",
    "json": "whisper / whisperX output: an object with a 'segments' list, or a list of segments with 'start' and 'end' in s",
}

_TIME = r"(?:(\d{1,5}):)?(\d{1,2}):(\d{2})(?:[.,](\d{1,3}))?"  # hours: up to 99999 (Python's int() stops at 4300 digits)
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(?:\s.*)?$")
_RTTM_TYPE = re.compile(r"^[A-Z][A-Z_/-]*$")
_VTT_HEADER = re.compile(r"^WEBVTT(?:[ \t].*)?$")
_VTT_SKIPPED = re.compile(r"^(?:NOTE|STYLE|REGION)(?:[ \t].*)?$")
_VOICE = re.compile(r"<v(?:\.[^\s>]*)*[ \t]+([^>]*)>")
_VTT_TAG = re.compile(r"<[^>]*>")  # WebVTT escapes a text's < as &lt;: every < starts a tag
_SRT_TAG = re.compile(r"</?(?:i|b|u|s|font)(?:\s[^>]*)?>|\{\\[^}]*\}", re.IGNORECASE)  # <i>, <font color=..>, {\an8}
_NAME = re.compile(r"^([^\W\d_][\w '.\-]*?)[ \t]*(?::(?:[ \t]+|$)|：[ \t]*)(.*)$")


class TurnsError(EmotionAppError):
    """A turns file cannot be used as given (the message names the file, the line and the fix)."""

    code = "bad_turns"


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


@dataclass(frozen=True)
class _Raw:
    where: str  # "line 7" or "segments[2]"
    shown: str | None  # the line, quoted in messages
    start: float
    end: float
    speaker: str | None
    text: str | None


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
        raw = _json(text, shown)
    else:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        raw = _rttm(lines, shown, recording, every_recording) if fmt == "rttm" else {"vtt": _vtt, "srt": _srt}[fmt](lines, shown)
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
        f'{shown} line 1: "{_snip(first)}": cannot tell the format; expected RTTM (SPEAKER lines), WebVTT '
        "(starting with WEBVTT), SRT (numbered subtitles) or whisper JSON, or name the format (rttm, vtt, srt, json)"
    )


# ---------------------------------------------------------------------------------------------
# the formats


def _fail(shown: str, n: int, line: str | None, problem: str) -> TurnsError:
    quoted = f' "{_snip(line)}"' if line is not None and line.strip() else ""
    return TurnsError(f"{shown} line {n}:{quoted}: {problem}" if quoted else f"{shown} line {n}: {problem}")


def _snip(line: str) -> str:
    line = line.strip()
    return line if len(line) <= SHOWN_CHARS else line[: SHOWN_CHARS - 1] + "…"


def _number(token: str) -> float | None:
    try:
        x = float(token)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _rttm(lines: list[str], shown: str, recording: str | None, every_recording: bool) -> list[_Raw]:
    by_id: dict[str, list[_Raw]] = {}  # file id -> its turns, in the file's order
    for n, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].startswith(";;"):
            continue
        if fields[0] != "SPEAKER":
            if _RTTM_TYPE.match(fields[0]):
                continue  # SPKR-INFO, LEXEME, NON-SPEECH, ...: not turns
            raise _fail(shown, n, line, f"not an RTTM line; expected {EXPECTED['rttm']}")
        if len(fields) < 8:
            raise _fail(
                shown, n, line, f"a SPEAKER line has at least 8 fields, this one {len(fields)}; expected {EXPECTED['rttm']}"
            )
        onset, duration = _number(fields[3]), _number(fields[4])
        if onset is None or duration is None:
            raise _fail(shown, n, line, f"onset and duration must be numbers of seconds, not {fields[3]!r} and {fields[4]!r}")
        if duration <= 0:
            raise _fail(shown, n, line, f"the duration is {fields[4]}; expected a duration above 0 s")
        if not math.isfinite(onset + duration):
            raise _fail(shown, n, line, "the turn ends past any recording (onset + duration overflows)")
        speaker = None if fields[7] in ("<NA>", "NA") else fields[7]
        by_id.setdefault(fields[1], []).append(_Raw(f"line {n}", line, onset, onset + duration, speaker, None))
    if len(by_id) <= 1 or every_recording:
        return [r for raws in by_id.values() for r in raws]
    if recording in by_id:
        return by_id[recording]
    ids = list(by_id)
    listed = ", ".join(repr(i) for i in ids[:MAX_IDS_SHOWN]) + (
        f" and {len(ids) - MAX_IDS_SHOWN} more" if len(ids) > MAX_IDS_SHOWN else ""
    )
    if recording is None:
        raise TurnsError(
            f"{shown}: the turns of {len(ids)} recordings ({listed}); expected one recording's, or an audio file named"
            " after one of them (its name without the extension is RTTM's file id)"
        )
    raise TurnsError(
        f"{shown}: no turns of the recording {recording!r} (RTTM's file id: the audio's name without its extension);"
        f" the file holds {listed}"
    )


def _blocks(lines: list[str]) -> list[list[tuple[int, str]]]:
    """Runs of non-blank lines, each line with its 1-based number."""
    blocks, block = [], []
    for n, line in enumerate(lines, 1):
        if line.strip():
            block.append((n, line))
        elif block:
            blocks.append(block)
            block = []
    if block:
        blocks.append(block)
    return blocks


def _seconds(match: re.Match, first: int) -> float | None:
    h, m, s, frac = match.group(first, first + 1, first + 2, first + 3)
    if int(s) >= 60 or (h is not None and int(m) >= 60):
        return None
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + (int(frac) / 10 ** len(frac) if frac else 0.0)


def _timing(n: int, line: str, shown: str, fmt: str) -> tuple[float, float]:
    m = _TIMING.match(line)
    example = "00:00:01,000 --> 00:00:04,000" if fmt == "srt" else "00:00:01.000 --> 00:00:04.000"
    if not m:
        raise _fail(shown, n, line, f"not a timing line; expected 'start --> end' like {example}")
    start, end = _seconds(m, 1), _seconds(m, 5)
    if start is None or end is None:
        raise _fail(shown, n, line, f"minutes and seconds must be below 60; expected 'start --> end' like {example}")
    return start, end


def _cue_timing(block: list[tuple[int, str]], shown: str, fmt: str) -> int:
    """Index of the block's timing line: the first line, or the second after a cue id / number."""
    if "-->" in block[0][1]:
        return 0
    if len(block) > 1 and "-->" in block[1][1]:
        return 1
    n, line = block[0]
    raise _fail(shown, n, line, f"no timing line here; expected {EXPECTED[fmt]}")


def _plain(lines: list[str], vtt: bool) -> str | None:
    """The lines without markup, joined by single spaces: WebVTT tags and entities, SRT's few formatting tags."""
    text = " ".join((_VTT_TAG if vtt else _SRT_TAG).sub("", line) for line in lines)
    text = " ".join((html.unescape(text) if vtt else text).split())
    return text or None


def _split_name(text: str | None) -> tuple[str | None, str | None]:
    """(speaker, rest) of a text with a name-like `Name:` prefix, else (None, text)."""
    if not text:
        return None, text
    m = _NAME.match(text)
    if not m:
        return None, text
    name = m.group(1).strip()
    words = name.split()
    if len(name) > MAX_NAME_CHARS or len(words) > MAX_NAME_WORDS or (len(words) > 1 and any(w[0].islower() for w in words)):
        return None, text  # "The reason is simple: ..." is a sentence, "Dr. Jane Smith: ..." a name
    return name, m.group(2).strip() or None


def _vtt(lines: list[str], shown: str) -> list[_Raw]:
    if not _VTT_HEADER.match(lines[0].strip()):
        raise _fail(shown, 1, lines[0], 'expected a WebVTT file to start with the line "WEBVTT"')
    blocks = _blocks(lines)
    header = blocks[0]
    for n, line in header[1:]:
        if "-->" in line:
            raise _fail(shown, n, line, "a cue right after the header; expected a blank line after the WEBVTT header lines")
    out = []
    for block in blocks[1:]:
        if _VTT_SKIPPED.match(block[0][1].strip()):
            continue
        i = _cue_timing(block, shown, "vtt")
        n, line = block[i]
        start, end = _timing(n, line, shown, "vtt")
        payload = [text for _, text in block[i + 1 :]]
        voice = next((m for m in map(_VOICE.search, payload) if m), None)
        text = _plain(payload, vtt=True)
        if voice is not None:
            speaker = " ".join(html.unescape(voice.group(1)).split()) or None
        else:
            speaker, text = _split_name(text)
        out.append(_Raw(f"line {n}", line, start, end, speaker, text))
    return out


def _srt(lines: list[str], shown: str) -> list[_Raw]:
    out = []
    for block in _blocks(lines):
        i = _cue_timing(block, shown, "srt")
        n, line = block[i]
        start, end = _timing(n, line, shown, "srt")
        payload = [text for _, text in block[i + 1 :]]
        first = _plain(payload[:1], vtt=False)
        speaker, first = _split_name(first)
        text = " ".join(filter(None, [first, _plain(payload[1:], vtt=False)])) or None
        out.append(_Raw(f"line {n}", line, start, end, speaker, text))
    return out


def _json(text: str, shown: str) -> list[_Raw]:
    try:
        doc = read_json(text)
    except json.JSONDecodeError as e:
        raise TurnsError(
            f"{shown} line {e.lineno}: not valid JSON ({e.msg}, column {e.colno}); expected {EXPECTED['json']}"
        ) from e
    except ValueError as e:
        raise TurnsError(f"{shown}: not valid JSON ({e}); expected {EXPECTED['json']}") from None
    segments = doc.get("segments") if isinstance(doc, dict) else doc
    if not isinstance(segments, list):
        raise TurnsError(f"{shown}: no 'segments' list; expected {EXPECTED['json']}")
    out = []
    for i, seg in enumerate(segments):
        where = f"segments[{i}]"
        if not isinstance(seg, dict):
            raise TurnsError(f"{shown} {where}: a {type(seg).__name__}; expected an object with 'start', 'end' (s) and 'text'")
        start, end = seg.get("start"), seg.get("end")
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in (start, end)):
            raise TurnsError(
                f"{shown} {where}: 'start' and 'end' must be numbers of seconds, not {start!r} and {end!r}; "
                "expected whisper / whisperX segments with start and end times"
            )
        speaker = seg.get("speaker")
        if isinstance(speaker, (int, float)) and not isinstance(speaker, bool):
            speaker = str(speaker)
        if speaker is not None and not isinstance(speaker, str):
            raise TurnsError(f"{shown} {where}: 'speaker' is {speaker!r}; expected a name (text) or no 'speaker'")
        words = seg.get("text")
        if words is not None and not isinstance(words, str):
            raise TurnsError(f"{shown} {where}: 'text' is {words!r}; expected text or no 'text'")
        out.append(
            _Raw(where, None, float(start), float(end), (speaker or "").strip() or None, " ".join((words or "").split()) or None)
        )
    return out


# ---------------------------------------------------------------------------------------------
# range checks


def _checked(r: _Raw, shown: str, duration_s: float | None) -> Turn:
    def fail(problem: str) -> TurnsError:
        if r.where.startswith("line "):
            return _fail(shown, int(r.where[5:]), r.shown, problem)
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
