"""Long recordings: one utterance result per speech segment (or fixed window) on a timeline.

Two passes over the audio, each streamed: the first counts the samples, runs the VAD and (when
asked) writes the 16 kHz audio to a WAV file; the second cuts the segments out and runs them
through the engine in batches. Memory stays bounded whatever the length. Returns a
`RecordingResult` (results.py), whose file-level probabilities are the duration-weighted mean of
the segments' probabilities.

`analyze_long` is four steps, each public for the Ray batch (ray_stages.py), which runs the first
two on decode CPUs and the last two on the model's actors: `plan_spans` (pass 1 and the spans),
`cut_segments` (pass 2's reading), `score_segments` (the engine) and `recording_result`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio.samples import AudioInfo, AudioWarning
from .audio.segmenter import SegmentOptions, VadScanner, cut_spans, tighten, vad_model, vad_spans, window_spans
from .audio.source import Source, open_source
from .constants import SAMPLE_RATE
from .engine import Engine
from .errors import AudioError, EmotionAppError
from .results import RecordingResult

GROUP_SAMPLES = 120 * SAMPLE_RATE  # segments sent to the engine at once (about 2 min of audio)
NO_SPEECH = AudioWarning("no_speech", "No speech was found; try a lower VAD threshold or fixed windows.")

Progress = Callable[[float, str], None]


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
    extract_embedding: bool = False,
    heads=None,
) -> RecordingResult:
    """Segment `source` (anything open_source accepts) and predict each segment.
    `audio_out`: where to write the 16 kHz mono audio (streamed); `progress(fraction, stage)`;
    `extract_embedding`: keep each segment's mean feature (RecordingResult.embedding, (S, D));
    `heads`: the custom heads that read each segment (as in Engine.predict_batch)."""
    t0 = time.perf_counter()
    step = progress or _quiet
    src = open_source(source, max_duration_s=engine.options.max_duration_s, name=name)
    scan, spans, vad = plan_spans(src, options, step, audio_out, engine.vad_file)
    pieces = cut_segments(src, spans, vad)
    used, results = score_segments(engine, pieces, len(spans), src.name, step, extract_embedding, heads=heads)
    step(1.0, "done")
    return recording_result(engine, options, scan, used, results, time.perf_counter() - t0)


def _quiet(fraction: float, stage: str) -> None:
    pass


def plan_spans(
    src: Source, options: SegmentOptions, step: Progress = _quiet, audio_out: Path | None = None, vad_file: Path | None = None
) -> tuple[Scan, list[tuple[int, int]], SegmentOptions | None]:
    """Pass 1 and the spans it gives: (scan, spans in samples, the options when the spans are VAD
    spans, whose quiet edges cut_segments trims; else None)."""
    if options.mode == "none":
        scan = _scan(src, False, step, audio_out, None)
        return scan, [(0, scan.total)], None
    scan = _scan(src, options.mode == "vad", step, audio_out, vad_file)
    if scan.vad is None:
        return scan, window_spans(scan.total, options), None
    return scan, vad_spans(scan.vad, scan.total, options), options


def recording_result(
    engine: Engine, options: SegmentOptions, scan: Scan, spans: list[tuple[int, int]], results: list, seconds: float
) -> RecordingResult:
    """The RecordingResult of scored spans (a `no_speech` warning when there are none)."""
    return RecordingResult(
        labels=engine.labels,
        spans=spans,
        results=results,
        segmentation=options.to_dict(),
        audio=scan.info,
        warnings=list(scan.warnings) + ([] if results else [NO_SPEECH]),
        timings={"total": seconds},
        model=engine.model_info,
    )


def _scan(src: Source, vad: bool, step: Progress, audio_out: Path | None, vad_file: Path | None) -> Scan:
    """Pass 1: count the samples, run the VAD (Silero's ONNX model from `vad_file`, else its
    TorchScript model), write the 16 kHz audio."""
    import soundfile as sf

    writer = sf.SoundFile(audio_out, "w", SAMPLE_RATE, 1, "PCM_16") if audio_out is not None else nullcontext()
    total = 0
    with vad_model(vad_file) if vad else nullcontext() as model, writer as out, src.blocks() as blocks:
        scanner = VadScanner(model) if vad else None
        for block in blocks:
            total += len(block)
            if scanner is not None:
                scanner.feed(block)
            if audio_out is not None:
                out.write(block)
            if src.declared_s:
                step(min(0.3, 0.3 * total / SAMPLE_RATE / src.declared_s), "voice activity")
        probs = scanner.finish() if scanner is not None else None
    return Scan(total, src.info, src.warnings, probs)


def cut_segments(src: Source, spans, vad: SegmentOptions | None) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
    """Pass 2's reading: (span, samples) in span order, streamed; VAD spans lose their quiet edges
    first (`tighten`), so the span given is the one used."""
    pad = int((vad.speech_pad_s if vad else 0) * SAMPLE_RATE)
    with src.blocks() as blocks:
        for (a, b), samples in cut_spans(blocks, spans):
            if vad is not None:
                lo, hi = tighten(samples, pad)
                samples, a, b = samples[lo:hi], a + lo, a + hi
            yield (a, b), samples


def score_segments(
    engine: Engine, pieces, count: int, name: str | None, step: Progress = _quiet, embedding: bool = False, heads=None
) -> tuple[list[tuple[int, int]], list]:
    """Pass 2's scoring: `pieces` ((span, samples), `count` of them) through the engine in groups of
    about GROUP_SAMPLES, in order. Returns (spans, results); a segment that fails fails the file."""
    used: list[tuple[int, int]] = []
    results: list = []
    group: list[np.ndarray] = []

    def run():
        outs = engine.predict_batch([(SAMPLE_RATE, x) for x in group], "utterance", embedding, errors="return", heads=heads)
        for r in outs:
            if isinstance(r, EmotionAppError):
                raise AudioError(f"{name or 'audio'}: a segment could not be analysed: {r.message}", r.code)
        results.extend(outs)
        group.clear()
        step(0.3 + 0.7 * len(results) / max(1, count), f"segments {len(results)}/{count}")

    step(0.3, f"segments 0/{count}")  # the stage's text carries the count done, for the page
    for span, samples in pieces:
        used.append(span)
        group.append(samples)
        if sum(len(x) for x in group) >= GROUP_SAMPLES:
            run()
    if group:
        run()
    return used, results
