"""Command line: `python -m emotion_app predict FILE...`, `batch PATH...` and `make-checkpoint DIR`.

Only argparse is imported up front, so `--help` is instant; torch loads when a command runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .constants import DEFAULT_MODEL
from .constants import SMOOTHING_METHODS as METHODS

logger = logging.getLogger("emotion_app.cli")


def _analysis_options(args):
    """AnalysisOptions from the flags; None (after printing why) when a value is out of range."""
    from .timeline import AnalysisOptions

    try:
        return AnalysisOptions.make(
            args.smoothing, args.window, args.alpha, not args.causal, args.min_duration, args.mixed_threshold, charts=False
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _engine(args):
    """The engine for the model flags; None (after printing why) when the model cannot be loaded."""
    from .engine import Engine
    from .errors import EmotionAppError

    try:
        return Engine(model=args.model, hub=args.hub, device=args.device, dtype=args.dtype, batch_size=args.batch_size)
    except EmotionAppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _predict(args) -> int:
    from .errors import EmotionAppError
    from .timeline import add_to_result

    options = _analysis_options(args)
    if options is None:
        return 2
    engine = _engine(args)
    if engine is None:
        return 2
    failed = 0
    results = engine.predict_batch(args.files, args.granularity, args.embedding, errors="return", names=args.files)
    for path, res in zip(args.files, results):
        if isinstance(res, EmotionAppError):
            failed += 1
            msg = str(res) if str(res).startswith(path) else f"{path}: {res}"
            print(f"error: {msg}", file=sys.stderr)
            continue
        out = res.to_dict()
        out["file"] = path
        add_to_result(out, res, options)
        if args.json:
            print(json.dumps(out, ensure_ascii=False), flush=True)
        else:
            lab = res.label
            warn = "".join(f"  [{w.message}]" for w in res.warnings)
            print(f"{path}: {lab.emoji} {res.emotion} ({lab.zh}) {res.confidence:.1%}  {res.duration_s:.1f} s{warn}", flush=True)
    return 1 if failed else 0


def _segment_options(args):
    from .segmenter import SegmentOptions

    if args.segment == "none":
        return None
    try:
        return SegmentOptions(
            args.segment,
            threshold=args.vad_threshold,
            min_speech_s=args.min_speech,
            min_silence_s=args.min_silence,
            max_segment_s=args.max_segment,
            window_s=args.window_s,
            hop_s=args.hop_s or args.window_s,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False


def _batch(args) -> int:
    import tempfile
    import time
    from collections import Counter

    from tqdm import tqdm

    from .batch import BatchOptions, ResultsWriter, collect_inputs, input_names, iter_batch
    from .errors import EmotionAppError

    analysis = _analysis_options(args)
    segment = _segment_options(args)
    if analysis is None or segment is False:
        return 2
    with tempfile.TemporaryDirectory(prefix="emotion_app_zip_") as tmp:
        try:
            files = collect_inputs(args.paths, args.recursive, Path(tmp))
        except EmotionAppError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        writer = ResultsWriter(Path(args.out), args.format, args.overwrite)
        names = input_names(files, Path(tmp), absolute=True)
        todo = [i for i, n in enumerate(names) if n not in writer.done]
        skipped = len(files) - len(todo)
        if not todo:
            print(f"{len(files)} files, all done already in {writer.path} (--overwrite to redo)", file=sys.stderr)
            writer.close()
            return 0
        engine = _engine(args)
        if engine is None:
            writer.close()
            return 2
        options = BatchOptions(args.granularity, segment, analysis, group=max(8, 8 * engine.batch_size))
        t0, failed, audio_s, emotions = time.perf_counter(), 0, 0.0, Counter()
        with tqdm(total=len(todo), unit="file", file=sys.stderr, disable=None) as bar:
            stream = iter_batch(engine, [files[i] for i in todo], options, [names[i] for i in todo], bar.update)
            for j, result, error in stream:
                writer.write(names[todo[j]], result, error)
                if error:
                    failed += 1
                    tqdm.write(f"error: {error}", file=sys.stderr)
                else:
                    audio_s += result["duration_s"]
                    emotions[result["emotion"]] += 1
        writer.close()
    wall = time.perf_counter() - t0
    top = ", ".join(f"{k} {n}" for k, n in emotions.most_common())
    print(
        f"{len(todo) - failed} done, {failed} failed, {skipped} skipped (already done) -> {writer.path}\n"
        f"{audio_s:.1f} s of audio in {wall:.1f} s ({audio_s / max(wall, 1e-9):.1f}x real time); {top}",
        file=sys.stderr,
    )
    return 1 if failed else 0


def _make_checkpoint(args) -> int:
    from .random_checkpoint import build_random_checkpoint

    path = build_random_checkpoint(args.dir, args.preset, seed=args.seed, training_state=args.training_state)
    print(path)
    return 0


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="hub id, alias (emotion2vec_plus_large|base|seed) or local folder (default: %(default)s)",
    )
    p.add_argument("--hub", choices=["ms", "hf"], default="ms", help="ModelScope or Hugging Face (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32", help="fp16/bf16 on CUDA only")
    p.add_argument("--batch-size", type=int, default=0, help="inputs per model call (default: 4 on CPU, 16 on CUDA)")


def add_analysis_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--granularity", choices=["utterance", "frame"], default="utterance", help="frame adds 50 Hz per-frame scores")
    g = p.add_argument_group("frame analysis (granularity frame: segments and summary)")
    g.add_argument("--smoothing", choices=METHODS, default="moving_average", help="(default: %(default)s)")
    g.add_argument("--window", type=int, default=11, help="frames, odd, 3-51 (default: %(default)s = 220 ms)")
    g.add_argument("--alpha", type=float, default=0.2, help="EWMA weight of the new frame, (0, 1] (default: %(default)s)")
    g.add_argument("--causal", action="store_true", help="EWMA forward only (default: zero-phase, no time shift)")
    g.add_argument("--min-duration", type=float, default=0.2, help="shortest segment in s (default: %(default)s)")
    g.add_argument("--mixed-threshold", type=float, default=0.1, help="top-two margin for a mixed reading (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emotion_app", description="Speech emotion recognition with emotion2vec+.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="predict the emotion of audio files (one result per file)")
    p.add_argument(
        "files", nargs="+", metavar="FILE", help="audio or video files (WAV, MP3, M4A, FLAC, OGG, OPUS, WEBM, MP4, ...)"
    )
    add_model_args(p)
    add_analysis_args(p)
    p.add_argument("--embedding", action="store_true", help="also compute embeddings (not printed; Python API)")
    p.add_argument("--json", action="store_true", help="print one JSON object per file")
    p.set_defaults(func=_predict)

    b = sub.add_parser("batch", help="analyse many files (folders, zips) into a results table; resumable")
    b.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or zip archives")
    b.add_argument("--recursive", action="store_true", help="include subfolders")
    b.add_argument("--out", default="batch_results", help="output folder (default: %(default)s)")
    b.add_argument("--format", choices=["csv", "jsonl"], default="csv", help="results table (default: %(default)s)")
    b.add_argument("--overwrite", action="store_true", help="redo files already done in --out")
    add_model_args(b)
    add_analysis_args(b)
    s = b.add_argument_group("segmentation of long recordings (per-utterance results)")
    s.add_argument("--segment", choices=["vad", "window", "none"], default="none", help="(default: %(default)s)")
    s.add_argument("--vad-threshold", type=float, default=0.5, help="speech probability (default: %(default)s)")
    s.add_argument("--min-speech", type=float, default=0.25, help="shortest speech in s (default: %(default)s)")
    s.add_argument("--min-silence", type=float, default=0.3, help="shortest pause that splits, s (default: %(default)s)")
    s.add_argument("--max-segment", type=float, default=30.0, help="longer speech is split, s (default: %(default)s)")
    s.add_argument("--window-s", type=float, default=10.0, help="fixed window length, s (default: %(default)s)")
    s.add_argument("--hop-s", type=float, default=0.0, help="fixed window hop, s (default: the window length)")
    b.set_defaults(func=_batch)

    m = sub.add_parser("make-checkpoint", help="write a random-weight model folder in the hub layout (tests, benchmarks)")
    m.add_argument("dir")
    m.add_argument("--preset", choices=["tiny", "tiny_large", "plus_base", "plus_large"], default="tiny")
    m.add_argument("--training-state", action="store_true", help="add optimizer state as in the real 1.95 GB file")
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(func=_make_checkpoint)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)
