"""The four turns formats, each line by line into `RawTurn`s (turns.py checks them and gives `Turn`s):

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

A line that cannot be used raises `TurnsError` (code `bad_turns`) naming the file, the line, what is
wrong and what was expected.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass

from ..errors import EmotionAppError
from ..fields import read_json

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
class RawTurn:
    """A turn as its file gives it, before the range checks."""

    where: str  # "line 7" or "segments[2]"
    shown: str | None  # the line, quoted in messages
    start: float
    end: float
    speaker: str | None
    text: str | None


def fail(shown: str, n: int, line: str | None, problem: str) -> TurnsError:
    quoted = f' "{snip(line)}"' if line is not None and line.strip() else ""
    return TurnsError(f"{shown} line {n}:{quoted}: {problem}" if quoted else f"{shown} line {n}: {problem}")


def snip(line: str) -> str:
    line = line.strip()
    return line if len(line) <= SHOWN_CHARS else line[: SHOWN_CHARS - 1] + "…"


def _number(token: str) -> float | None:
    try:
        x = float(token)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def rttm(lines: list[str], shown: str, recording: str | None, every_recording: bool) -> list[RawTurn]:
    by_id: dict[str, list[RawTurn]] = {}  # file id -> its turns, in the file's order
    for n, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].startswith(";;"):
            continue
        if fields[0] != "SPEAKER":
            if _RTTM_TYPE.match(fields[0]):
                continue  # SPKR-INFO, LEXEME, NON-SPEECH, ...: not turns
            raise fail(shown, n, line, f"not an RTTM line; expected {EXPECTED['rttm']}")
        if len(fields) < 8:
            raise fail(
                shown, n, line, f"a SPEAKER line has at least 8 fields, this one {len(fields)}; expected {EXPECTED['rttm']}"
            )
        onset, duration = _number(fields[3]), _number(fields[4])
        if onset is None or duration is None:
            raise fail(shown, n, line, f"onset and duration must be numbers of seconds, not {fields[3]!r} and {fields[4]!r}")
        if duration <= 0:
            raise fail(shown, n, line, f"the duration is {fields[4]}; expected a duration above 0 s")
        if not math.isfinite(onset + duration):
            raise fail(shown, n, line, "the turn ends past any recording (onset + duration overflows)")
        speaker = None if fields[7] in ("<NA>", "NA") else fields[7]
        by_id.setdefault(fields[1], []).append(RawTurn(f"line {n}", line, onset, onset + duration, speaker, None))
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
        raise fail(shown, n, line, f"not a timing line; expected 'start --> end' like {example}")
    start, end = _seconds(m, 1), _seconds(m, 5)
    if start is None or end is None:
        raise fail(shown, n, line, f"minutes and seconds must be below 60; expected 'start --> end' like {example}")
    return start, end


def _cue_timing(block: list[tuple[int, str]], shown: str, fmt: str) -> int:
    """Index of the block's timing line: the first line, or the second after a cue id / number."""
    if "-->" in block[0][1]:
        return 0
    if len(block) > 1 and "-->" in block[1][1]:
        return 1
    n, line = block[0]
    raise fail(shown, n, line, f"no timing line here; expected {EXPECTED[fmt]}")


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


def vtt(lines: list[str], shown: str) -> list[RawTurn]:
    if not _VTT_HEADER.match(lines[0].strip()):
        raise fail(shown, 1, lines[0], 'expected a WebVTT file to start with the line "WEBVTT"')
    blocks = _blocks(lines)
    header = blocks[0]
    for n, line in header[1:]:
        if "-->" in line:
            raise fail(shown, n, line, "a cue right after the header; expected a blank line after the WEBVTT header lines")
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
        out.append(RawTurn(f"line {n}", line, start, end, speaker, text))
    return out


def srt(lines: list[str], shown: str) -> list[RawTurn]:
    out = []
    for block in _blocks(lines):
        i = _cue_timing(block, shown, "srt")
        n, line = block[i]
        start, end = _timing(n, line, shown, "srt")
        payload = [text for _, text in block[i + 1 :]]
        first = _plain(payload[:1], vtt=False)
        speaker, first = _split_name(first)
        text = " ".join(filter(None, [first, _plain(payload[1:], vtt=False)])) or None
        out.append(RawTurn(f"line {n}", line, start, end, speaker, text))
    return out


def whisper_json(text: str, shown: str) -> list[RawTurn]:
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
            RawTurn(
                where, None, float(start), float(end), (speaker or "").strip() or None, " ".join((words or "").split()) or None
            )
        )
    return out
