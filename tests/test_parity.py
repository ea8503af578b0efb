"""Parity with FunASR 1.4.16 (the reference implementation) on random checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from audio_files import speechlike
from conftest import CONFIGS

from emotion_app.constants import label_for_token
from emotion_app.model.chunking import iter_chunks, window_frames

LENGTHS_S = [0.1, 0.97, 3.3, 12.0, 30.0]  # a fraction of a second up to the chunking window


def funasr_run(fm, x, granularity="utterance"):
    r = fm.generate(input=x, granularity=granularity, extract_embedding=True)[0]
    return np.asarray(r["scores"]), np.asarray(r["feats"]), [label_for_token(t).key for t in r["labels"]]


def funasr_frame_probs(fm, feats: np.ndarray) -> np.ndarray:
    """Per-frame probabilities from FunASR's own head over its frame features."""
    tokens = fm.kwargs["tokenizer"].token_list
    keep = [i for i, t in enumerate(tokens) if not t.startswith("unuse")]
    with torch.no_grad():
        logits = fm.model.proj(torch.from_numpy(feats))
        logits[:, [i for i in range(len(tokens)) if i not in keep]] = -np.inf
        return torch.softmax(logits, -1)[:, keep].numpy()


def rel_err(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(b).max())


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("granularity", ["utterance", "frame"])
def test_single_inputs_match_funasr(config, granularity, engines, funasr_models):
    engine, fm = engines[config], funasr_models[config]
    for seconds in LENGTHS_S:
        x = speechlike(seconds, seed=int(seconds * 10))
        res = engine.predict(x, sample_rate=16000, granularity=granularity, extract_embedding=True)
        scores, feats, labels = funasr_run(fm, x, granularity)
        assert list(res.labels) == labels
        np.testing.assert_allclose(res.probabilities, scores, rtol=0, atol=1e-5, err_msg=f"{config} {seconds}s")
        assert res.embedding.shape == feats.shape
        assert rel_err(res.embedding, feats) < 1e-4, f"{config} {seconds}s embedding"
        if granularity == "frame":
            np.testing.assert_allclose(res.frame_probabilities, funasr_frame_probs(fm, feats), rtol=0, atol=1e-5)


@pytest.mark.parametrize("config", ["tiny_large", "variant"])
def test_batched_inputs_match_funasr(config, engines, funasr_models):
    engine, fm = engines[config], funasr_models[config]
    clips = [speechlike(s, seed=i) for i, s in enumerate([7.0, 0.3, 30.0, 2.2, 12.5, 0.05, 4.0])]
    batch = engine.predict_batch([(16000, c) for c in clips], granularity="frame", extract_embedding=True)
    for clip, res in zip(clips, batch):
        scores, feats, _ = funasr_run(fm, clip, "frame")
        single = engine.predict(clip, sample_rate=16000, granularity="frame", extract_embedding=True)
        np.testing.assert_allclose(res.probabilities, scores, rtol=0, atol=1e-5)
        np.testing.assert_allclose(res.probabilities, single.probabilities, rtol=0, atol=1e-5)
        assert rel_err(res.embedding, feats) < 1e-4
        np.testing.assert_allclose(res.frame_probabilities, single.frame_probabilities, rtol=0, atol=1e-5)


def test_beyond_the_window_each_chunk_matches_funasr(checkpoint_dirs, funasr_models):
    from emotion_app import Engine

    # a 10 s window (the default is 30 s): three chunks of 25 s of audio, the last one short
    engine = Engine(model=str(checkpoint_dirs["tiny_large"]), device="cpu", window_s=10.0)
    fm = funasr_models["tiny_large"]
    x = speechlike(25.0, seed=7)
    res = engine.predict(x, sample_rate=16000, granularity="frame", extract_embedding=True)
    chunks = list(iter_chunks([x], window_frames(engine.options.window_s)))
    assert [s for s, _ in chunks] == [0, 160000, 320000] and res.chunks == 3
    assert len(res.frame_probabilities) == (len(x) - 400) // 320 + 1  # the single-pass frame grid
    offset, weighted = 0, []
    for start, samples in chunks:
        assert start == offset * 320
        _, feats, _ = funasr_run(fm, samples, "frame")
        t = len(feats)
        assert rel_err(res.embedding[offset : offset + t], feats) < 1e-4
        np.testing.assert_allclose(res.frame_probabilities[offset : offset + t], funasr_frame_probs(fm, feats), rtol=0, atol=1e-5)
        weighted.append(feats.astype(np.float64).sum(0))
        offset += t
    # documented rule: head over the mean of all frame features, i.e. frames-weighted chunk means
    mean = (np.sum(weighted, axis=0) / offset).astype(np.float32)
    expected = funasr_frame_probs(fm, mean[None])[0]
    np.testing.assert_allclose(res.probabilities, expected, rtol=0, atol=1e-5)
