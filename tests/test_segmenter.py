"""Segmentation of long recordings: fixed windows, streaming cuts, options, the VAD's per-scan models."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from emotion_app.audio.segmenter import SegmentOptions, VadScanner, cut_spans, vad_model, window_spans


@pytest.mark.parametrize("total_s, window, hop", [(95.0, 10, 10), (100.0, 10, 10), (101.0, 10, 10), (33.3, 10, 5), (4.0, 10, 10)])
def test_fixed_windows_cover_the_file_exactly(total_s, window, hop):
    total = int(total_s * 16000)
    spans = window_spans(total, SegmentOptions("window", window_s=window, hop_s=hop))
    assert spans[0][0] == 0 and spans[-1][1] == total
    assert all(b > a for a, b in spans)
    assert all(nxt[0] <= cur[1] for cur, nxt in zip(spans, spans[1:]))  # no gaps
    if hop == window:
        assert all(nxt[0] == cur[1] for cur, nxt in zip(spans, spans[1:]))  # no overlap either
    assert all(b - a <= int(1.5 * window * 16000) for a, b in spans)  # a short tail joins the last window
    if total_s == 101.0:
        assert spans[-1] == (90 * 16000, total)  # 1 s tail merged


def test_cut_spans_streams_exact_samples():
    x = np.arange(100_000, dtype=np.float32)
    rng = np.random.default_rng(0)
    cuts = np.cumsum(rng.integers(1, 5000, 60))
    blocks = np.split(x, cuts[cuts < len(x)])
    spans = [(0, 10), (500, 30_000), (20_000, 25_000), (60_000, 99_000), (99_500, 120_000)]
    got = list(cut_spans(iter(blocks), spans))
    assert [sp for sp, _ in got] == [(0, 10), (500, 30_000), (20_000, 25_000), (60_000, 99_000), (99_500, 100_000)]
    for (a, b), samples in got:
        np.testing.assert_array_equal(samples, x[a:b])


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"mode": "silence"}, "one of vad, window, none"),
        ({"threshold": 1.0}, "VAD threshold must be from 0.05 to 0.95"),
        ({"max_segment_s": 0.5}, "maximum segment length must be from 1 to 600 s"),
        ({"window_s": 5, "hop_s": 8}, "must not exceed the window length"),
    ],
)
def test_segment_option_errors(kw, message):
    with pytest.raises(ValueError, match=message):
        SegmentOptions(**kw)


def test_each_scan_gets_its_own_vad_model():
    """Silero VAD keeps recurrent state in the model: concurrent scans never share one."""
    seen, barrier = [], threading.Barrier(3)

    def scan():
        with vad_model() as model:
            seen.append(id(model))
            barrier.wait(timeout=30)  # all three hold a model at once
            scanner = VadScanner(model)
            scanner.feed(np.zeros(16000, np.float32))
            assert len(scanner.finish()) == 32

    threads = [threading.Thread(target=scan) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 3
    speech = np.sin(np.arange(16000 * 2) / 16000 * 2 * np.pi * 180).astype(np.float32) * 0.3
    readings = []
    for _ in range(2):  # a returned model is reset: the same audio reads the same in the next scan
        with vad_model() as model:
            readings.append(model(speech[: 512 * 60]))
    assert readings[0] == readings[1]


@pytest.mark.parametrize("seed", range(12))
def test_speech_spans_follow_silero_rules_exactly(seed):
    """Our re-implementation of Silero's span rules (no torch needed) gives its spans exactly."""
    from silero_vad import get_speech_timestamps_from_probs

    from emotion_app.audio.vad import speech_spans

    rng = np.random.default_rng(seed)
    # runs of speech and pause frames with noisy probabilities, some runs longer than max_segment_s
    runs = [(rng.random() < 0.5, int(rng.integers(1, 400 if seed % 3 == 0 else 60))) for _ in range(40)]
    probs = np.concatenate([np.clip(rng.normal(0.85 if s else 0.1, 0.2, n), 0, 1) for s, n in runs])
    total = len(probs) * 512 - int(rng.integers(0, 512))
    opts = dict(threshold=[0.3, 0.5, 0.7][seed % 3], min_speech_s=0.25, max_segment_s=[5.0, 10.0, 30.0][seed % 3])
    opts.update(min_silence_s=[0.1, 0.3, 0.6][seed % 3], speech_pad_s=[0.0, 0.03, 0.2][seed % 3])
    ours = speech_spans(probs, total, **opts)
    theirs = get_speech_timestamps_from_probs(
        list(map(float, probs)), sampling_rate=16000, threshold=opts["threshold"],
        min_speech_duration_ms=int(opts["min_speech_s"] * 1000), max_speech_duration_s=opts["max_segment_s"],
        min_silence_duration_ms=int(opts["min_silence_s"] * 1000), speech_pad_ms=int(opts["speech_pad_s"] * 1000),
        audio_length_samples=total,
    )  # fmt: skip
    assert ours == [(s["start"], s["end"]) for s in theirs] and len(ours) > 3
