"""model/batcher.py: concurrent requests' model calls merged into shared model calls, in the order
and grouping promised, with results equal to unbatched ones (the tiny checkpoint, real threads)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from audio_files import speechlike

from emotion_app.model.batcher import MAX_PADDING, Batcher, Call, plan_batches, run_merged
from emotion_app.model.chunking import ChunkOutput


def chunk(n: int) -> np.ndarray:
    return np.full(n, n, np.float32)  # its length in every sample: the fake model gives it back


def fake_run(chunks, keep_frames):
    """A model whose output says which chunk it was: mean = [length], frames = [batch size]."""
    return [
        ChunkOutput(np.array([len(c)]), np.zeros(2), np.zeros((1, 2)), np.array([[len(chunks)]]) if keep_frames else None)
        for c in chunks
    ]


def test_plan_groups_by_length_and_frames_and_never_splits_a_call():
    calls = [Call([chunk(100)]), Call([chunk(110), chunk(90)]), Call([chunk(400)]), Call([chunk(105)], keep_frames=True)]
    groups = plan_batches(calls, max_chunks=8, max_samples=10_000)
    assert sorted(map(sorted, groups)) == [[0, 1], [2], [3]]  # 400 > MAX_PADDING * 110; frames apart
    assert 400 > MAX_PADDING * 110
    assert plan_batches(calls[:2], max_chunks=2, max_samples=10_000) == [[0], [1]]  # 3 chunks > 2
    assert plan_batches(calls[:2], max_chunks=8, max_samples=250) == [[0], [1]]  # 3 x 110 padded > 250
    assert plan_batches([Call([chunk(10)] * 9)], max_chunks=4, max_samples=10) == [[0]]  # too big alone: still runs


def test_run_merged_splits_outputs_back_and_hands_each_group_its_error():
    calls = [Call([chunk(100)]), Call([chunk(101), chunk(102)]), Call([chunk(900)])]
    stats = []

    def run(chunks, keep_frames):
        if any(len(c) == 900 for c in chunks):
            raise RuntimeError("model failed")
        return fake_run(chunks, keep_frames)

    results = run_merged(run, calls, max_chunks=8, max_samples=10_000, on_batch=stats.append)
    assert [[int(o.mean[0]) for o in r] for r in results[:2]] == [[100], [101, 102]]
    assert isinstance(results[2], RuntimeError)
    assert [(s.calls, s.chunks, len(s.queue_s)) for s in stats] == [(2, 3, 2)]  # the failed call reports no batch


def test_calls_waiting_while_the_model_is_busy_run_together():
    """The first call holds the model; five more arrive meanwhile: they share the next model call."""
    started, release = threading.Event(), threading.Event()
    sizes = []

    def run(chunks, keep_frames):
        sizes.append(len(chunks))
        started.set()
        assert release.wait(10)
        return fake_run(chunks, keep_frames)

    batcher = Batcher(run, max_chunks=8, max_samples=10**6)
    out = [None] * 6

    def call(i):
        out[i] = batcher.run([chunk(100 + i)])

    first = threading.Thread(target=call, args=(0,))
    first.start()
    assert started.wait(10)
    rest = [threading.Thread(target=call, args=(i,)) for i in range(1, 6)]
    for t in rest:
        t.start()
    for _ in range(1000):  # bounded: until the five wait in the queue
        with batcher._cond:
            if len(batcher._jobs) == 5:
                break
        threading.Event().wait(0.01)
    release.set()
    for t in [first, *rest]:
        t.join(10)
    assert sizes == [1, 5]
    assert [int(o[0].mean[0]) for o in out] == [100 + i for i in range(6)]


def test_a_model_error_reaches_only_its_callers():
    batcher = Batcher(lambda chunks, keep: (_ for _ in ()).throw(ValueError("bad chunk")), max_chunks=4, max_samples=10**6)
    with pytest.raises(ValueError, match="bad chunk"):
        batcher.run([chunk(10)])
    batcher._run = fake_run  # the worker lives on
    assert int(batcher.run([chunk(12)])[0].mean[0]) == 12


def test_a_failure_outside_the_model_calls_fails_its_calls_and_the_batcher_goes_on(monkeypatch):
    from emotion_app.model import batcher as module

    batcher = Batcher(fake_run, max_chunks=4, max_samples=10**6)
    real = module.run_merged
    monkeypatch.setattr(module, "run_merged", lambda *a: (_ for _ in ()).throw(RuntimeError("planning failed")))
    with pytest.raises(RuntimeError, match="planning failed"):  # an answer, not a wait forever
        batcher.run([chunk(10)])
    monkeypatch.setattr(module, "run_merged", real)
    assert int(batcher.run([chunk(12)])[0].mean[0]) == 12


def test_concurrent_predictions_batched_equal_unbatched(tiny_engine):
    from emotion_app import Engine

    engine = Engine(model=str(tiny_engine.model_dir))
    clips = [speechlike(s, 16000, seed=i) for i, s in enumerate([1.0, 1.1, 1.2, 2.0, 0.9, 1.05, 1.15, 1.0])]
    alone = [engine.predict((16000, c), granularity="frame", extract_embedding=True) for c in clips]
    stats = []
    engine.observers.append(stats.append)
    engine.enable_batching(8, wait_s=0.05)  # the first call waits for the others: one merged call at least
    together = [None] * len(clips)

    def go(i):
        together[i] = engine.predict((16000, clips[i]), granularity="frame", extract_embedding=True)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(clips))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert max(s.calls for s in stats) > 1 and sum(s.calls for s in stats) == len(clips)
    for a, b in zip(alone, together):
        np.testing.assert_allclose(b.probabilities, a.probabilities, rtol=0, atol=1e-5)
        np.testing.assert_allclose(b.frame_probabilities, a.frame_probabilities, rtol=0, atol=1e-5)
        np.testing.assert_allclose(b.embedding, a.embedding, rtol=0, atol=1e-5)
