"""Smoothing methods on constructed sequences whose right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from emotion_app.analysis.smoothing import SmoothingOptions, ewma, runs, smooth, window_mean

V = 9


def onehot(labels, p=0.9) -> np.ndarray:
    """Rows with `p` on the label and the rest spread evenly."""
    x = np.full((len(labels), V), (1 - p) / (V - 1))
    x[np.arange(len(labels)), labels] = p
    return x


def random_probs(t=300, seed=0) -> np.ndarray:
    x = np.exp(np.random.default_rng(seed).normal(size=(t, V)) * 2)
    return x / x.sum(1, keepdims=True)


ALL = [
    SmoothingOptions("none", min_duration_s=0),
    SmoothingOptions("majority", window=3, min_duration_s=0),
    SmoothingOptions("majority", window=51),
    SmoothingOptions("moving_average", window=11),
    SmoothingOptions("ewma", alpha=0.3, zero_phase=False),
    SmoothingOptions("ewma", alpha=0.3, zero_phase=True, min_duration_s=1.0),
]


@pytest.mark.parametrize("opts", ALL, ids=lambda o: f"{o.method}-{o.window}-{o.zero_phase}-{o.min_duration_s}")
def test_invariants(opts):
    x = random_probs()
    s = smooth(x, opts)
    assert s.probabilities.shape == x.shape and s.dominant.shape == (300,) and s.confidence.shape == (300,)
    np.testing.assert_allclose(s.probabilities.sum(1), 1.0, atol=1e-9)
    assert (s.probabilities >= 0).all() and (s.confidence > 0).all() and (s.confidence <= 1).all()
    if opts.method == "none" and opts.min_duration_s == 0:
        np.testing.assert_array_equal(s.dominant, x.argmax(1))
        np.testing.assert_array_equal(s.probabilities, x)


@pytest.mark.parametrize("method", ["majority", "moving_average"])
def test_single_flipped_frame_is_removed_by_a_window_of_3(method):
    labels = [3] * 10 + [4] + [3] * 10
    s = smooth(onehot(labels), SmoothingOptions(method, window=3, min_duration_s=0))
    assert (s.dominant == 3).all()
    raw = smooth(onehot(labels), SmoothingOptions("none", min_duration_s=0))
    assert raw.dominant[10] == 4


def test_majority_confidence_is_the_window_mean_of_the_winner():
    x = onehot([3, 3, 4, 3, 3], p=0.9)
    x[1, 3] = 0.6
    x[1, 0] += 0.3  # row 1: happy 0.6
    s = smooth(x, SmoothingOptions("majority", window=3, min_duration_s=0))
    assert s.dominant[2] == 3
    assert s.confidence[2] == pytest.approx((0.6 + x[2, 3] + 0.9) / 3)
    assert s.confidence[0] == pytest.approx((0.9 + 0.6) / 2)  # at the edge only the frames that exist


def test_majority_tie_goes_to_the_higher_mean():
    x = onehot([3, 4], p=0.9)
    x[1] = onehot([4], p=0.5)[0]
    s = smooth(x, SmoothingOptions("majority", window=3, min_duration_s=0))
    assert s.dominant[0] == 3 and s.dominant[1] == 3  # one vote each: happy's mean 0.4625 > neutral's 0.2625


def test_ewma_step_response():
    x = onehot([0] * 5 + [1] * 20, p=1.0)
    y = ewma(x, 0.5)
    # after the step at t=5, the new label's weight is 1 - 0.5^(t-4)
    np.testing.assert_allclose(y[5:10, 1], 1 - 0.5 ** np.arange(1, 6))
    np.testing.assert_allclose(y[:5, 1], 0.0)
    dominant = smooth(x, SmoothingOptions("ewma", alpha=0.5, zero_phase=False, min_duration_s=0)).dominant
    assert dominant[:6].tolist() == [0] * 6 and (dominant[6:] == 1).all()  # at t=5 a 0.5/0.5 tie keeps the first
    assert ewma(x, 1.0)[7, 1] == 1.0  # alpha 1: no smoothing


def test_zero_phase_keeps_a_peak_in_place_causal_shifts_it():
    t = np.arange(200)
    bump = np.exp(-0.5 * ((t - 100) / 6.0) ** 2)
    x = np.stack([0.2 + 0.6 * bump, 0.8 - 0.6 * bump], axis=1)
    x = np.concatenate([x, np.zeros((200, V - 2))], axis=1)
    causal = ewma(x, 0.2)[:, 0].argmax()
    zero = ewma(x, 0.2, zero_phase=True)[:, 0].argmax()
    assert zero == 100
    assert causal >= 103  # about (1 - alpha) / alpha = 4 frames late


def test_minimum_duration_merges_a_60ms_run():
    labels = [3] * 20 + [7] * 3 + [3] * 20  # 3 frames = 60 ms of surprised
    s = smooth(onehot(labels), SmoothingOptions("none", min_duration_s=0.1))
    assert (s.dominant == 3).all()
    assert s.confidence[21] == pytest.approx(0.1 / 8)  # now the merged label's own probability there
    kept = smooth(onehot(labels), SmoothingOptions("none", min_duration_s=0.06))
    assert (kept.dominant[20:23] == 7).all()  # 60 ms is not shorter than 60 ms


def test_minimum_duration_picks_the_more_probable_neighbour():
    x = onehot([0] * 10 + [5] * 2 + [1] * 10)
    x[10:12, 1] += 0.05  # the short run leans to label 1
    x[10:12] /= x[10:12].sum(1, keepdims=True)
    s = smooth(x, SmoothingOptions("none", min_duration_s=0.1))
    assert runs(s.dominant) == [(0, 10, 0), (10, 22, 1)]


def test_window_mean_at_the_edges_uses_the_frames_that_exist():
    x = np.arange(5, dtype=float)[:, None]
    np.testing.assert_allclose(window_mean(x, 3)[:, 0], [0.5, 1, 2, 3, 3.5])


def test_empty_and_one_frame():
    assert smooth(np.zeros((0, V))).dominant.shape == (0,)
    s = smooth(onehot([2]), SmoothingOptions("majority", window=51))
    assert s.dominant.tolist() == [2]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"method": "median"}, "must be one of none, majority, moving_average, ewma"),
        ({"method": "majority", "window": 4}, "odd number of frames from 3 to 51"),
        ({"method": "moving_average", "window": 53}, "odd number of frames from 3 to 51"),
        ({"method": "moving_average", "window": 1}, "from 3 to 51"),
        ({"method": "ewma", "alpha": 0.0}, r"alpha must be in \(0, 1\]"),
        ({"method": "ewma", "alpha": 1.5}, r"alpha must be in \(0, 1\]"),
        ({"min_duration_s": -1}, "from 0 to 10 s"),
    ],
)
def test_parameter_errors_name_the_allowed_range(kw, message):
    with pytest.raises(ValueError, match=message):
        SmoothingOptions(**kw)
