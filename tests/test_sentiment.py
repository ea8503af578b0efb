"""Sentiment from emotions (sentiment.py): the documented mapping, a user's own mapping, and the
block on every reading: a clip, its segments, a conversation's speakers (hops: test_labelset)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from audio_files import speechlike, write_audio
from conversation_audio import RATE, call

from emotion_app.fields import OptionError
from emotion_app.request import RequestOptions
from emotion_app.sentiment import DEFAULT_MAPPING, Sentiment
from emotion_app.service import analyze


def test_the_default_mapping_and_its_arithmetic():
    s = Sentiment()
    assert s.of({"happy": 0.6, "sad": 0.3, "neutral": 0.1}) == {
        "label": "positive", "score": 0.3, "positive": 0.6, "negative": 0.3, "neutral": 0.1,
    }  # fmt: skip
    assert s.of({"angry": 0.3, "fearful": 0.3, "happy": 0.4})["label"] == "negative"  # 0.6 negative in all
    assert s.of({"angry": 0.3, "fearful": 0.3, "happy": 0.4})["score"] == pytest.approx(-0.2)
    assert s.of({"neutral": 0.5, "surprised": 0.1, "happy": 0.4})["label"] == "neutral"  # surprised counts neutral
    assert s.of({"happy": 0.5, "sad": 0.5})["label"] == "neutral"  # a tie is neutral
    assert s.of({"happy": 2.0, "sad": 2.0, "angry": 4.0})["score"] == pytest.approx(-0.5)  # renormalised first
    assert set(DEFAULT_MAPPING) == {"angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised", "unknown"}


def test_a_users_mapping_and_its_errors():
    own = Sentiment.parse(None, '{"surprised": "positive", "other": "negative"}')  # a mapping alone turns it on
    assert own.of({"surprised": 0.7, "neutral": 0.3})["label"] == "positive" and own.mapping["happy"] == "positive"
    assert Sentiment.parse("false", None) is None and Sentiment.parse(None, None) is None
    assert Sentiment.parse("true", None).mapping == dict(DEFAULT_MAPPING)
    for text, message in [
        ("{surprised: positive}", r"not JSON .*line 1"),
        ('["happy"]', "a JSON object is needed"),
        ('{"joy": "positive"}', r"'joy' is not an emotion label"),
        ('{"happy": "good"}', r"'happy': 'good' is not one of positive, negative, neutral"),
    ]:
        with pytest.raises(OptionError, match=message) as e:
            Sentiment.parse("true", text)
        assert e.value.code == "bad_sentiment_map"


def test_a_clip_and_its_frame_segments_carry_sentiment(tiny_engine, tmp_path):
    path = write_audio(tmp_path / "c.wav", speechlike(3.0, seed=1), 16000, "wav")
    request = RequestOptions.from_fields({"granularity": "frame", "sentiment": "true"})
    analysis = analyze(tiny_engine, str(path), request, outputs_dir=tmp_path / "out")
    result, frames = analysis.result, analysis.report.frame_analysis
    assert result["sentiment"] == Sentiment().of(result["probabilities"])
    assert result["segments"]
    times = np.arange(len(frames.smoothed.probabilities)) * 0.02  # each frame's start
    for seg in result["segments"]:  # the mean of the smoothed frames inside the segment
        inside = (times >= seg["start"] - 0.005) & (times < seg["end"] - 0.005)
        mean = dict(zip(frames.labels, frames.smoothed.probabilities[inside].mean(0)))
        assert seg["sentiment"] == pytest.approx(Sentiment().of(mean), abs=1e-3), seg
    plain = analyze(tiny_engine, str(path), RequestOptions.from_fields({}), outputs_dir=tmp_path / "out").result
    assert "sentiment" not in plain


def test_each_speaker_and_segment_of_a_call(tiny_engine, tmp_path):
    path = tmp_path / "call.wav"
    sf.write(path, call(rounds=2).stereo(), RATE, subtype="PCM_16")
    request = RequestOptions.from_fields(
        {"speakers": "channels", "names": "Agent,Customer", "sentiment_map": json.dumps({"surprised": "positive"})}
    )
    result = analyze(tiny_engine, str(path), request, outputs_dir=tmp_path / "out").result
    own = Sentiment({**DEFAULT_MAPPING, "surprised": "positive"})
    assert result["sentiment"] == own.of(result["probabilities"])
    assert all(s["sentiment"] == own.of(s["probabilities"]) for s in result["segments"])
    assert [s["name"] for s in result["speakers"]] == ["Agent", "Customer"]
    assert all(s["sentiment"] == own.of(s["probabilities"]) for s in result["speakers"])
