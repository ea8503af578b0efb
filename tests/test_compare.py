"""Comparing clips: one batch, embeddings' cosine similarity, bad clips reported by name."""

from __future__ import annotations

import numpy as np
from audio_files import speechlike

from emotion_app.compare import compare, cosine_matrix


def test_cosine_matrix():
    m = cosine_matrix(np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(m, [[1, 0, -1, 0], [0, 1, 0, 0], [-1, 0, 1, 0], [0, 0, 0, 0]])


def test_compare_clips_with_a_bad_one(tiny_engine):
    a, b = speechlike(2.0, seed=1), speechlike(3.0, seed=2)
    sources = [(16000, a), (16000, b), b"not audio at all" * 10, (16000, a.copy())]
    cmp = compare(tiny_engine, sources, ["a.wav", "b.wav", "bad.txt", "a_copy.wav"])
    assert cmp.names == ["a.wav", "b.wav", "a_copy.wav"] and list(cmp.errors) == ["bad.txt"]
    assert "not an audio" in cmp.errors["bad.txt"]
    expected = tiny_engine.predict(a, sample_rate=16000, extract_embedding=True)
    assert cmp.emotions[0] == expected.emotion
    np.testing.assert_allclose(list(cmp.probabilities[0].values()), expected.probabilities, atol=1e-5)
    s = cmp.similarity
    assert s.shape == (3, 3) and np.allclose(s, s.T) and np.allclose(np.diag(s), 1)
    assert s[0, 2] > 0.9999 and s[0, 1] < s[0, 2]
