"""Conversation readings on hand-made segment lists whose answers are worked out by hand."""

from __future__ import annotations

import csv
import io
import math

import pytest

from emotion_app.analysis.conversation import (
    ConversationOptions,
    conversation_report,
    conversation_srt,
    conversation_vtt,
    turns_csv,
)
from emotion_app.constants import LABEL_KEYS
from emotion_app.speakers.turns import read_turns

LABELS = LABEL_KEYS  # angry, disgusted, fearful, happy, neutral, other, sad, surprised, unknown


def seg(start, end, speaker, text=None, **probs) -> dict:
    """A segment whose probabilities are `probs` (the other labels 0)."""
    p = {k: float(probs.get(k, 0.0)) for k in LABELS}
    top = max(p, key=p.get)
    return {
        "start": start,
        "end": end,
        "speaker": speaker,
        "text": text,
        "emotion": top,
        "confidence": p[top],
        "probabilities": p,
    }


def neg(start, end, speaker, negative: float) -> dict:
    """A segment with negative share `negative` (all of it angry), the rest neutral."""
    return seg(start, end, speaker, angry=negative, neutral=1 - negative)


def report(segments, duration_s=12.0, **options):
    return conversation_report(segments, LABELS, duration_s, ConversationOptions(**options) if options else None)


# ---------------------------------------------------------------------------------------------
# two speakers, an overlap each way, both interruptions


TWO = [
    seg(6.0, 10.0, "A", happy=0.9, neutral=0.1),  # given out of order on purpose
    seg(0.0, 4.0, "A", neutral=0.7, happy=0.3),
    seg(3.0, 7.0, "B", angry=0.6, sad=0.4),
]


def test_two_speakers():
    speakers, conv = report(TWO)
    a, b = speakers
    # A: 0-4 and 6-10 -> 8 s; B: 3-7 -> 4 s; shares of the 12 s of talk
    assert (a["name"], a["talk_s"], a["share_of_talk"], a["segments"]) == ("A", 8.0, 0.6667, 2)
    assert (b["name"], b["talk_s"], b["share_of_talk"], b["segments"]) == ("B", 4.0, 0.3333, 1)
    # starts in order A 0, B 3, A 6: A took the floor twice, B once
    assert (a["turns"], b["turns"]) == (2, 1)
    # A's mean: neutral (0.7*4 + 0.1*4) / 8 = 0.4, happy (0.3*4 + 0.9*4) / 8 = 0.6
    assert (a["emotion"], a["confidence"]) == ("happy", 0.6)
    assert a["probabilities"] == {**dict.fromkeys(LABELS, 0.0), "neutral": 0.4, "happy": 0.6}
    assert a["share"] == {**dict.fromkeys(LABELS, 0.0), "neutral": 0.5, "happy": 0.5}
    assert (b["emotion"], b["confidence"], b["share"]["angry"], b["probabilities"]["sad"]) == ("angry", 0.6, 1.0, 0.4)
    # B starts at 3 inside A's 0-4, A stops at 4 (1 s later), B goes on to 7: B interrupts A.
    # A starts at 6 inside B's 3-7, B stops at 7, A goes on to 10: A interrupts B.
    assert conv["interruptions"] == [
        {"by": "B", "of": "A", "at": 3.0, "overlap_s": 1.0},
        {"by": "A", "of": "B", "at": 6.0, "overlap_s": 1.0},
    ]
    assert (a["interruptions"], a["interrupted"], b["interruptions"], b["interrupted"]) == (1, 1, 1, 1)
    # union 0-10 = 10 s of 12; two at once during 3-4 and 6-7
    assert {k: conv[k] for k in ("duration_s", "num_speakers", "talk_s", "silence_s", "overlap_s")} == {
        "duration_s": 12.0,
        "num_speakers": 2,
        "talk_s": 10.0,
        "silence_s": 2.0,
        "overlap_s": 2.0,
    }
    assert conv["escalations"] == []  # B has one segment only; A has no negative share
    assert conv["options"]["negative_labels"] == ["angry", "disgusted", "fearful", "sad"]


def test_backchannels_are_no_interruptions():
    segments = [
        seg(0.0, 10.0, "A", neutral=1.0),
        seg(4.0, 4.5, "B", neutral=1.0),  # "mm-hm": A goes on for 5.5 s more
        seg(8.5, 8.9, "B", neutral=1.0),  # "right": A stops at 10, within 2 s, but B stopped first
    ]
    speakers, conv = report(segments)
    assert conv["interruptions"] == []
    assert conv["overlap_s"] == 0.9  # 0.5 + 0.4
    assert [s["turns"] for s in speakers] == [1, 1]  # starts A 0, B 4, B 8.5
    # B taking over at 9 s while A is still speaking until 10 s is one
    _, conv = report([*segments, seg(9.0, 11.0, "B", neutral=1.0)])
    assert conv["interruptions"] == [{"by": "B", "of": "A", "at": 9.0, "overlap_s": 1.0}]


@pytest.mark.parametrize("a_end, interrupted", [(5.0, True), (5.001, False), (3.5, True)])
def test_interruption_window_is_two_seconds_inclusive(a_end, interrupted):
    _, conv = report([seg(0.0, a_end, "A", neutral=1.0), seg(3.0, 6.0, "B", neutral=1.0)])
    assert bool(conv["interruptions"]) is interrupted
    _, conv = report([seg(0.0, a_end, "A", neutral=1.0), seg(3.0, 6.0, "B", neutral=1.0)], interruption_s=3.0)
    assert bool(conv["interruptions"]) is True


def test_touching_segments_of_one_speaker_are_one_stretch():
    """A's 0-4 and 4-9 are one stretch of speech: B starting at 3 does not make A stop at 4."""
    segments = [seg(0.0, 4.0, "A", neutral=1.0), seg(4.0, 9.0, "A", neutral=1.0), seg(3.0, 6.0, "B", neutral=1.0)]
    speakers, conv = report(segments)
    assert conv["interruptions"] == [] and conv["overlap_s"] == 3.0
    assert speakers[0]["talk_s"] == 9.0 and speakers[0]["turns"] == 1


# ---------------------------------------------------------------------------------------------
# escalations


def test_escalation_with_hysteresis_unsmoothed():
    values = [0.2, 0.6, 0.45, 0.55, 0.35, 0.7, 0.42, 0.52]
    segments = [neg(2.0 * i, 2.0 * i + 1.5, "A", v) for i, v in enumerate(values)]
    _, conv = report(segments, duration_s=20.0, smoothing_s=0.0)
    # 0.2 -> 0.6 crosses; 0.45 / 0.55 jitter (not under 0.4): nothing; 0.35 re-arms; 0.7 crosses;
    # 0.42 does not re-arm, so 0.52 is no new escalation
    assert conv["escalations"] == [
        {"speaker": "A", "from": 0.2, "to": 0.6, "at": 2.0},
        {"speaker": "A", "from": 0.35, "to": 0.7, "at": 10.0},
    ]
    # without hysteresis every rise across 0.5 counts
    _, conv = report(segments, duration_s=20.0, smoothing_s=0.0, hysteresis=0.0)
    assert [e["at"] for e in conv["escalations"]] == [2.0, 6.0, 10.0, 14.0]


def test_escalation_smoothed_by_talk_time():
    # 8 s of angry speech after a calm start: 0.1 + (1 - e^-1) * (0.9 - 0.1) = 0.6057
    _, conv = report([neg(0.0, 2.0, "A", 0.1), neg(3.0, 11.0, "A", 0.9)])
    to = 0.1 + (1 - math.exp(-1.0)) * 0.8
    assert conv["escalations"] == [{"speaker": "A", "from": 0.1, "to": round(to, 3), "at": 3.0}]
    assert round(to, 3) == 0.606
    # one short outburst of 1 s: 0.1 + (1 - e^-1/8) * 0.8 = 0.194, no escalation
    _, conv = report([neg(0.0, 2.0, "A", 0.1), neg(3.0, 4.0, "A", 0.9)])
    assert conv["escalations"] == []
    # the 8 s cut into four 2 s segments: the same end value (e^-2/8 four times is e^-1), crossing on the third
    pieces = [neg(0.0, 2.0, "A", 0.1)] + [neg(3.0 + 2 * i, 5.0 + 2 * i, "A", 0.9) for i in range(4)]
    _, conv = report(pieces)
    y = [0.1]
    for _ in range(4):
        y.append(y[-1] + (1 - math.exp(-2 / 8)) * (0.9 - y[-1]))
    assert y[4] == pytest.approx(to)
    assert (round(y[2], 3), round(y[3], 3)) == (0.415, 0.522)
    assert conv["escalations"] == [{"speaker": "A", "from": 0.415, "to": 0.522, "at": 7.0}]


def test_escalation_needs_a_rise():
    # angry from the first segment: nothing to rise from
    _, conv = report([neg(0.0, 2.0, "A", 0.8), neg(3.0, 5.0, "A", 0.9)], smoothing_s=0.0)
    assert conv["escalations"] == []
    _, conv = report([neg(0.0, 2.0, "A", 0.8), neg(3.0, 5.0, "A", 0.3), neg(6.0, 8.0, "A", 0.7)], smoothing_s=0.0)
    assert conv["escalations"] == [{"speaker": "A", "from": 0.3, "to": 0.7, "at": 6.0}]


def test_escalations_per_speaker_and_negative_labels():
    segments = [
        seg(0.0, 2.0, "A", neutral=1.0),
        seg(1.0, 3.0, "B", neutral=1.0),
        seg(4.0, 6.0, "B", sad=0.3, fearful=0.3, neutral=0.4),  # negative 0.6 (sad + fearful)
        seg(5.0, 7.0, "A", disgusted=0.55, happy=0.45),  # negative 0.55
        seg(8.0, 9.0, "A", surprised=1.0),
    ]
    _, conv = report(segments, smoothing_s=0.0)
    assert conv["escalations"] == [
        {"speaker": "B", "from": 0.0, "to": 0.6, "at": 4.0},
        {"speaker": "A", "from": 0.0, "to": 0.55, "at": 5.0},
    ]
    _, conv = report(segments, smoothing_s=0.0, negative_labels=("sad",))  # B: 0.3, A: 0
    assert conv["escalations"] == []


def test_a_model_with_fewer_labels():
    labels = ("angry", "happy", "neutral", "sad", "unknown")
    s = [
        {"start": 0.0, "end": 2.0, "speaker": "S1", "emotion": "neutral", "confidence": 0.9,
         "probabilities": {"angry": 0.0, "happy": 0.1, "neutral": 0.9, "sad": 0.0, "unknown": 0.0}},
        {"start": 2.0, "end": 4.0, "speaker": "S1", "emotion": "sad", "confidence": 0.8,
         "probabilities": {"angry": 0.1, "happy": 0.0, "neutral": 0.1, "sad": 0.8, "unknown": 0.0}},
    ]  # fmt: skip
    speakers, conv = conversation_report(s, labels, 4.0, ConversationOptions(smoothing_s=0.0))
    assert conv["escalations"] == [{"speaker": "S1", "from": 0.0, "to": 0.9, "at": 2.0}]
    assert list(speakers[0]["probabilities"]) == list(labels)
    with pytest.raises(ValueError, match="none of the negative labels"):
        conversation_report(s, ("happy", "neutral"), 4.0)


# ---------------------------------------------------------------------------------------------
# one speaker, nobody, unassigned speech


def test_one_speaker():
    speakers, conv = report([seg(1.0, 3.0, "S1", neutral=1.0), seg(4.0, 5.5, "S1", happy=0.8, neutral=0.2)], duration_s=6.0)
    assert len(speakers) == 1
    s = speakers[0]
    assert (s["talk_s"], s["share_of_talk"], s["turns"], s["interruptions"]) == (3.5, 1.0, 1, 0)
    # neutral (1.0 * 2 + 0.2 * 1.5) / 3.5 = 0.6571, happy 1.2 / 3.5 = 0.3429; shares 2 / 3.5, 1.5 / 3.5
    assert (s["emotion"], s["confidence"], s["probabilities"]["happy"]) == ("neutral", 0.6571, 0.3429)
    assert (s["share"]["neutral"], s["share"]["happy"]) == (0.5714, 0.4286)
    assert (conv["talk_s"], conv["silence_s"], conv["overlap_s"], conv["interruptions"]) == (3.5, 2.5, 0.0, [])


def test_no_segments():
    speakers, conv = report([], duration_s=7.25)
    assert speakers == []
    assert conv == {
        "duration_s": 7.25,
        "num_speakers": 0,
        "talk_s": 0.0,
        "silence_s": 7.25,
        "overlap_s": 0.0,
        "interruptions": [],
        "escalations": [],
        "options": ConversationOptions().to_dict(),
    }


def test_unassigned_speech_counts_as_talk_only():
    segments = [seg(0.0, 2.0, "A", neutral=1.0), seg(1.0, 3.0, None, angry=1.0), seg(2.5, 4.0, " ", angry=1.0)]
    speakers, conv = report(segments, duration_s=5.0)
    assert [s["name"] for s in speakers] == ["A"] and speakers[0]["share_of_talk"] == 1.0
    assert (conv["talk_s"], conv["silence_s"], conv["overlap_s"], conv["interruptions"]) == (4.0, 1.0, 0.0, [])


def test_three_speakers_overlap_and_rounding():
    segments = [seg(0.0, 3.3333, "A", neutral=1.0), seg(1.0, 2.0, "B", neutral=1.0), seg(1.5, 2.5, "C", neutral=1.0)]
    speakers, conv = report(segments, duration_s=4.0)
    # two or more at once: 1.0-2.5 (B with A, then B and C, then C with A)
    assert conv["overlap_s"] == 1.5 and conv["talk_s"] == 3.333 and conv["silence_s"] == 0.667
    assert [s["name"] for s in speakers] == ["A", "B", "C"]
    assert [s["share_of_talk"] for s in speakers] == [round(3.3333 / 5.3333, 4), round(1 / 5.3333, 4), round(1 / 5.3333, 4)]


def test_options_are_checked():
    for bad in (
        {"escalation_threshold": 1.0},
        {"escalation_threshold": 0.0},
        {"hysteresis": -0.1},
        {"hysteresis": 0.5},
        {"smoothing_s": -1.0},
        {"interruption_s": 0.0},
        {"negative_labels": ()},
        {"negative_labels": "angry"},
    ):
        with pytest.raises(ValueError):
            ConversationOptions(**bad)
    assert ConversationOptions(negative_labels=["sad", "sad"]).negative_labels == ("sad",)
    with pytest.raises(ValueError, match="segment 0"):
        report([{"start": 0.0, "end": 1.0, "speaker": "A"}])
    with pytest.raises(ValueError, match="segment 0"):
        report([seg(2.0, 1.0, "A", neutral=1.0)])


# ---------------------------------------------------------------------------------------------
# exports, and reading them back as turns

EXPORTED = [
    seg(3.0, 7.25, "S2", "No. <Never> & again", angry=0.6, sad=0.4),
    seg(0.0, 4.0, "S1", "Hello there, everyone.", neutral=0.87, happy=0.13),
    seg(8.0, 9.5, None, None, happy=0.5, neutral=0.5),
]


def test_turns_csv():
    rows = list(csv.reader(io.StringIO(turns_csv(EXPORTED, LABELS))))
    assert rows[0] == ["speaker", "start", "end", "text", "emotion", "confidence", *LABELS]
    assert rows[1] == [
        "S1",
        "0.000",
        "4.000",
        "Hello there, everyone.",
        "neutral",
        "0.8700",
        "0.0",
        "0.0",
        "0.0",
        "0.13",
        "0.87",
        "0.0",
        "0.0",
        "0.0",
        "0.0",
    ]
    assert rows[2][:6] == ["S2", "3.000", "7.250", "No. <Never> & again", "angry", "0.6000"]
    assert rows[3][:6] == ["", "8.000", "9.500", "", "happy", "0.5000"]
    assert len(rows) == 4


def test_conversation_vtt_and_round_trip(tmp_path):
    vtt = conversation_vtt(EXPORTED)
    assert vtt.startswith(
        "WEBVTT\n\n1\n00:00:00.000 --> 00:00:04.000\n<v S1>😐 neutral 中立 (87%)\nHello there, everyone.\n\n2\n"
    )
    assert "<v S2>😠 angry 生气 (60%)\nNo. &lt;Never&gt; &amp; again\n" in vtt
    assert "3\n00:00:08.000 --> 00:00:09.500\n😊 happy 开心 (50%)\n" in vtt
    path = tmp_path / "conversation.vtt"
    path.write_text(vtt, encoding="utf-8")
    turns = read_turns(path, duration_s=10.0)
    assert [(t.start, t.end, t.speaker) for t in turns] == [(0.0, 4.0, "S1"), (3.0, 7.25, "S2"), (8.0, 9.5, None)]
    assert turns[1].text == "😠 angry 生气 (60%) No. <Never> & again"


def test_conversation_srt_and_round_trip(tmp_path):
    srt = conversation_srt(EXPORTED)
    assert srt.startswith(
        "1\n00:00:00,000 --> 00:00:04,000\nS1: neutral (87%)\nHello there, everyone.\n\n2\n00:00:03,000 --> 00:00:07,250\n"
    )
    assert srt.endswith("3\n00:00:08,000 --> 00:00:09,500\nhappy (50%)\n")
    path = tmp_path / "conversation.srt"
    path.write_text(srt, encoding="utf-8")
    turns = read_turns(path)
    assert [(t.start, t.end, t.speaker) for t in turns] == [(0.0, 4.0, "S1"), (3.0, 7.25, "S2"), (8.0, 9.5, None)]
    assert [t.text for t in turns] == ["neutral (87%) Hello there, everyone.", "angry (60%) No. <Never> & again", "happy (50%)"]


def test_round_trip_of_diarizer_names():
    segments = [seg(0.0, 1.0, "SPEAKER_00", neutral=1.0), seg(1.0, 2.0, "Ann Lee", neutral=1.0)]
    assert [t.speaker for t in read_turns(conversation_srt(segments), fmt="srt")] == ["SPEAKER_00", "Ann Lee"]
    assert [t.speaker for t in read_turns(conversation_vtt(segments), fmt="vtt")] == ["SPEAKER_00", "Ann Lee"]
