"""The command line of your own labels: `evaluate DATA` and `train-head DATA --out HEAD_DIR`.

    emotion-app evaluate iemocap.csv --map "ang=angry,hap=happy,exc=happy,neu=neutral,sad=sad"
    emotion-app train-head my_set/ --out heads/my_labels [--kind mlp] [--names "calm=平静:😌"]
    emotion-app predict call.wav --head heads/my_labels

Only argparse is imported here, so `--help` stays instant. Exit codes: 0 done, 2 bad input or a
model that cannot be loaded (one line on stderr saying what to fix). Files that fail to decode
are listed on stderr and in the outputs, and skipped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .args import add_model_args, engine_from, fail

DATA_HELP = "a folder with one subfolder per label, a CSV/TSV/JSONL table (path,label[,speaker]; paths relative to it) or a zip"
MAP_HELP = 'data label=head label, comma-separated: "ang=angry,hap=happy,exc=happy" ("oth=-" leaves oth out)'


def add_parsers(sub) -> None:
    """The `evaluate` and `train-head` subcommands."""
    e = sub.add_parser("evaluate", help="score the 9-class head (or your head) on a labelled set: WA, UA, F1, confusion")
    e.add_argument("data", metavar="DATA", help=DATA_HELP)
    e.add_argument("--map", dest="label_map", metavar="MAP", help=MAP_HELP + "; labels left unmapped are reported")
    e.add_argument("--head", dest="eval_head", metavar="HEAD_DIR", help="evaluate this head instead of the 9-class head")
    e.add_argument(
        "--labels", metavar="LIST",
        help="score the 9-class head over these labels only (softmax over them): angry,happy,neutral,sad or iemocap4",
    )  # fmt: skip
    e.add_argument(
        "--out", default="evaluation", help="metrics.json, confusion.csv/.png, errors.csv, predictions.csv (default: %(default)s)"
    )
    e.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    e.add_argument("--no-cache", action="store_true", help="compute every embedding again, store none")
    add_model_args(e)
    e.set_defaults(func=run_evaluate)

    t = sub.add_parser("train-head", help="train your own head on a labelled set (cross-validated), for --head")
    t.add_argument("data", metavar="DATA", help=DATA_HELP)
    t.add_argument("--out", required=True, metavar="HEAD_DIR", help="the head's folder; its name is the head's name")
    t.add_argument(
        "--kind", choices=["logreg", "mlp"], default="logreg", help="logistic regression or MLP (default: %(default)s)"
    )
    t.add_argument("--folds", type=int, default=5, help="k of the k-fold cross-validation (default: %(default)s)")
    t.add_argument("--c", type=float, default=1.0, help="logreg: inverse regularisation strength (default: %(default)s)")
    t.add_argument("--hidden", type=int, default=256, help="mlp: hidden units (default: %(default)s)")
    t.add_argument("--seed", type=int, default=0, help="folds and MLP initialisation (default: %(default)s)")
    t.add_argument("--map", dest="label_map", metavar="MAP", help=MAP_HELP)
    t.add_argument("--names", metavar="NAMES", help='Chinese names and emoji of your labels: "calm=平静:😌,tense=紧张:😬"')
    t.add_argument("--json", action="store_true", help="print metrics.json's content")
    t.add_argument("--no-cache", action="store_true", help="compute every embedding again, store none")
    add_model_args(t)
    t.set_defaults(func=run_train)


def _progress():
    """A tqdm bar over files on stderr (shown on a terminal only) and its update callback."""
    from tqdm import tqdm

    bar = tqdm(unit="file", file=sys.stderr, disable=None, desc="embeddings")

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, update


def _skipped(report_failed: list[dict], duplicates: list[dict]) -> None:
    for f in report_failed:
        print(f"skipped: {f['file']}: {f['error']}", file=sys.stderr)
    for d in duplicates:
        print(f"skipped: {d['file']}: the same audio as {d['same_as']}", file=sys.stderr)


def run_evaluate(args) -> int:
    from ..errors import EmotionAppError
    from ..heads.dataset import read_dataset
    from ..heads.evaluate import evaluate_dataset
    from ..heads.report import write_folder
    from ..model.head import Head

    try:
        data = read_dataset(args.data)
        head = Head.load(args.eval_head) if args.eval_head else None
        engine = engine_from(args)
        bar, update = _progress()
        with bar:
            ev = evaluate_dataset(
                engine, data, label_map=args.label_map, head=head, cache=not args.no_cache, progress=update, labels=args.labels
            )
        folder = write_folder(Path(args.out), ev.files(), "metrics.json")
    except EmotionAppError as exc:
        return fail(exc.message)
    _skipped(ev.report["failed"], ev.report["duplicates"])
    if args.json:
        print(json.dumps({**ev.report, "out": str(folder)}, ensure_ascii=False))
    else:
        print(f"{ev.summary()}\n-> {folder}")
    return 0


def run_train(args) -> int:
    from ..errors import EmotionAppError
    from ..fields import checked
    from ..heads.dataset import read_dataset
    from ..heads.report import write_folder
    from ..heads.train import TrainOptions, cv_line, train_head
    from ..model.head import WEIGHTS_FILE

    out = Path(args.out)
    try:
        options = checked(TrainOptions, args.kind, args.folds, args.c, args.hidden, args.seed)
        data = read_dataset(args.data)
        engine = engine_from(args)
        bar, update = _progress()
        with bar:
            run = train_head(
                engine, data, name=out.resolve().name, label_map=args.label_map, names=args.names, options=options,
                cache=not args.no_cache, progress=update,
            )  # fmt: skip
        folder = write_folder(out, run.files(), WEIGHTS_FILE)
    except EmotionAppError as exc:
        return fail(exc.message)
    m = run.metrics
    _skipped(m["data"]["failed"], m["data"]["duplicates"])
    if args.json:
        print(json.dumps({**m, "out": str(folder)}, ensure_ascii=False))
        return 0
    counts = ", ".join(f"{k} {n}" for k, n in m["data"]["counts"].items())
    notes = "".join(f"\nnote: {n}" for n in m["cv"]["notes"])
    print(
        f"{m['data']['files']} files ({counts}); features in {m['seconds']['features']:.1f} s "
        f"({m['embeddings']['cached']} from the cache), training {m['seconds']['training']:.1f} s\n"
        f"{cv_line(m['cv'])}{notes}\n-> {folder} (use it: --head {folder})"
    )
    return 0
