"""Long recordings: one utterance result per speech segment (or fixed window) on a timeline, and
conversations: the same segments with who speaks.

Two passes over the audio, each streamed: the first counts the samples, runs the VAD and (when
asked) writes the 16 kHz audio to a WAV file; the second cuts the segments out and runs them
through the engine in batches. Memory stays bounded whatever the length. Returns a
`RecordingResult` (results.py), whose file-level probabilities are the duration-weighted mean of
the segments' probabilities.

Who speaks (`speakers`, speakers/options.py):
- channels: pass 1 reads every channel, runs one VAD per channel and measures each channel's level;
  speech a channel carries 20 dB or more below the loudest channel is bleed from another party and
  dropped (speakers/channels.py); each segment is scored on its own channel's audio, and the
  processed audio keeps the channels.
- auto or N: between the passes, a pass over the VAD segments gives CAM++ embeddings of 1.5 s
  windows; they are clustered into speakers and each segment is cut where its speaker changes
  (speakers/diarize.py); the pass that scores emotions then reads those turns.
- turns: the segments are the turns of a transcript or a diarization file, with their speakers and
  text; pass 1 only counts and writes the audio.

`analyze_long` is four steps, each public for the Ray batch (ray_stages.py), which runs the first
two on decode CPUs and the last two on the model's actors: `plan` (pass 1 and the segments, with who
speaks), `cut_segments` (pass 2's reading), `score_segments` (the engine) and `recording_result`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio.samples import AudioInfo, AudioWarning
from .audio.segmenter import SegmentOptions, VadScanner, cut_spans, tighten, vad_model, vad_spans, window_spans
from .audio.source import Source, open_source
from .constants import RECEPTIVE_FIELD, SAMPLE_RATE
from .engine import Engine
from .errors import AudioError, EmotionAppError
from .fields import OptionError
from .labelset import LabelSet
from .results import RecordingResult
from .speakers.channels import ChannelLevels, bleed, is_bleed
from .speakers.cluster import cluster_speakers
from .speakers.diarize import Window, turns_of
from .speakers.model import SHIFT_S, WINDOW_S, window_ranges
from .speakers.options import SpeakerOptions
from .speakers.turns import TurnsFile

GROUP_SAMPLES = 120 * SAMPLE_RATE  # segments sent to the engine at once (about 2 min of audio)
EMBED_BATCH = 16  # CAM++ windows per forward pass (24 s of audio: about 100 MB of activations)
NO_SPEECH = AudioWarning("no_speech", "No speech was found; try a lower VAD threshold or fixed windows.")

Progress = Callable[[float, str], None]


@dataclass
class Scan:
    total: int  # samples at 16 kHz
    info: AudioInfo
    warnings: list
    vad: np.ndarray | None  # speech probability per 512-sample frame


@dataclass
class Plan:
    """The segments to score, sorted by start, with who speaks in each (conversations)."""

    spans: list[tuple[int, int]]  # samples at 16 kHz
    tighten: SegmentOptions | None = None  # VAD spans: their quiet edges are trimmed when cut
    channels: list[int] | None = None  # speakers=channels: the channel (from 0) each segment is cut from
    speakers: list[str | None] | None = None
    texts: list[str | None] | None = None
    diarization: dict | None = None


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
    speakers: SpeakerOptions | None = None,
    turns: TurnsFile | None = None,
    labels: LabelSet | None = None,
) -> RecordingResult:
    """Segment `source` (anything open_source accepts) and predict each segment.
    `audio_out`: where to write the 16 kHz audio (streamed; the channels kept with speakers=channels);
    `progress(fraction, stage)`; `extract_embedding`: keep each segment's mean feature
    (RecordingResult.embedding, (S, D)); `heads`: the custom heads that read each segment (as in
    Engine.predict_batch); `speakers`, `turns`: who speaks (see the module docstring); `labels`: the
    label set of every result (labelset.py)."""
    t0 = time.perf_counter()
    step = progress or _quiet
    src = open_source(source, max_duration_s=engine.options.max_duration_s, name=name)
    scan, planned = plan(src, options, speakers, turns, step, audio_out, engine.vad_file)
    if speakers is not None and speakers.diarize:
        planned = diarize(engine, src, planned, speakers, step)
    pieces = cut_segments(src, planned.spans, planned.tighten, planned.channels)
    first = 0.45 if speakers is not None and speakers.diarize else 0.3
    used, results = score_segments(engine, pieces, len(planned.spans), src.name, step, extract_embedding, heads, first, labels)
    step(1.0, "done")
    return recording_result(engine, options, scan, used, results, time.perf_counter() - t0, planned, labels)


def _quiet(fraction: float, stage: str) -> None:
    pass


def plan(
    src: Source,
    options: SegmentOptions,
    speakers: SpeakerOptions | None = None,
    turns: TurnsFile | None = None,
    step: Progress = _quiet,
    audio_out: Path | None = None,
    vad_file: Path | None = None,
) -> tuple[Scan, Plan]:
    """Pass 1 and the segments it gives, with who speaks when the channels or the turns say so
    (diarization comes after: `diarize`)."""
    if speakers is not None and speakers.mode == "channels":
        return _plan_channels(src, options, speakers, step, audio_out, vad_file)
    if speakers is not None and speakers.mode == "turns":
        scan = _scan(src, False, step, audio_out, None)
        return scan, _plan_turns(turns, speakers, scan.total, Path(src.name or "").stem)
    scan, spans, vad = plan_spans(src, options, step, audio_out, vad_file)
    return scan, Plan(spans, vad)


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
    engine: Engine,
    options: SegmentOptions,
    scan: Scan,
    spans: list[tuple[int, int]],
    results: list,
    seconds: float,
    planned: Plan | None = None,
    labels: LabelSet | None = None,
) -> RecordingResult:
    """The RecordingResult of scored spans (a `no_speech` warning when there are none), with who
    speaks in each when `planned` says."""
    names = {"speakers": None, "channels": None, "texts": None, "diarization": None}
    if planned is not None and planned.speakers is not None:
        channels = [c + 1 for c in planned.channels] if planned.channels is not None else None
        names = {"speakers": planned.speakers, "channels": channels, "texts": planned.texts, "diarization": planned.diarization}
    return RecordingResult(
        labels=labels.keys if labels is not None else engine.labels,
        spans=spans,
        results=results,
        segmentation=options.to_dict(),
        audio=scan.info,
        warnings=list(scan.warnings) + ([] if results else [NO_SPEECH]),
        timings={"total": seconds},
        model=engine.model_info,
        label_set=labels.keys if labels is not None else None,
        **names,
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


def cut_segments(
    src: Source, spans, vad: SegmentOptions | None, channels: list[int] | None = None
) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
    """Pass 2's reading: (span, samples) in span order (spans sorted by start), streamed; VAD spans
    lose their quiet edges first (`tighten`), so the span given is the one used. `channels`: the
    channel each span is cut from (the input's channels are read then), else the mono downmix."""
    pad = int((vad.speech_pad_s if vad else 0) * SAMPLE_RATE)
    with src.blocks(channels=channels is not None) as blocks:
        for k, ((a, b), samples) in enumerate(cut_spans(blocks, spans)):
            if channels is not None:
                samples = np.ascontiguousarray(samples[:, channels[k]])
            if vad is not None:
                lo, hi = tighten(samples, pad)
                samples, a, b = samples[lo:hi], int(a + lo), int(a + hi)
            yield (a, b), samples


def score_segments(
    engine: Engine,
    pieces,
    count: int,
    name: str | None,
    step: Progress = _quiet,
    embedding: bool = False,
    heads=None,
    first: float = 0.3,
    labels: LabelSet | None = None,
) -> tuple[list[tuple[int, int]], list]:
    """Pass 2's scoring: `pieces` ((span, samples), `count` of them) through the engine in groups of
    about GROUP_SAMPLES, in order. Returns (spans, results); a segment that fails fails the file.
    Progress runs from `first` to 1."""
    used: list[tuple[int, int]] = []
    results: list = []
    group: list[np.ndarray] = []

    def run():
        outs = engine.predict_batch(
            [(SAMPLE_RATE, x) for x in group], extract_embedding=embedding, errors="return", heads=heads, labels=labels
        )
        for r in outs:
            if isinstance(r, EmotionAppError):
                raise AudioError(f"{name or 'audio'}: a segment could not be analysed: {r.message}", r.code)
        results.extend(outs)
        group.clear()
        step(first + (1 - first) * len(results) / max(1, count), f"segments {len(results)}/{count}")

    step(first, f"segments 0/{count}")  # the stage's text carries the count done, for the page
    for span, samples in pieces:
        used.append(span)
        group.append(samples)
        if sum(len(x) for x in group) >= GROUP_SAMPLES:
            run()
    if group:
        run()
    return used, results


# -- who speaks -------------------------------------------------------------------------------------
def _plan_channels(
    src: Source, options: SegmentOptions, speakers: SpeakerOptions, step: Progress, audio_out: Path | None, vad_file
) -> tuple[Scan, Plan]:
    """Pass 1 over every channel: one VAD per channel, the channels' levels, the audio written with
    its channels; then each channel's speech without the other channels' bleed."""
    import soundfile as sf

    count = src.probe().channels
    if count < 2:
        raise AudioError(
            f"{src.name}: speakers=channels needs a recording with one speaker per channel, and this one has 1 "
            "channel. For a mono recording use speakers=auto (or the number of speakers), or a turns file.",
            "mono",
        )
    if len(speakers.names) > count:
        raise OptionError(f"{len(speakers.names)} names for {count} channels: give at most one name per channel.")
    total, levels = 0, ChannelLevels()
    with ExitStack() as stack:
        models = [stack.enter_context(vad_model(vad_file)) for _ in range(count)]
        scanners = [VadScanner(m) for m in models]
        out = stack.enter_context(sf.SoundFile(audio_out, "w", SAMPLE_RATE, count, "PCM_16")) if audio_out is not None else None
        blocks = stack.enter_context(src.blocks(channels=True))
        for block in blocks:
            total += len(block)
            for c, scanner in enumerate(scanners):
                scanner.feed(np.ascontiguousarray(block[:, c]))
            levels.feed(block)
            if out is not None:
                out.write(block)
            if src.declared_s:
                step(min(0.3, 0.3 * total / SAMPLE_RATE / src.declared_s), "voice activity")
        probs = [scanner.finish() for scanner in scanners]
    heard = levels.levels()
    dropped = bleed(heard)
    found = []
    for c, p in enumerate(probs):
        p = p.copy()
        mask = dropped[: len(p), c]
        p[: len(mask)][mask] = 0.0  # another channel's voice, heard faintly here
        found += [(a, b, c) for a, b in vad_spans(p, total, options) if not is_bleed(heard, c, (a, b))]
    found.sort()
    spans = [(a, b) for a, b, _ in found]
    channels = [c for _, _, c in found]
    names = [speakers.name(c) for c in channels]
    how = {"mode": "channels", "speakers": [speakers.name(c) for c in range(count)], "channels": count}
    return Scan(total, src.info, src.warnings, None), Plan(spans, options, channels, names, None, how)


def _plan_turns(turns: TurnsFile, speakers: SpeakerOptions, total: int, recording: str) -> Plan:
    """The turns as segments (checked against the recording's length now that it is known; an RTTM
    of several recordings gives those of `recording`, the audio's name without its extension)."""
    given = turns.read(duration_s=total / SAMPLE_RATE, recording=recording)
    spans, names, texts = [], [], []
    first_seen: dict[str, int] = {}
    for t in given:
        a, b = int(round(t.start * SAMPLE_RATE)), min(int(round(t.end * SAMPLE_RATE)), total)
        if b - a < RECEPTIVE_FIELD:  # under 25 ms: nothing the model can read
            continue
        spans.append((a, b))
        who = t.speaker
        if who is not None and speakers.names:  # names rename the file's speakers in order of appearance
            who = speakers.name(first_seen.setdefault(who, len(first_seen)), who)
        names.append(who)
        texts.append(t.text)
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    how = {"mode": "turns", "file": turns.name, "speakers": sorted({n for n in names if n is not None})}
    return Plan([spans[i] for i in order], None, None, [names[i] for i in order], [texts[i] for i in order], how)


def diarize(engine: Engine, src: Source, planned: Plan, speakers: SpeakerOptions, step: Progress = _quiet) -> Plan:
    """The pass between the two: the (trimmed) VAD segments read once more for `speaker_turns`."""
    return speaker_turns(engine, cut_segments(src, planned.spans, planned.tighten), len(planned.spans), speakers, step)


def speaker_turns(engine: Engine, pieces, count: int, speakers: SpeakerOptions, step: Progress = _quiet) -> Plan:
    """Who speaks when in `pieces` ((span, samples) of the speech segments, `count` of them): CAM++
    embeddings of 1.5 s windows, clustered into speakers; each segment cut where its speaker changes
    (speakers/diarize.py). The plan's spans lie inside the pieces' spans."""
    model = engine.speaker_model()
    window, shift = int(WINDOW_S * SAMPLE_RATE), int(SHIFT_S * SAMPLE_RATE)
    spans: list[tuple[int, int]] = []
    windows: list[Window] = []
    batch: list[np.ndarray] = []
    embedded: list[np.ndarray] = []
    for k, ((a, b), samples) in enumerate(pieces):
        spans.append((a, b))
        for wa, wb in window_ranges(len(samples), window, shift):
            windows.append(Window(k, a + wa, a + wb))
            batch.append(np.pad(samples[wa:wb], (0, window - (wb - wa))))
        if len(batch) >= EMBED_BATCH:
            embedded.append(model.embed_batch(batch))
            batch = []
        step(0.3 + 0.15 * (k + 1) / max(1, count), "speakers")
    if batch:
        embedded.append(model.embed_batch(batch))
    if not windows:
        return Plan([], None, None, [], None, {"mode": speakers.mode, "speakers": [], "model": model.model_id})
    labels = cluster_speakers(np.concatenate(embedded), speakers.count)
    turns = turns_of(spans, windows, labels)
    found = max(who for _, _, who in turns) + 1
    how = {"mode": speakers.mode, "speakers": [speakers.name(i) for i in range(found)], "model": model.model_id}
    return Plan([(a, b) for a, b, _ in turns], None, None, [speakers.name(who) for _, _, who in turns], None, how)


def sliced(pieces: list[tuple[tuple[int, int], np.ndarray]], spans: list[tuple[int, int]]):
    """(span, samples) of each of `spans` cut from the in-memory `pieces` that hold them (the Ray
    batch's actors, which have the segments and not the file)."""
    k = 0
    for a, b in spans:  # both in time order
        while not (pieces[k][0][0] <= a and b <= pieces[k][0][1]):
            k += 1
        (pa, _), samples = pieces[k]
        yield (a, b), samples[a - pa : b - pa]
