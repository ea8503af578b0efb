"""Long recordings: one utterance result per speech segment (or fixed window) on a timeline.

Two passes over the audio, each streamed: the first counts the samples, runs the VAD and (when
asked) writes the 16 kHz audio to a WAV file; the second cuts the segments out and runs them
through the engine in batches. Memory stays bounded whatever the length.

The file-level `probabilities` of a segmented result are the duration-weighted mean of the
segments' probabilities (speech only), not one pass of the model over the whole file.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import Audio, AudioInfo, AudioStream, is_array_input, load_audio
from .constants import LABEL_BY_KEY, SAMPLE_RATE
from .engine import Engine
from .errors import AudioError, EmotionAppError
from .results import rounded
from .segmenter import SegmentOptions, VadScanner, cut_spans, tighten, vad_spans, window_spans

BLOCK = SAMPLE_RATE  # in-memory audio is handed out in 1 s blocks
GROUP_SAMPLES = 120 * SAMPLE_RATE  # segments sent to the engine at once (about 2 min of audio)

Progress = Callable[[float, str], None]


class Reopenable:
    """A source that can be read twice, block by block (files are decoded twice, never held)."""

    def __init__(self, source, name: str | None, max_duration_s: float):
        self.name, self.max_duration_s = name, max_duration_s
        self.audio: Audio | None = None
        if isinstance(source, Audio) or is_array_input(source):
            self.audio = load_audio(source, max_duration_s=max_duration_s, name=name)
        elif hasattr(source, "read"):
            source = source.read()
        self.source = source
        self.info, self.warnings, self.declared_s = None, [], None

    @contextmanager
    def open(self):
        if self.audio is not None:
            self.info, self.warnings = self.audio.info, self.audio.warnings
            self.declared_s = self.audio.duration_s
            x = self.audio.samples
            yield (x[i : i + BLOCK] for i in range(0, len(x), BLOCK))
            return
        src = io.BytesIO(self.source) if isinstance(self.source, (bytes, bytearray)) else self.source
        with AudioStream(src, max_duration_s=self.max_duration_s, name=self.name) as stream:
            self.declared_s = stream.declared_s
            yield stream
            self.info, self.warnings = stream.info, stream.warnings


def _record(span, res) -> dict:
    a, b = span
    return {
        "start": round(a / SAMPLE_RATE, 3),
        "end": round(b / SAMPLE_RATE, 3),
        "emotion": res.emotion,
        "confidence": round(res.confidence, 4),
        "scores": res.scores(),
        "probabilities": {k: float(p) for k, p in zip(res.labels, res.probabilities)},
    }


def summarize(segments: list[dict], labels, duration_s: float) -> dict:
    """Share of speech time per emotion, transitions between consecutive segments, coverage."""
    dur = np.array([s["end"] - s["start"] for s in segments], dtype=np.float64)
    speech = float(dur.sum())
    share = Counter()
    for s, d in zip(segments, dur):
        share[s["emotion"]] += d
    transitions = Counter(
        f"{a['emotion']}->{b['emotion']}" for a, b in zip(segments, segments[1:]) if a["emotion"] != b["emotion"]
    )
    return {
        "num_segments": len(segments),
        "speech_s": round(speech, 3),
        "coverage": round(speech / duration_s, 4) if duration_s else 0.0,
        "share": {k: round(float(share[k] / speech), 4) if speech else 0.0 for k in labels},
        "transitions": dict(transitions.most_common()),
        "changes_per_minute": round(sum(transitions.values()) / (duration_s / 60), 3) if duration_s else 0.0,
    }


@dataclass
class Scan:
    total: int  # samples at 16 kHz
    info: AudioInfo
    warnings: list
    vad: np.ndarray | None  # speech probability per 512-sample frame


def analyze_long(
    engine: Engine,
    source,
    options: SegmentOptions,
    *,
    name: str | None = None,
    progress: Progress | None = None,
    audio_out: Path | None = None,
) -> dict:
    """Segment `source` and predict each segment; returns the result.json dict (no frames).
    `audio_out`: where to write the 16 kHz mono audio (streamed); `progress(fraction, stage)`."""
    t0 = time.perf_counter()
    step = progress or (lambda fraction, stage: None)
    src = Reopenable(source, name, engine.options.max_duration_s)
    if options.mode == "none":
        if audio_out is not None:
            _scan(src, False, step, audio_out)
        res = engine.predict(src.audio if src.audio is not None else src.source, name=name)
        spans, results = [(0, int(round(res.duration_s * SAMPLE_RATE)))], [res]
        info, warnings = res.audio, list(res.warnings)
    else:
        scan = _scan(src, options.mode == "vad", step, audio_out)
        spans = vad_spans(scan.vad, scan.total, options) if scan.vad is not None else window_spans(scan.total, options)
        spans, results = _predict_spans(engine, src, spans, step, options if scan.vad is not None else None)
        info, warnings = scan.info, list(scan.warnings)
    segments = [_record(sp, r) for sp, r in zip(spans, results)]
    warns = [{"code": w.code, "message": w.message} for w in warnings]
    if not segments:
        warns.append({"code": "no_speech", "message": "No speech was found; try a lower VAD threshold or fixed windows."})
    labels = engine.labels
    out = {"file": info.source, "emotion": None, "label_zh": None, "emoji": None, "confidence": None, "scores": {}}
    out["probabilities"] = {}
    if segments:
        dur = np.array([s["end"] - s["start"] for s in segments])
        probs = (np.array([[s["probabilities"][k] for k in labels] for s in segments]) * dur[:, None]).sum(0) / dur.sum()
        top = int(probs.argmax())
        label = LABEL_BY_KEY.get(labels[top])
        out.update(
            emotion=labels[top],
            label_zh=label.zh if label else labels[top],
            emoji=label.emoji if label else "",
            confidence=round(float(probs[top]), 4),
            scores=rounded(probs, labels),
            probabilities={k: float(p) for k, p in zip(labels, probs)},
        )
    step(1.0, "done")
    return out | {
        "granularity": "segments",
        "segmentation": options.to_dict(),
        "duration_s": round(info.duration_s, 3),
        "audio": info.to_dict(),
        "warnings": warns,
        "model": engine.info,
        "segments": segments,
        "summary": summarize(segments, labels, info.duration_s),
        "timings": {"total": round(time.perf_counter() - t0, 4)},
    }


def _scan(src: Reopenable, vad: bool, step: Progress, audio_out: Path | None) -> Scan:
    """Pass 1: count the samples, run the VAD, write the 16 kHz audio."""
    import soundfile as sf

    scanner = VadScanner() if vad else None
    total = 0
    writer = sf.SoundFile(audio_out, "w", SAMPLE_RATE, 1, "PCM_16") if audio_out is not None else nullcontext()
    with writer as out, src.open() as blocks:
        for block in blocks:
            total += len(block)
            if scanner is not None:
                scanner.feed(block)
            if audio_out is not None:
                out.write(block)
            if src.declared_s:
                step(min(0.3, 0.3 * total / SAMPLE_RATE / src.declared_s), "voice activity")
    return Scan(total, src.info, src.warnings, scanner.finish() if scanner is not None else None)


def _predict_spans(engine: Engine, src: Reopenable, spans, step: Progress, vad: SegmentOptions | None):
    """Pass 2: the spans' samples in groups through the engine, in span order. VAD spans lose their
    quiet edges first (`tighten`). Returns (the spans used, results)."""
    used: list[tuple[int, int]] = []
    results: list = []
    group: list[np.ndarray] = []
    pad = int((vad.speech_pad_s if vad else 0) * SAMPLE_RATE)

    def run():
        outs = engine.predict_batch([(SAMPLE_RATE, x) for x in group], "utterance", errors="return")
        for r in outs:
            if isinstance(r, EmotionAppError):
                raise AudioError(f"{src.name or 'audio'}: a segment could not be analysed: {r.message}", r.code)
        results.extend(outs)
        group.clear()
        step(0.3 + 0.7 * len(results) / max(1, len(spans)), "segments")

    with src.open() as blocks:
        for (a, b), samples in cut_spans(blocks, spans):
            if vad is not None:
                lo, hi = tighten(samples, pad)
                samples, a, b = samples[lo:hi], a + lo, a + hi
            used.append((a, b))
            group.append(samples)
            if sum(len(x) for x in group) >= GROUP_SAMPLES:
                run()
        if group:
            run()
    return used, results
