"""The command line: `emotion-app COMMAND ...` (or `python -m emotion_app COMMAND ...`).

    serve            the web app (page, REST, live WebSocket); `python app.py` is the same
    predict FILE...  one result per file          batch PATH...  a results table (--ray: on Ray Data)
    evaluate DATA    the 9-class head or yours     train-head DATA --out HEAD_DIR
    fine-tune DATA --out DIR   the model itself, fine-tuned on your labels (LoRA, a new head)
    fine-tune-report DIR       the base model, a head and the fine-tuned model in one table
    make-checkpoint DIR                            export-onnx OUT_DIR
    embed-speaker FILE...  CAM++ speaker embeddings (or their similarities)
    users add|remove|key|list --file FILE      the users and API keys of a shared server

Each command lives in its own module of this package; the flags they share (the model's, the
analysis's) are defined once in args.py. Only argparse is imported up front, so `--help` is
instant; torch, Gradio and the rest load when a command runs.
"""

from __future__ import annotations

import argparse
import logging

from . import batch, finetune, heads, predict, serve, speakers, tools, users

PROG = "emotion-app"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Speech emotion recognition with emotion2vec+.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    serve.add_parser(sub)
    predict.add_parser(sub)
    batch.add_parser(sub)
    tools.add_parsers(sub)
    heads.add_parsers(sub)
    finetune.add_parser(sub)
    speakers.add_parser(sub)
    users.add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "check", None):  # a command's own checks of its flags (exit 2 with its usage)
        args.check(args)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)
