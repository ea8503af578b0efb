"""Chunking (chunking.py): windows tile the global 50 Hz frame grid, cut lazily; chunk results
are put back in order and averaged by frame count."""

from __future__ import annotations

import numpy as np
import pytest

from emotion_app.model.chunking import OVERLAP, Accumulator, ChunkOutput, iter_chunks, window_frames


@pytest.mark.parametrize("seconds", [0.5, 30.0, 30.005, 37.0, 38.0, 95.0, 600.0])
def test_chunk_frames_tile_the_single_pass_grid(seconds):
    """Each chunk's frames, placed at start/320, give exactly the frames of one pass over the input."""
    n = int(seconds * 16000)
    frames = window_frames(30.0)
    chunks = list(iter_chunks((np.zeros(min(16000, n - i), np.float32) for i in range(0, n, 16000)), frames))
    covered = []
    for start, chunk in chunks:
        assert start % 320 == 0 and len(chunk) <= frames * 320 + OVERLAP + frames * 320 // 4 + 320
        t = (len(chunk) - 400) // 320 + 1
        covered += list(range(start // 320, start // 320 + t))
    assert covered == list(range((n - 400) // 320 + 1))
    assert sum(len(c) for _, c in chunks) - OVERLAP * (len(chunks) - 1) == n


def test_accumulator_orders_chunks_and_weights_means_by_frames():
    acc = Accumulator()
    a = ChunkOutput(np.full(4, 1.0, np.float32), np.ones(2) / 2, np.zeros((30, 2)), None)
    b = ChunkOutput(np.full(4, 4.0, np.float32), np.ones(2) / 2, np.ones((10, 2)), None)
    acc.add(9600, b)  # arrives first, starts later
    acc.add(0, a)
    assert acc.ordered() == [a, b]
    np.testing.assert_allclose(acc.mean_feature(), np.full(4, (30 * 1.0 + 10 * 4.0) / 40))
    assert acc.frame_probabilities().shape == (40, 2) and acc.frame_probabilities()[-1, 0] == 1.0


def test_chunks_are_cut_lazily_from_the_stream():
    """The chunker holds at most one window plus one block: it never reads the stream ahead."""
    block = 16000  # 1 s blocks
    read = 0

    def blocks():
        nonlocal read
        for _ in range(600):  # 10 minutes
            read += block
            yield np.zeros(block, np.float32)

    frames = window_frames(30.0)
    step = frames * 320
    for start, chunk in iter_chunks(blocks(), frames):
        assert read - start <= len(chunk) + step // 4 + block
        assert len(chunk) == step + 80 or start + len(chunk) == 600 * block
