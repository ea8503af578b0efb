"""Segments, summary arithmetic, the mixed-emotion rule, exports re-read, charts' labels."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from test_smoothing import onehot

from emotion_app.analysis import charts, exports, insights
from emotion_app.analysis.options import AnalysisOptions
from emotion_app.analysis.smoothing import SmoothingOptions, smooth
from emotion_app.constants import LABEL_KEYS

NONE = SmoothingOptions("none", min_duration_s=0)


def test_segments_and_summary_arithmetic():
    # 1 s happy, 0.5 s neutral, 1.5 s happy, at 50 Hz
    x = onehot([3] * 50 + [4] * 25 + [3] * 75, p=0.8)
    s = smooth(x, NONE)
    segs = [g.to_dict() for g in insights.segments(s, LABEL_KEYS)]
    assert segs == [
        {"start": 0.0, "end": 1.0, "emotion": "happy", "confidence": 0.8},
        {"start": 1.0, "end": 1.5, "emotion": "neutral", "confidence": 0.8},
        {"start": 1.5, "end": 3.0, "emotion": "happy", "confidence": 0.8},
    ]
    m = insights.summary(s, LABEL_KEYS)
    assert m["duration_s"] == 3.0 and m["num_segments"] == 3
    assert m["share"]["happy"] == pytest.approx(125 / 150, abs=1e-4)
    assert m["share"]["neutral"] == pytest.approx(25 / 150, abs=1e-4)
    assert sum(m["share"].values()) == pytest.approx(1.0, abs=1e-3)
    assert m["change_points"] == [1.0, 1.5]
    assert m["changes_per_minute"] == pytest.approx(2 / 3 * 60)  # 2 changes in 3 s
    assert m["utterance_from_frames"] == {"method": "vote", "emotion": "happy", "confidence": pytest.approx(0.8333, abs=1e-4)}
    assert m["stability_std"]["angry"] == 0.0 and m["stability_std"]["happy"] > 0.2


def test_trend_is_the_least_squares_slope_per_minute():
    t = np.arange(3000)  # 60 s
    p = 0.2 + 0.5 * t / 3000  # happy rises by 0.5 over one minute
    x = np.zeros((3000, 9))
    x[:, 3], x[:, 4] = p, 1 - p
    m = insights.summary(smooth(x, NONE), LABEL_KEYS)
    assert m["trend_per_minute"]["happy"] == pytest.approx(0.5, abs=1e-3)
    assert m["trend_per_minute"]["neutral"] == pytest.approx(-0.5, abs=1e-3)
    assert m["trend_per_minute"]["sad"] == 0.0


def test_utterance_from_frames_by_mean():
    x = onehot([3] * 10 + [4] * 20, p=0.6)
    u = insights.utterance_from_frames(smooth(x, NONE), LABEL_KEYS, "mean")
    assert u["emotion"] == "neutral" and u["confidence"] == pytest.approx((0.6 * 20 + 0.05 * 10) / 30, abs=1e-4)
    with pytest.raises(ValueError, match="'vote' or 'mean'"):
        insights.utterance_from_frames(smooth(x, NONE), LABEL_KEYS, "max")


@pytest.mark.parametrize(
    "happy, surprised, mixed, label",
    [(0.45, 0.40, True, "happy + surprised"), (0.50, 0.40, True, "happy + surprised"), (0.60, 0.30, False, "happy")],
)
def test_mixed_emotion_rule(happy, surprised, mixed, label):
    probs = {k: 0.0 for k in LABEL_KEYS} | {"happy": happy, "surprised": surprised, "neutral": 1 - happy - surprised}
    m = insights.mixed_emotion(probs)
    assert m["mixed"] is mixed and m["label"] == label and m["margin"] == pytest.approx(happy - surprised)
    with pytest.raises(ValueError, match="from 0 to 1"):
        insights.mixed_emotion(probs, 2.0)


def test_exports_read_back():
    x = onehot([3] * 30 + [7] * 20, p=0.7)
    s = smooth(x, SmoothingOptions("majority", window=3))
    segs = [g.to_dict() for g in insights.segments(s, LABEL_KEYS)]
    rows = list(csv.DictReader(io.StringIO(exports.frames_csv(x, LABEL_KEYS, s.dominant))))
    assert len(rows) == 50 and list(rows[0]) == ["time", *LABEL_KEYS, "dominant", "smoothed_dominant"]
    assert rows[31]["time"] == "0.62" and float(rows[31]["surprised"]) == pytest.approx(0.7)
    assert rows[31]["dominant"] == "surprised" and rows[0]["smoothed_dominant"] == "happy"
    np.testing.assert_allclose([[float(r[k]) for k in LABEL_KEYS] for r in rows], x, atol=1e-6)
    back = list(csv.DictReader(io.StringIO(exports.segments_csv(segs))))
    assert [(float(r["start"]), float(r["end"]), r["emotion"], float(r["confidence"])) for r in back] == [
        (g["start"], g["end"], g["emotion"], g["confidence"]) for g in segs
    ]
    assert json.loads(exports.segments_json(segs)) == segs
    vtt = exports.segments_vtt(segs).split("\n")
    assert segs[0]["confidence"] == pytest.approx(0.6926, abs=1e-4)  # the last happy frame's window holds a surprised one
    assert vtt[:5] == ["WEBVTT", "", "1", "00:00:00.000 --> 00:00:00.600", "😊 happy 开心 (69%)"]
    assert vtt[7] == "00:00:00.600 --> 00:00:01.000" and vtt[8] == "😲 surprised 吃惊 (69%)"
    assert exports.vtt_time(3725.5) == "01:02:05.500"


def texts(fig) -> list[str]:
    fig.draw_without_rendering()  # tick labels are filled in at draw time
    return [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text")) if t.get_text()]


def test_charts_carry_the_expected_labels_and_render_to_png():
    probs = dict(zip(LABEL_KEYS, np.full(9, 1 / 9)))
    assert charts.chart_label("happy", "zh") == "😊 开心 happy"  # fonts-symbola and fonts-noto-cjk: ./run.sh test
    radar = charts.radar_chart([("a.wav", probs), ("b.wav", probs)], "en")
    assert {"a.wav", "b.wav"} <= set(texts(radar))
    sim = charts.similarity_chart(["a", "b"], np.array([[1.0, 0.25], [0.25, 1.0]]))
    assert [t.get_text() for t in sim.axes[0].texts] == ["1.00", "0.25", "0.25", "1.00"]


def test_the_scores_png_draws_each_score_as_a_bar_of_its_length_highest_on_top():
    from PIL import Image

    from emotion_app.analysis import charts_png
    from emotion_app.constants import label_color

    probs = {"angry": 0.1, "happy": 0.6, "sad": 0.3, "neutral": 0.0, "frustrated": 0.0}  # an own label too
    image = np.asarray(Image.open(io.BytesIO(charts_png.scores_png(probs, "zh"))).convert("RGB")).astype(int)
    assert image.shape == (360, 640, 3)

    def bar(key) -> tuple[int, int, int]:  # the rows and the length in pixels of the colour's run
        rgb = np.array([int(label_color(key)[i : i + 2], 16) for i in (1, 3, 5)])
        hit = np.all(np.abs(image - rgb) <= 2, axis=2)
        rows = np.flatnonzero(hit.sum(1) > 5)
        return (int(rows.min()), int(rows.max()), int(hit.sum(1).max())) if len(rows) else (0, 0, 0)

    happy, sad, angry = bar("happy"), bar("sad"), bar("angry")
    assert happy[1] < sad[0] and sad[1] < angry[0]  # highest on top
    assert happy[2] == pytest.approx(2 * sad[2], abs=2) and happy[2] == pytest.approx(6 * angry[2], abs=3)
    assert 20 <= happy[1] - happy[0] <= 60 and bar("neutral") == (0, 0, 0)  # 0: no bar
    label = charts_png.text_image(charts.chart_label("happy", "zh"), charts_png.LABEL_PT)
    assert label.width > 60 and np.asarray(label)[..., 3].max() == 255  # the label's glyphs, emoji and CJK included
    assert charts_png.text_image("0.2", charts_png.LABEL_PT) is charts_png.text_image("0.2", charts_png.LABEL_PT)  # kept


def test_the_charts_draw_long_labels_shortened_and_what_is_not_a_number_as_nothing():
    from PIL import Image

    from emotion_app.analysis import charts_png

    long = "a label of a fine-tuned model that goes on and on " * 3
    probs = {"happy": 0.5, long: 0.3, "sad": float("nan"), "angry": float("inf")}
    image = Image.open(io.BytesIO(charts_png.scores_png(probs, "en")))
    assert image.size == (640, 360)
    short = charts_png.fitted(long, charts_png.LABEL_PT)
    assert charts_png.LABEL_PX - 20 < short.width <= charts_png.LABEL_PX  # "…" in place of the rest
    frames = np.full((60, 3), 1 / 3)
    frames[10] = np.nan
    labels = ["happy", long, "$\\undefined$"]
    png = charts_png.timeline_png(np.arange(60) * 0.02, frames, labels, np.zeros(60, int), [np.nan, 0.5])
    assert Image.open(io.BytesIO(png)).size == (960, 420)  # a label with "$": text, not math


def test_the_timeline_png_stacks_the_frames_over_time_with_the_band_and_the_boundaries():
    from PIL import Image

    from emotion_app.analysis import charts_png

    s = smooth(onehot([3] * 50 + [4] * 50), NONE)  # 1 s happy, then 1 s neutral
    png = charts_png.timeline_png(np.arange(100) * 0.02, s.probabilities, LABEL_KEYS, s.dominant, [0.5], "en")
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    assert image.shape == (420, 960, 3)

    def columns_of(color: tuple[int, int, int], least: int) -> np.ndarray:  # the columns with `least` px of it
        return np.flatnonzero((np.abs(image - np.array(color)).max(axis=2) <= 1).sum(0) >= least)

    happy, neutral = columns_of(charts_png.rgb("happy"), 250), columns_of(charts_png.rgb("neutral"), 250)
    assert len(happy) > 300 and len(neutral) > 300 and abs(len(happy) - len(neutral)) <= 8  # areas and band: 1 s each
    assert happy.max() < neutral.min() <= happy.max() + 8  # happy first, then neutral
    dash = columns_of(tuple(int(c * 0.4) for c in charts_png.rgb("happy")), 150)
    assert len(dash) == 1 and happy.min() < dash[0] < happy.max()  # the boundary at 0.5 s, dashed over happy
    assert charts_png.time_ticks(10.0) == [0, 2, 4, 6, 8, 10] and charts_png.time_ticks(2.0)[:3] == [0, 0.25, 0.5]
    mix = np.zeros((50, 9))
    mix[:, 0], mix[:, 6] = 0.25, 0.75  # angry under sad, a quarter of the height
    image = np.asarray(Image.open(io.BytesIO(charts_png.timeline_png(np.arange(50) * 0.02, mix, LABEL_KEYS, np.full(50, 6)))))
    column = image[:, 480, :3].astype(int)
    angry, sad = (np.flatnonzero(np.abs(column - charts_png.rgb(k)).max(1) <= 1) for k in ("angry", "sad"))
    above, band = sad[sad < angry.min()], sad[sad > angry.max()]  # sad: over angry, and the band under the areas
    assert len(angry) > 60 and len(above) == pytest.approx(3 * len(angry), abs=6) and above.max() >= angry.min() - 2
    assert len(band) > 20 and np.ptp(angry) == len(angry) - 1  # one run of angry, at the bottom of the areas
    empty = charts_png.timeline_png(np.zeros(0), np.zeros((0, 9)), LABEL_KEYS, np.zeros(0, int), [], "zh")
    assert Image.open(io.BytesIO(empty)).size == (960, 420)


def insights_zh(key: str) -> str:
    from emotion_app.constants import LABEL_BY_KEY

    return LABEL_BY_KEY[key].zh


def test_analysis_options_from_form_values():
    o = AnalysisOptions.from_fields(
        {"method": "ewma", "window": "11", "alpha": "0.5", "zero_phase": False, "min_duration_s": "0"}
    )
    assert o.smoothing == SmoothingOptions("ewma", 11, 0.5, False, 0.0)
    with pytest.raises(ValueError, match="whole number"):
        AnalysisOptions.from_fields({"window": 10.5})
    with pytest.raises(ValueError, match="utterance_from must be one of vote, mean"):
        AnalysisOptions.from_fields({"utterance_from": "median"})
