"""Long recordings (longform.py): VAD segments against known speech spans, per-segment
results, fixed windows over files, bounded memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from audio_files import espeak, speechlike, write_audio

from emotion_app.audio.segmenter import SegmentOptions
from emotion_app.longform import analyze_long

pytestmark = pytest.mark.long  # started first in its worker (tests/workers.py)


def as_json(rec) -> dict:
    """result.json's content of a recording (analysis/report.py)."""
    from emotion_app.analysis.build import build_report

    return build_report(rec).to_json()


ROOT = Path(__file__).resolve().parents[1]
SENTENCES = [
    "Good morning, thank you for calling the support line.",
    "I have been waiting for my parcel for three weeks now.",
    "That is wonderful news, I am really happy to hear it.",
]


@pytest.fixture(scope="module")
def conversation():
    """Three spoken sentences separated by silences of 1.5, 2 and 1 s; returns (audio, true spans in s)."""
    parts, spans, t = [], [], 0.0
    for i, (text, gap) in enumerate(zip(SENTENCES, (1.5, 2.0, 1.0))):
        parts.append(np.zeros(int(gap * 16000), np.float32))
        t += gap
        voice = espeak(text, seed=i)
        parts.append(voice)
        spans.append((t, t + len(voice) / 16000))
        t += len(voice) / 16000
    parts.append(np.zeros(16000, np.float32))
    return np.concatenate(parts), spans


def test_vad_finds_the_spoken_sentences_within_100ms(tiny_engine, conversation):
    x, truth = conversation
    res = as_json(analyze_long(tiny_engine, (16000, x), SegmentOptions("vad", speech_pad_s=0.0)))
    found = [(s["start"], s["end"]) for s in res["segments"]]
    assert len(found) == len(truth), found
    for (a, b), (ta, tb) in zip(found, truth):
        assert abs(a - ta) <= 0.1 and abs(b - tb) <= 0.1, (found, truth)
    s = res["summary"]
    assert s["num_segments"] == 3 and s["speech_s"] == pytest.approx(sum(b - a for a, b in found), abs=1e-3)
    assert s["coverage"] == pytest.approx(s["speech_s"] / res["duration_s"], abs=1e-3)
    assert sum(s["share"].values()) == pytest.approx(1.0, abs=1e-3)


def test_each_segment_gets_the_engines_result_for_its_samples(tiny_engine, conversation):
    x, _ = conversation
    res = as_json(analyze_long(tiny_engine, (16000, x), SegmentOptions("vad")))
    for seg in res["segments"]:
        a, b = round(seg["start"] * 16000), round(seg["end"] * 16000)
        expected = tiny_engine.predict(x[a:b], sample_rate=16000)
        got = [seg["probabilities"][k] for k in expected.labels]
        np.testing.assert_allclose(got, expected.probabilities, rtol=0, atol=1e-5)
        assert seg["emotion"] == expected.emotion and seg["scores"] == expected.scores()
    # file level: duration-weighted mean of the segments
    w = np.array([s["end"] - s["start"] for s in res["segments"]])
    mean = sum(np.array(list(s["probabilities"].values())) * d for s, d in zip(res["segments"], w)) / w.sum()
    np.testing.assert_allclose(list(res["probabilities"].values()), mean, atol=1e-6)


def test_long_speech_is_split_at_the_maximum_segment_length(tiny_engine):
    voice = np.concatenate([espeak(s, seed=i) for i, s in enumerate(SENTENCES * 2)])  # ~17 s with no pause
    res = as_json(analyze_long(tiny_engine, (16000, voice), SegmentOptions("vad", max_segment_s=5.0)))
    lengths = [s["end"] - s["start"] for s in res["segments"]]
    assert len(lengths) >= 3 and max(lengths) <= 5.0 + 1e-6


def test_silence_only_has_no_segments_and_says_so(tiny_engine):
    res = as_json(analyze_long(tiny_engine, (16000, np.zeros(5 * 16000, np.float32)), SegmentOptions("vad")))
    assert res["segments"] == [] and res["emotion"] is None
    assert [w["code"] for w in res["warnings"]] == ["silent", "no_speech"]


def test_window_mode_results_cover_the_file(tiny_engine, tmp_path):
    path = write_audio(tmp_path / "call.flac", speechlike(22.0), 16000, "flac")
    res = as_json(analyze_long(tiny_engine, path, SegmentOptions("window", window_s=5, hop_s=5)))
    assert [(s["start"], s["end"]) for s in res["segments"]] == [(0, 5), (5, 10), (10, 15), (15, 22)]  # a 2 s tail joins


PEAK_SCRIPT = """
import sys

def hwm():  # peak RSS in MB of this process (VmHWM: ru_maxrss would carry the parent's peak over exec)
    return next(int(x.split()[1]) // 1024 for x in open('/proc/self/status') if x.startswith('VmHWM'))
from emotion_app import Engine
from emotion_app.longform import analyze_long
from emotion_app.audio.segmenter import SegmentOptions
e = Engine(model=sys.argv[1], cache_weights=False)
r = analyze_long(e, sys.argv[2], SegmentOptions("vad"), audio_out=sys.argv[3])
print(len(r.spans), hwm())
"""


def test_long_recording_keeps_peak_memory_bounded(tiny_dir, tmp_path):
    """VAD segmentation of 18 minutes needs no more memory than of 6 minutes (both passes stream;
    6 minutes already fill the group of segments sent to the engine at once: 3 minutes peaked 36 MB
    lower, 6, 15 and 30 minutes within 11 MB of each other)."""
    pause = np.zeros(16000, np.float32)
    minute = np.concatenate([part for i, text in enumerate(SENTENCES) for part in (espeak(text, seed=i), pause)] * 6)[
        : 60 * 16000
    ]
    peaks = {}
    for minutes in (6, 18):
        path = write_audio(tmp_path / f"{minutes}.flac", np.tile(minute, minutes), 16000, "flac")
        out = subprocess.run(
            [sys.executable, "-c", PEAK_SCRIPT, str(tiny_dir), str(path), str(tmp_path / f"{minutes}.wav")],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout.split()
        segments, peaks[minutes] = map(int, out)
        assert segments >= 10 * minutes  # about 3 sentences per 13 s
    # holding the audio would add at least 46 MB (12 more minutes of float32 samples)
    assert peaks[18] - peaks[6] < 32, peaks
