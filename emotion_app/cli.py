"""Command line: `python -m emotion_app predict FILE...` and `make-checkpoint DIR`.

Only argparse is imported up front, so `--help` is instant; torch loads when a command runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .constants import DEFAULT_MODEL

logger = logging.getLogger("emotion_app.cli")


def _predict(args) -> int:
    from .engine import Engine
    from .errors import EmotionAppError

    try:
        engine = Engine(model=args.model, hub=args.hub, device=args.device, dtype=args.dtype, batch_size=args.batch_size)
    except EmotionAppError as exc:
        print(f"error: {exc}", file=sys.stderr)
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
        if args.json:
            print(json.dumps(out, ensure_ascii=False), flush=True)
        else:
            lab = res.label
            warn = "".join(f"  [{w.message}]" for w in res.warnings)
            print(f"{path}: {lab.emoji} {res.emotion} ({lab.zh}) {res.confidence:.1%}  {res.duration_s:.1f} s{warn}", flush=True)
    return 1 if failed else 0


def _make_checkpoint(args) -> int:
    from .random_checkpoint import build_random_checkpoint

    path = build_random_checkpoint(args.dir, args.preset, seed=args.seed, training_state=args.training_state)
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emotion_app", description="Speech emotion recognition with emotion2vec+.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="predict the emotion of audio files (one result per file)")
    p.add_argument(
        "files", nargs="+", metavar="FILE", help="audio or video files (WAV, MP3, M4A, FLAC, OGG, OPUS, WEBM, MP4, ...)"
    )
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="hub id, alias (emotion2vec_plus_large|base|seed) or local folder (default: %(default)s)",
    )
    p.add_argument("--hub", choices=["ms", "hf"], default="ms", help="ModelScope or Hugging Face (default: %(default)s)")
    p.add_argument("--granularity", choices=["utterance", "frame"], default="utterance", help="frame adds 50 Hz per-frame scores")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32", help="fp16/bf16 on CUDA only")
    p.add_argument("--batch-size", type=int, default=0, help="inputs per model call (default: 4 on CPU, 16 on CUDA)")
    p.add_argument("--embedding", action="store_true", help="also compute embeddings (not printed; Python API)")
    p.add_argument("--json", action="store_true", help="print one JSON object per file")
    p.set_defaults(func=_predict)

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
