"""Speaker clustering on synthetic embeddings whose speakers are known (tests/speaker_sets.py)."""

from __future__ import annotations

import numpy as np
import pytest
from speaker_sets import DIM, purity, speakers

from emotion_app.speakers import cluster
from emotion_app.speakers.cluster import cluster_speakers, name_in_order


def count(labels: np.ndarray) -> int:
    return len(np.unique(labels))


@pytest.mark.parametrize(
    "counts, noise, rho, seed",
    [
        ([60], 1.0, 0.3, 1),  # one speaker: 1, not 2
        ([25], 1.3, 0.0, 2),
        ([30, 30], 1.0, 0.3, 3),
        ([40, 12], 0.7, 0.5, 4),
        ([20, 35, 15], 1.3, 0.3, 5),
        ([25, 25, 25, 25], 1.0, 0.0, 6),
        ([30, 10, 22, 40, 18], 0.7, 0.3, 7),
        ([12, 12, 12, 12, 12], 1.0, 0.3, 8),
    ],
)
def test_estimated_count_and_purity(counts, noise, rho, seed):
    x, truth = speakers(counts, noise, rho, seed)
    labels = cluster_speakers(x, None)
    assert labels.shape == (len(truth),) and labels.dtype.kind == "i"
    assert count(labels) == len(counts)
    assert purity(labels, truth) >= 0.97


@pytest.mark.parametrize("k, seed", [(2, 11), (3, 12), (4, 13)])
def test_unbalanced_speakers(k, seed):
    """One speaker holds 80 % of the windows; the others still come out as their own speakers."""
    total = 150
    counts = [int(0.8 * total)] + [int(0.2 * total) // (k - 1)] * (k - 1)
    x, truth = speakers(counts, noise=1.0, rho=0.3, seed=seed)
    labels = cluster_speakers(x, None)
    assert count(labels) == k
    assert purity(labels, truth) >= 0.97
    assert np.bincount(labels).max() == pytest.approx(counts[0], abs=3)


@pytest.mark.parametrize("counts, noise, seed", [([5, 5], 0.7, 21), ([3, 4, 3], 0.7, 22), ([8], 1.0, 23), ([6, 9], 1.0, 24)])
def test_few_windows(counts, noise, seed):
    """Under 20 windows: average-linkage AHC at cosine distance 0.7."""
    x, truth = speakers(counts, noise, rho=0.0, seed=seed)
    labels = cluster_speakers(x, None)
    assert count(labels) == len(counts)
    assert purity(labels, truth) == 1.0


def test_outlier_windows_make_no_speakers():
    """3 % windows of nobody (random directions) join a real speaker instead of becoming one each."""
    x, truth = speakers([70, 50, 30], noise=1.0, rho=0.3, seed=31, outliers=5)
    labels = cluster_speakers(x, None)
    assert count(labels) == 3
    assert purity(labels, truth) >= 0.98


@pytest.mark.parametrize("k", [2, 3, 5])
def test_count_given(k):
    x, truth = speakers([20] * k, noise=1.3, rho=0.5, seed=40 + k)
    labels = cluster_speakers(x, k)
    assert count(labels) == k
    assert purity(labels, truth) >= 0.95


def test_count_given_is_obeyed_even_against_the_data():
    x, _ = speakers([40], noise=1.0, rho=0.3, seed=50)
    assert count(cluster_speakers(x, 2)) == 2  # one voice, but two were asked for
    x, truth = speakers([30, 30, 30], noise=1.0, rho=0.3, seed=51)
    assert count(cluster_speakers(x, 1)) == 1
    assert count(cluster_speakers(x, 2)) == 2


def test_tiny_inputs():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, DIM))
    assert cluster_speakers(np.zeros((0, DIM)), None).shape == (0,)
    assert cluster_speakers(a[None], None).tolist() == [0]
    assert cluster_speakers(a[None], 3).tolist() == [0]
    assert cluster_speakers(np.stack([a, 2 * a]), None).tolist() == [0, 0]  # same direction
    assert cluster_speakers(np.stack([a, b]), None).tolist() == [0, 1]  # unrelated directions (cosine ~0)
    assert cluster_speakers(np.stack([a, a, b]), 5).tolist() == [0, 1, 2]  # fewer windows than speakers


@pytest.mark.parametrize("w", [3, 19, 20, 60])
def test_identical_embeddings_are_one_speaker(w):
    x = np.tile(np.random.default_rng(w).normal(size=DIM), (w, 1))
    assert cluster_speakers(x, None).tolist() == [0] * w
    assert cluster_speakers(np.zeros((w, DIM)), None).tolist() == [0] * w  # silent windows: no direction at all


def test_labels_in_order_of_appearance_and_deterministic():
    x, _ = speakers([30, 30, 30], noise=1.0, rho=0.3, seed=60)
    labels = cluster_speakers(x, None)
    firsts = [int(np.argmax(labels == c)) for c in range(3)]
    assert firsts == sorted(firsts) and labels[0] == 0
    assert np.array_equal(labels, cluster_speakers(x.copy(), None))
    assert np.array_equal(cluster_speakers(x, 3), cluster_speakers(x, 3))


def test_many_windows_use_a_subsample(monkeypatch):
    """Above MAX_SPECTRAL_WINDOWS, the spectral step sees an even subsample and the rest go to the nearest mean."""
    monkeypatch.setattr(cluster, "MAX_SPECTRAL_WINDOWS", 80)
    x, truth = speakers([150, 60, 40], noise=1.0, rho=0.3, seed=70)
    labels = cluster_speakers(x, None)
    assert count(labels) == 3 and purity(labels, truth) >= 0.98
    assert purity(cluster_speakers(x, 3), truth) >= 0.98


def test_bad_input():
    with pytest.raises(ValueError, match="windows, dimensions"):
        cluster_speakers(np.zeros(DIM), None)
    with pytest.raises(ValueError, match="NaN"):
        cluster_speakers(np.full((3, DIM), np.nan), None)
    for k in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="num_speakers"):
            cluster_speakers(np.ones((3, DIM)), k)


def test_name_in_order():
    assert name_in_order([5, 5, 2, 7, 2], [3.0, 0.0, 1.0, 2.0, 4.0]) == ["S1", "S1", "S2", "S3", "S2"]
    assert name_in_order(np.array([1, 0]), [2.0, 2.0]) == ["S1", "S2"]  # a tie keeps the given order
    assert name_in_order([], []) == []
    with pytest.raises(ValueError):
        name_in_order([0, 1], [0.0])
