"""One parser per option kind: from_fields takes strings or typed values, defaults written once,
and every combination of mode flags either works or is refused by name."""

from __future__ import annotations

import pytest

from emotion_app.analysis.options import AnalysisOptions
from emotion_app.analysis.smoothing import SmoothingOptions
from emotion_app.audio.segmenter import SegmentOptions
from emotion_app.fields import OptionError
from emotion_app.request import RequestOptions


def test_defaults_come_from_the_dataclasses():
    r = RequestOptions.from_fields({})
    assert r == RequestOptions() and r.segment is None and r.analysis == AnalysisOptions()
    assert AnalysisOptions.from_fields({}).smoothing == SmoothingOptions()
    assert SegmentOptions.from_fields({}, "vad") == SegmentOptions("vad")


def test_strings_and_typed_values_parse_alike():
    text = {"granularity": "frame", "extract_embedding": "true", "method": "ewma", "alpha": "0.5", "zero_phase": "no"}
    typed = {"granularity": "frame", "extract_embedding": True, "method": "ewma", "alpha": 0.5, "zero_phase": False}
    a, b = RequestOptions.from_fields(text), RequestOptions.from_fields(typed)
    assert a == b and a.extract_embedding is True
    assert a.analysis.smoothing == SmoothingOptions("ewma", 11, 0.5, False, 0.2)
    assert RequestOptions.from_fields({"granularity": "frame", "window": "15.0"}).analysis.smoothing.window == 15
    # empty values mean "not given" (an HTML form sends every field)
    assert RequestOptions.from_fields({"granularity": "", "method": "", "segment": ""}) == RequestOptions()


def test_window_hop_defaults_to_the_window_length():
    seg = RequestOptions.from_fields({"segment": "window", "window_s": "4"}).segment
    assert (seg.mode, seg.window_s, seg.hop_s) == ("window", 4.0, 4.0)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"granularity": "sentence"}, "granularity must be one of utterance, frame, not 'sentence'"),
        ({"extract_embedding": "maybe"}, "extract_embedding must be true or false"),
        ({"granularity": "frame", "window": "8"}, "odd number of frames from 3 to 51"),
        ({"granularity": "frame", "window": "11.5"}, "window must be a whole number"),
        ({"granularity": "frame", "alpha": "nan"}, "alpha must be a finite number"),
        ({"mixed_threshold": "2"}, "mixed_threshold must be from 0 to 1"),
        ({"segment": "window", "window_s": "5", "hop_s": "8"}, "must not exceed the window length"),
        ({"segment": "vad", "threshold": "x"}, "threshold must be a number"),
        ({"segment": "speakers"}, "segment must be one of none, vad, window"),
    ],
)
def test_bad_values_name_the_field_and_the_range(fields, message):
    with pytest.raises(OptionError, match=message) as err:
        RequestOptions.from_fields(fields)
    assert err.value.code in ("bad_option", "bad_granularity")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"granularity": "frame", "segment": "vad"}, "granularity=frame cannot be combined with segment=vad"),
        ({"granularity": "frame", "segment": "window"}, "granularity=frame cannot be combined with segment=window"),
        ({"method": "ewma"}, "method: frame options apply to granularity=frame only"),
        ({"segment": "vad", "window": "5"}, "window: frame options apply to granularity=frame only"),
        ({"utterance_from": "mean"}, "utterance_from: frame options apply"),
        ({"threshold": "0.3"}, "threshold: these apply to segment=vad only"),
        ({"window_s": "5"}, "window_s: these apply to segment=window only"),
        ({"segment": "vad", "hop_s": "5"}, "hop_s: these apply to segment=window only"),
        ({"segment": "window", "min_silence_s": "1"}, "min_silence_s: these apply to segment=vad only"),
    ],
)
def test_conflicting_modes_are_refused_by_name(fields, message):
    with pytest.raises(OptionError, match=message):
        RequestOptions.from_fields(fields)


def test_combinations_that_work():
    r = RequestOptions.from_fields({"segment": "vad", "extract_embedding": "1", "charts": "false", "mixed_threshold": "0.2"})
    assert r.segment.mode == "vad" and r.extract_embedding and not r.analysis.charts and r.analysis.mixed_threshold == 0.2
    # a caller's own defaults (the CLI draws no charts) give way to given fields, and never conflict
    assert RequestOptions.from_fields({}, charts=False).analysis.charts is False
    assert RequestOptions.from_fields({"charts": "yes"}, charts=False).analysis.charts is True
    assert RequestOptions.from_fields({"granularity": "frame"}, method="ewma").analysis.smoothing.method == "ewma"
