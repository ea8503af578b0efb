"""Command line: `python -m emotion_app predict FILE...`, `batch PATH...`, `make-checkpoint DIR`, and
`evaluate DATA` / `train-head DATA --out HEAD_DIR` (heads/commands.py).

Only argparse is imported up front, so `--help` is instant; torch loads when a command runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..constants import DEFAULT_MODEL
from ..constants import SMOOTHING_METHODS as METHODS
from .heads import add_head_arg, add_head_commands

logger = logging.getLogger("emotion_app.cli")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _request(args):
    """RequestOptions from the flags (their dest names are the option fields); the CLI draws no charts."""
    from ..request import RequestOptions

    return RequestOptions.from_fields(vars(args), charts=False)


def _engine(args):
    """The engine for the model flags (raises ModelLoadError with the reason)."""
    from ..engine import Engine

    return Engine(
        model=args.model, hub=args.hub, device=args.device, dtype=args.dtype, backend=args.backend, batch_size=args.batch_size,
        heads=tuple(getattr(args, "head_dirs", None) or ()),
    )  # fmt: skip


def _human(report: dict) -> str:
    warn = "".join(f"  [{w['message']}]" for w in report["warnings"])
    if report["emotion"] is None:
        return f"{report['file']}: no speech found  {report['duration_s']:.1f} s{warn}"
    seg = f", {len(report['segments'])} segments" if report["granularity"] == "segments" else ""
    head = f"{report['emoji']} {report['emotion']} ({report['label_zh']}) {report['confidence']:.1%}"
    heads = "".join(f"  [{name}: {h['emotion']} {h['confidence']:.1%}]" for name, h in report.get("heads", {}).items())
    return f"{report['file']}: {head}{heads}  {report['duration_s']:.1f} s{seg}{warn}"


def _predict(args) -> int:
    from ..batch.inputs import BatchInput
    from ..batch.local import iter_batch
    from ..errors import EmotionAppError

    try:
        request = _request(args)
        engine = _engine(args)
    except EmotionAppError as exc:
        return _fail(exc.message)
    inputs = [BatchInput(path, path=Path(path)) for path in args.files]
    failed = 0
    for _, result, error in iter_batch(engine, inputs, request, group=max(8, 8 * engine.batch_size)):
        if error:
            failed += 1
            print(f"error: {error}", file=sys.stderr, flush=True)
        elif args.json:
            print(json.dumps(result, ensure_ascii=False), flush=True)
        else:
            print(_human(result), flush=True)
    return 1 if failed else 0


def _batch(args) -> int:
    if args.ray or args.ray_address:
        try:
            from ..batch.ray_pipeline import batch_command
        except ImportError as exc:
            return _fail(f"--ray needs Ray Data ({exc}); install it with: pip install -r requirements-ray.txt")
        return batch_command(args)
    import tempfile
    import time
    from collections import Counter

    from tqdm import tqdm

    from ..batch.inputs import Extractor, collect_inputs
    from ..batch.local import iter_batch
    from ..batch.tables import ResultsWriter, summary_text
    from ..errors import EmotionAppError

    try:
        request = _request(args)
    except EmotionAppError as exc:
        return _fail(exc.message)
    inputs = collect_inputs(args.paths, args.recursive, absolute=True)
    writer = ResultsWriter(Path(args.out), args.format, args.overwrite)
    todo = [item for item in inputs if item.name not in writer.done]
    skipped = len(inputs) - len(todo)
    if not todo:
        print(f"{len(inputs)} files, all done already in {writer.path} (--overwrite to redo)", file=sys.stderr)
        writer.close()
        return 0
    try:
        engine = _engine(args)
    except EmotionAppError as exc:
        writer.close()
        return _fail(exc.message)
    t0, failed, audio_s, emotions = time.perf_counter(), 0, 0.0, Counter()
    with (
        tempfile.TemporaryDirectory(prefix="emotion_app_zip_") as tmp,
        tqdm(total=len(todo), unit="file", file=sys.stderr, disable=None) as bar,
    ):
        stream = iter_batch(
            engine, todo, request, extractor=Extractor(Path(tmp)), progress=bar.update, group=max(8, 8 * engine.batch_size)
        )
        for j, result, error in stream:
            writer.write(todo[j].name, result, error)
            if error:
                failed += 1
                tqdm.write(f"error: {error}", file=sys.stderr)
            else:
                audio_s += result["duration_s"]
                emotions[result["emotion"]] += 1
    writer.close()
    wall = time.perf_counter() - t0
    print(summary_text(len(todo) - failed, failed, skipped, writer.path, audio_s, wall, emotions), file=sys.stderr)
    return 1 if failed else 0


def _make_checkpoint(args) -> int:
    from ..tools.random_checkpoint import build_random_checkpoint

    path = build_random_checkpoint(args.dir, args.preset, seed=args.seed, training_state=args.training_state)
    print(path)
    return 0


def _export_onnx(args) -> int:
    from ..errors import EmotionAppError
    from ..tools.onnx_export import export_onnx

    try:
        folder, diff = export_onnx(
            args.model, args.out_dir, hub=args.hub, frame_embeddings=args.frame_embeddings, opset=args.opset
        )
    except (EmotionAppError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{folder}  (max |p_onnx - p_torch| = {diff:.1e} on a test batch)")
    return 0


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="hub id, alias (emotion2vec_plus_large|base|seed) or local folder (default: %(default)s)",
    )
    p.add_argument("--hub", choices=["ms", "hf"], default="ms", help="ModelScope or Hugging Face (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument(
        "--dtype",
        choices=["auto", "fp32", "fp16", "bf16"],
        default="auto",
        help="auto = fp32 (FunASR's numbers); bf16 on CUDA or a CPU with native bf16 (about 2x faster); fp16 on CUDA",
    )
    p.add_argument(
        "--backend",
        choices=["torch", "onnx"],
        default="torch",
        help="onnx: --model is a folder from export-onnx (default: torch)",
    )
    p.add_argument("--batch-size", type=int, default=0, help="inputs per model call (default: 4 on CPU, 16 on CUDA)")


def add_request_args(p: argparse.ArgumentParser) -> None:
    """The analysis flags. Their dest is the option field's name and a flag left out is absent, so
    RequestOptions.from_fields takes every default (and refuses conflicting flags) in one place."""
    from ..analysis.smoothing import SmoothingOptions
    from ..audio.segmenter import SegmentOptions

    sm, sg, off = SmoothingOptions(), SegmentOptions(), argparse.SUPPRESS
    p.add_argument(
        "--granularity",
        choices=["utterance", "frame"],
        default=off,
        help="frame adds 50 Hz per-frame scores (default: utterance)",
    )
    g = p.add_argument_group("frame analysis (with --granularity frame: smoothing, segments and summary)")
    g.add_argument("--smoothing", dest="method", choices=METHODS, default=off, help=f"(default: {sm.method})")
    g.add_argument("--window", type=int, default=off, help=f"frames, odd, 3-51 (default: {sm.window} = {sm.window * 20} ms)")
    g.add_argument("--alpha", type=float, default=off, help=f"EWMA weight of the new frame, (0, 1] (default: {sm.alpha})")
    g.add_argument(
        "--causal",
        dest="zero_phase",
        action="store_const",
        const=False,
        default=off,
        help="EWMA forward only (default: zero-phase, no time shift)",
    )
    g.add_argument(
        "--min-duration",
        dest="min_duration_s",
        type=float,
        default=off,
        help=f"shortest segment in s (default: {sm.min_duration_s})",
    )
    g.add_argument(
        "--utterance-from",
        dest="utterance_from",
        choices=["vote", "mean"],
        default=off,
        help="utterance reading from smoothed frames (default: vote)",
    )
    p.add_argument(
        "--mixed-threshold",
        dest="mixed_threshold",
        type=float,
        default=off,
        help="top-two margin for a mixed reading (default: 0.1)",
    )
    s = p.add_argument_group("segmentation of long recordings (one utterance result per segment)")
    s.add_argument("--segment", choices=["vad", "window", "none"], default=off, help="(default: none)")
    s.add_argument(
        "--vad-threshold", dest="threshold", type=float, default=off, help=f"speech probability (default: {sg.threshold})"
    )
    s.add_argument(
        "--min-speech", dest="min_speech_s", type=float, default=off, help=f"shortest speech in s (default: {sg.min_speech_s})"
    )
    s.add_argument(
        "--min-silence",
        dest="min_silence_s",
        type=float,
        default=off,
        help=f"shortest pause that splits, s (default: {sg.min_silence_s})",
    )
    s.add_argument(
        "--max-segment",
        dest="max_segment_s",
        type=float,
        default=off,
        help=f"longer speech is split, s (default: {sg.max_segment_s})",
    )
    s.add_argument(
        "--speech-pad", dest="speech_pad_s", type=float, default=off, help=f"added around speech, s (default: {sg.speech_pad_s})"
    )
    s.add_argument(
        "--window-s", dest="window_s", type=float, default=off, help=f"fixed window length, s (default: {sg.window_s})"
    )
    s.add_argument("--hop-s", dest="hop_s", type=float, default=off, help="fixed window hop, s (default: the window length)")


def add_ray_args(p: argparse.ArgumentParser) -> None:
    """batch --ray: the same batch on Ray Data (recordings/ray_batch.py; needs requirements-ray.txt)."""
    r = p.add_argument_group("Ray Data (many machines, GPUs; pip install -r requirements-ray.txt)")
    r.add_argument("--ray", action="store_true", help="run on Ray: a local Ray on 127.0.0.1 unless --ray-address")
    r.add_argument("--ray-address", metavar="ADDR", help="join this cluster (HOST:6379 from `ray start --head`); implies --ray")
    r.add_argument("--actors", type=int, default=1, help="model actors, one engine each (default: %(default)s)")
    r.add_argument(
        "--gpus-per-actor", type=float, default=0.0, help="GPUs per actor, fp16 on them; 0.5 = two per GPU (default: CPU)"
    )
    r.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPUs (torch threads) per actor (default: %(default)s)")
    r.add_argument("--cpus-per-decoder", type=float, default=1.0, help="CPUs per decode task (default: %(default)s)")
    r.add_argument("--decoder-memory", type=float, default=2.0, metavar="GB", help="memory per decode task (default: 2)")
    r.add_argument("--actor-memory", type=float, default=4.0, metavar="GB", help="memory per actor (default: 4)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emotion_app", description="Speech emotion recognition with emotion2vec+.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="predict the emotion of audio files (one result per file)")
    p.add_argument(
        "files", nargs="+", metavar="FILE", help="audio or video files (WAV, MP3, M4A, FLAC, OGG, OPUS, WEBM, MP4, ...)"
    )
    add_model_args(p)
    add_request_args(p)
    p.add_argument(
        "--embedding",
        dest="extract_embedding",
        action="store_true",
        default=argparse.SUPPRESS,
        help="also compute embeddings (not printed; Python API)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per file")
    add_head_arg(p)
    p.set_defaults(func=_predict)

    b = sub.add_parser("batch", help="analyse many files (folders, zips) into a results table; resumable")
    b.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or zip archives")
    b.add_argument("--recursive", action="store_true", help="include subfolders")
    b.add_argument("--out", default="batch_results", help="output folder (default: %(default)s)")
    b.add_argument("--format", choices=["csv", "jsonl"], default="csv", help="results table (default: %(default)s)")
    b.add_argument("--overwrite", action="store_true", help="redo files already done in --out")
    add_model_args(b)
    add_request_args(b)
    add_head_arg(b)
    add_ray_args(b)
    b.set_defaults(func=_batch)

    m = sub.add_parser("make-checkpoint", help="write a random-weight model folder in the hub layout (tests, benchmarks)")
    m.add_argument("dir")
    m.add_argument("--preset", choices=["tiny", "tiny_large", "plus_base", "plus_large"], default="tiny")
    m.add_argument("--training-state", action="store_true", help="add optimizer state as in the real 1.95 GB file")
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(func=_make_checkpoint)

    x = sub.add_parser("export-onnx", help="export the model with its head to one ONNX graph (onnxruntime, no torch)")
    x.add_argument("out_dir", metavar="OUT_DIR", help="folder for model.onnx, labels.json, head.npz and README.md")
    x.add_argument("--model", default=DEFAULT_MODEL, help="hub id, alias or local folder (default: %(default)s)")
    x.add_argument("--hub", choices=["ms", "hf"], default="ms", help="ModelScope or Hugging Face (default: %(default)s)")
    x.add_argument("--frame-embeddings", action="store_true", help="add the output frame_embeddings (batch, frames, D)")
    x.add_argument("--opset", type=int, default=17, help="ONNX opset, 14 or later (default: %(default)s)")
    x.set_defaults(func=_export_onnx)
    add_head_commands(sub, add_model_args, _engine)  # evaluate, train-head (heads/commands.py)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)
