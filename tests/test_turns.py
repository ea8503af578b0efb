"""Reading turns people already have: RTTM, WebVTT, SRT, whisper / whisperX JSON, and the errors."""

from __future__ import annotations

import json

import pytest

from emotion_app.errors import EmotionAppError
from emotion_app.speakers.turns import Turn, TurnsError, read_turns

RTTM = """;; written by pyannote.audio
SPKR-INFO call 1 <NA> <NA> <NA> unknown SPEAKER_00 <NA> <NA>
SPEAKER call 1 0.500 2.250 <NA> <NA> SPEAKER_00 <NA> <NA>
SPEAKER call 1 2.000 1.000 <NA> <NA> SPEAKER_01 <NA> <NA>

SPEAKER call 1 4.000 0.750 <NA> <NA> SPEAKER_00 <NA> <NA>
"""


def write(tmp_path, name: str, text: str, bom: bool = False, crlf: bool = False):
    if crlf:
        text = text.replace("\n", "\r\n")
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    path = tmp_path / name
    path.write_bytes(data)
    return path


def error(*args, **kwargs) -> str:
    with pytest.raises(TurnsError) as e:
        read_turns(*args, **kwargs)
    assert e.value.code == "bad_turns" and isinstance(e.value, EmotionAppError)
    return str(e.value)


# ---------------------------------------------------------------------------------------------
# RTTM


@pytest.mark.parametrize("crlf", [False, True])
def test_rttm(tmp_path, crlf):
    turns = read_turns(write(tmp_path, "call.rttm", RTTM, crlf=crlf))
    assert turns == [
        Turn(0.5, 2.75, "SPEAKER_00", None),
        Turn(2.0, 3.0, "SPEAKER_01", None),  # overlaps the first: kept
        Turn(4.0, 4.75, "SPEAKER_00", None),
    ]
    assert turns[0].duration_s == pytest.approx(2.25)


def test_rttm_sorted_by_start(tmp_path):
    text = "SPEAKER f 1 7 1 <NA> <NA> B <NA> <NA>\nSPEAKER f 1 1 2 <NA> <NA> A <NA> <NA>\n"
    assert [t.start for t in read_turns(write(tmp_path, "x.rttm", text))] == [1.0, 7.0]


CORPUS = """SPEAKER dev00 1 0.5 2.0 <NA> <NA> spk_a <NA> <NA>
SPEAKER dev01 1 0.0 1.0 <NA> <NA> spk_c <NA> <NA>
SPEAKER dev00 1 3.0 1.0 <NA> <NA> spk_b <NA> <NA>
SPEAKER dev02 1 2.0 4.0 <NA> <NA> spk_d <NA> <NA>
"""


def test_a_corpus_rttm_gives_the_recordings_lines(tmp_path):
    """One file holding several recordings (a corpus's reference): the lines of the audio's file id."""
    path = write(tmp_path, "corpus.rttm", CORPUS)
    assert read_turns(path, recording="dev00") == [Turn(0.5, 2.5, "spk_a"), Turn(3.0, 4.0, "spk_b")]
    assert read_turns(path, recording="dev02", duration_s=6.0) == [Turn(2.0, 6.0, "spk_d")]
    assert len(read_turns(path, every_recording=True)) == 4  # the check before the audio is known
    with pytest.raises(TurnsError) as info:
        read_turns(path, recording="dev07")
    assert info.value.message == (
        "corpus.rttm: no turns of the recording 'dev07' (RTTM's file id: the audio's name without its extension);"
        " the file holds 'dev00', 'dev01', 'dev02'"
    )
    with pytest.raises(TurnsError, match=r"the turns of 3 recordings \('dev00', 'dev01', 'dev02'\); expected one"):
        read_turns(path)
    many = "".join(f"SPEAKER f{i:02d} 1 0 1 <NA> <NA> A <NA> <NA>\n" for i in range(13))
    with pytest.raises(TurnsError, match="'f09' and 3 more$"):
        read_turns(many, fmt="rttm", name="many.rttm", recording="g")


def test_a_single_recording_rttm_is_read_whatever_its_file_id(tmp_path):
    """pyannote writes its own file id (and <NA> fields): one recording's lines are the audio's."""
    path = write(tmp_path, "call.rttm", RTTM)
    assert read_turns(path, recording="renamed_call") == read_turns(path) and len(read_turns(path)) == 3


@pytest.mark.parametrize(
    "line, expected",
    [
        ("SPEAKER call 1 five 1.0 <NA> <NA> SPEAKER_00 <NA> <NA>", "onset and duration must be numbers of seconds"),
        ("SPEAKER call 1 5.0", "a SPEAKER line has at least 8 fields, this one 4"),
        ("SPEAKER call 1 5.0 0 <NA> <NA> SPEAKER_00 <NA> <NA>", "the duration is 0; expected a duration above 0 s"),
        ("SPEAKER call 1 -1.0 2 <NA> <NA> SPEAKER_00 <NA> <NA>", "the start is negative"),
        ("0.5 2.0 SPEAKER_00", "not an RTTM line; expected SPEAKER <file>"),
    ],
)
def test_rttm_errors_name_the_line(tmp_path, line, expected):
    lines = RTTM.splitlines()
    lines.insert(5, line)  # becomes line 6
    message = error(write(tmp_path, "call.rttm", "\n".join(lines)))
    assert message.startswith(f'call.rttm line 6: "{line[:40]}')
    assert expected in message


# ---------------------------------------------------------------------------------------------
# WebVTT

VTT = """WEBVTT - a call
Kind: captions

NOTE speaker tags come from
the transcription service

STYLE
::cue(v[voice="Ann"]) { color: red }

intro
00:01.000 --> 00:02.500 align:start position:10%
<v.loud Ann Lee>Hello &amp; <b>welcome</b>
to the call</v>

00:00:02.000 --> 00:00:04.000
<v Bob>Thanks!

3
01:00:00.000 --> 01:00:01.500
Carol: are we recording?

00:05.000 --> 00:06.000
Just text, no speaker.
"""


@pytest.mark.parametrize("bom, crlf", [(False, False), (True, True), (True, False)])
def test_vtt(tmp_path, bom, crlf):
    turns = read_turns(write(tmp_path, "call.vtt", VTT, bom=bom, crlf=crlf))
    assert turns == [
        Turn(1.0, 2.5, "Ann Lee", "Hello & welcome to the call"),
        Turn(2.0, 4.0, "Bob", "Thanks!"),
        Turn(5.0, 6.0, None, "Just text, no speaker."),
        Turn(3600.0, 3601.5, "Carol", "are we recording?"),
    ]


def test_vtt_from_text_and_bytes():
    text = "WEBVTT\n\n00:01.000 --> 00:02.000\n<v S1>hi\n"
    assert read_turns(text) == read_turns(text.encode()) == [Turn(1.0, 2.0, "S1", "hi")]
    assert read_turns(text.encode("utf-16")) == read_turns("\ufeff" + text) == [Turn(1.0, 2.0, "S1", "hi")]


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "WEBVTX\n\n00:01.000 --> 00:02.000\nhi\n",
            'call.vtt line 1: "WEBVTX": expected a WebVTT file to start with the line "WEBVTT"',
        ),
        (
            "WEBVTT\n\n00:01.000 --> 00:02.000\nhi\n\n00:03.000 -> 00:04.000\nthere\n",
            'call.vtt line 6: "00:03.000 -> 00:04.000": no timing line here',
        ),
        (
            "WEBVTT\n\n1\n00:01.000 --> 00:02.000\nhi\n\n2\n00:03.000 --> 00:61.000\nthere\n",
            'call.vtt line 8: "00:03.000 --> 00:61.000": minutes and seconds must be below 60',
        ),
        (
            "WEBVTT\n\n1\n00:01.000 --> 00:02.000\nhi\n\n2\n00:03.000 --> 00:03.000\nthere\n",
            'call.vtt line 8: "00:03.000 --> 00:03.000": the turn has no length',
        ),
        ("WEBVTT\n\nNOTE nothing here\n", "call.vtt: no turns found"),
        ("WEBVTT\n00:01.000 --> 00:02.000\nhi\n", "call.vtt line 2:"),
    ],
)
def test_vtt_errors(tmp_path, text, expected):
    assert expected in error(write(tmp_path, "call.vtt", text))


# ---------------------------------------------------------------------------------------------
# SRT

SRT = """1
00:00:01,000 --> 00:00:02,000
<i>Ann:</i> Good morning.

2
00:00:02,500 --> 00:00:04,000
The reason is simple: we wait.

3
00:00:04,000 --> 00:00:05,000
Dr. Jane Smith: Hello
second line

4
00:00:06,000 --> 00:00:07,000
We meet at 10:30 sharp.

5
00:00:08,000 --> 00:00:09,000
A very long introduction of somebody who talks: yes

6
00:00:09,000 --> 00:00:10,000
{\\an8}张三：你好
"""


@pytest.mark.parametrize("bom, crlf", [(False, False), (True, True)])
def test_srt(tmp_path, bom, crlf):
    turns = read_turns(write(tmp_path, "call.srt", SRT, bom=bom, crlf=crlf))
    assert turns == [
        Turn(1.0, 2.0, "Ann", "Good morning."),
        Turn(2.5, 4.0, None, "The reason is simple: we wait."),  # a sentence, not a name
        Turn(4.0, 5.0, "Dr. Jane Smith", "Hello second line"),
        Turn(6.0, 7.0, None, "We meet at 10:30 sharp."),
        Turn(8.0, 9.0, None, "A very long introduction of somebody who talks: yes"),
        Turn(9.0, 10.0, "张三", "你好"),
    ]


def test_srt_error_example(tmp_path):
    text = (
        "1\n00:00:01,000 --> 00:00:02,000\nhi\n\n"
        "2\n00:00:03,000 --> 00:00:04,000\nthere\n\n"
        "3\n00:00:05,000 --> 00:00:04,000\nback\n"  # lines 9-11
    )
    assert (
        error(write(tmp_path, "turns.srt", text))
        == 'turns.srt line 10: "00:00:05,000 --> 00:00:04,000": the end is before the start'
    )


def test_srt_bad_time_and_missing_timing(tmp_path):
    bad = "1\n00:00:01,000 --> 00:00:02,000\nhi\n\n2\n00:00:03 --> 0:0:x\nthere\n"
    assert error(write(tmp_path, "a.srt", bad)).startswith('a.srt line 6: "00:00:03 --> 0:0:x": not a timing line; expected')
    missing = "1\n00:00:01,000 --> 00:00:02,000\nhi\n\nstray text\nmore\n"
    assert error(write(tmp_path, "b.srt", missing)).startswith(
        'b.srt line 5: "stray text": no timing line here; expected a subtitle'
    )


# ---------------------------------------------------------------------------------------------
# whisper / whisperX JSON

WHISPER = {
    "text": " Hello there. General Kenobi.",
    "segments": [
        {"id": 0, "seek": 0, "start": 0.0, "end": 1.84, "text": " Hello there.", "tokens": [1, 2]},
        {"id": 1, "seek": 0, "start": 2.0, "end": 3.5, "text": " General Kenobi."},
    ],
    "language": "en",
}
WHISPERX = {
    "segments": [
        {"start": 2.031, "end": 3.2, "text": " General Kenobi.", "words": [], "speaker": "SPEAKER_01"},
        {"start": 0.009, "end": 1.8, "text": " Hello there.", "words": [{"word": "Hello"}], "speaker": "SPEAKER_00"},
        {"start": 4.0, "end": 4.4, "text": " Hm."},
    ],
    "word_segments": [],
}


def test_whisper_json(tmp_path):
    turns = read_turns(write(tmp_path, "a.json", json.dumps(WHISPER), bom=True))
    assert turns == [Turn(0.0, 1.84, None, "Hello there."), Turn(2.0, 3.5, None, "General Kenobi.")]


def test_whisperx_json(tmp_path):
    turns = read_turns(write(tmp_path, "b.json", json.dumps(WHISPERX, indent=2), crlf=True))
    assert turns == [
        Turn(0.009, 1.8, "SPEAKER_00", "Hello there."),
        Turn(2.031, 3.2, "SPEAKER_01", "General Kenobi."),
        Turn(4.0, 4.4, None, "Hm."),
    ]


def test_json_bare_list_and_detection():
    text = json.dumps(WHISPERX["segments"])
    assert [t.speaker for t in read_turns(text)] == ["SPEAKER_00", "SPEAKER_01", None]


@pytest.mark.parametrize(
    "doc, expected",
    [
        (
            {"segments": [{"start": 0, "end": 1}, {"start": "2", "end": 3}]},
            "t.json segments[1]: 'start' and 'end' must be numbers",
        ),
        (
            {"segments": [{"start": 0, "end": 1}, {"start": 2, "end": 1}]},
            "t.json segments[1]: start 2 s, end 1 s: the end is before",
        ),
        ({"segments": [{"start": 0, "end": 1}, "hello"]}, "t.json segments[1]: a str; expected an object"),
        ({"segments": [{"start": 0, "end": 1, "speaker": ["A"]}]}, "t.json segments[0]: 'speaker' is ['A']"),
        ({"text": "no segments"}, "t.json: no 'segments' list"),
        ({"segments": []}, "t.json: no turns found"),
    ],
)
def test_json_errors(tmp_path, doc, expected):
    assert expected in error(write(tmp_path, "t.json", json.dumps(doc)))


def test_json_syntax_error_names_the_line(tmp_path):
    text = '{\n  "segments": [\n    {"start": 0, "end": 1,}\n  ]\n}\n'
    assert error(write(tmp_path, "t.json", text)).startswith("t.json line 3: not valid JSON")


# ---------------------------------------------------------------------------------------------
# the recording's duration, formats, files


def test_duration_clips_and_refuses(tmp_path):
    srt = "1\n00:00:01,000 --> 00:00:10,400\na\n\n2\n00:00:02,000 --> 00:00:03,000\nb\n"
    path = write(tmp_path, "d.srt", srt)
    assert read_turns(path, duration_s=10.0)[0] == Turn(1.0, 10.0, None, "a")  # 0.4 s past the end: clipped
    assert read_turns(path)[0].end == 10.4
    message = error(path, duration_s=9.8)  # 0.6 s past
    assert message.startswith('d.srt line 2: "00:00:01,000 --> 00:00:10,400": the turn ends at 10.400 s, more than 0.5 s after')
    late = write(tmp_path, "late.srt", "1\n00:00:01,000 --> 00:00:02,000\na\n\n2\n00:00:03,000 --> 00:00:03,100\nb\n")
    message = error(late, duration_s=2.5)
    assert message.startswith(
        'late.srt line 6: "00:00:03,000 --> 00:00:03,100": the turn starts at 3.000 s, after the recording ends'
    )
    with pytest.raises(ValueError):
        read_turns(path, duration_s=-1)


def test_format_from_content_and_fmt(tmp_path):
    rttm = write(tmp_path, "turns.txt", RTTM)
    assert len(read_turns(rttm)) == 3
    srt = write(tmp_path, "subs.txt", SRT)
    assert read_turns(srt)[0].speaker == "Ann"
    assert read_turns(write(tmp_path, "x.dat", "WEBVTT\n\n00:01.000 --> 00:02.000\nhi\n"))[0].text == "hi"
    # fmt wins over the suffix
    assert read_turns(write(tmp_path, "mislabelled.vtt", RTTM), fmt="rttm")[1].speaker == "SPEAKER_01"
    assert "unknown turns format 'ctm'" in error(rttm, fmt="ctm")
    assert error(write(tmp_path, "what.txt", "hello\nworld\n")).startswith('what.txt line 1: "hello": cannot tell the format')


def test_empty_and_missing_files(tmp_path):
    assert (
        error(write(tmp_path, "e.srt", ""))
        == "e.srt: the file is empty; expected a subtitle: its number, then 'hh:mm:ss,ttt --> hh:mm:ss,ttt', then the text"
    )
    assert "e.vtt: the file is empty" in error(write(tmp_path, "e.vtt", "\ufeff\n\n", bom=False))
    assert error(write(tmp_path, "c.rttm", ";; only a comment\n")).startswith("c.rttm: no turns found")
    assert error(str(tmp_path / "nope.rttm")).startswith("nope.rttm: no such file")
    assert error(tmp_path / "nope.txt").startswith("nope.txt: no such file")


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin.srt"
    path.write_bytes("1\n00:00:01,000 --> 00:00:02,000\ncaf\xe9\n".encode("latin-1"))
    assert error(path) == "latin.srt line 3: the text is not UTF-8 (byte 0xe9); save the file as UTF-8"


def test_name_shown_for_content():
    assert error("WEBVTT\n\n00:02.000 --> 00:01.000\nx\n", name="upload.vtt").startswith("upload.vtt line 3:")
