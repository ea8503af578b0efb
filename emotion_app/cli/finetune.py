"""The command line of fine-tuning: `fine-tune DATA --model BASE --out DIR`.

    emotion-app fine-tune my_set/ --model iic/emotion2vec_plus_large --out models/mine --test held_out.csv
    emotion-app fine-tune my_set.csv --out models/mine --unfreeze 2 --epochs 20 --map "exc=happy"
    emotion-app fine-tune my_set.csv --out models/mine --resume        # after a Ctrl-C or a crash
    emotion-app fine-tune my_set.csv --out models/mine --augment speed=0.9,1.1 --noise-snr 10
    emotion-app predict speech.wav --model models/mine
    emotion-app fine-tune-report models/mine --head heads/mine --map "calm=neutral"   # one table: base, head, fine-tuned

Only argparse is imported here, so `--help` stays instant. Progress bars (features, steps) on
stderr on a terminal, one line per epoch on stderr; exit codes: 0 done, 2 bad data or options
(one line saying what to fix), 130 interrupted (the last finished epoch is kept for --resume).
"""

from __future__ import annotations

import json
import sys

from ..constants import DEFAULT_MODEL, HUBS
from .args import fail
from .heads import DATA_HELP, MAP_HELP


def add_parser(sub) -> None:
    f = sub.add_parser("fine-tune", help="fine-tune the model on a labelled set (LoRA on the top blocks, a new head)")
    f.add_argument("data", metavar="DATA", help=DATA_HELP)
    f.add_argument("--out", required=True, metavar="DIR", help="the fine-tuned model folder (use it with --model DIR)")
    f.add_argument("--model", default=DEFAULT_MODEL, help="the base model: hub id, alias or folder (default: %(default)s)")
    f.add_argument("--hub", choices=HUBS, default="ms", help="ModelScope or Hugging Face (default: %(default)s)")
    f.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    f.add_argument("--val", metavar="DATA", help="validation set (default: a speaker-grouped 20%% of DATA)")
    f.add_argument("--test", metavar="DATA", help="held-out test set, scored once at the end (training_card.json)")
    f.add_argument("--map", dest="label_map", metavar="MAP", help=MAP_HELP + "; a label of the nine starts from its row")
    how = f.add_mutually_exclusive_group()
    how.add_argument("--top", type=int, metavar="K", help="LoRA adapters on the top K blocks (default: 4)")
    how.add_argument("--unfreeze", type=int, metavar="K", help="train all weights of the top K blocks instead of adapters")
    f.add_argument("--epochs", type=int, default=10, help="(default: %(default)s)")
    f.add_argument("--lr", type=float, default=5e-4, help="peak learning rate of AdamW (default: %(default)s)")
    f.add_argument("--seed", type=int, default=0, help="the same seed, data and options give the same model (default: 0)")
    f.add_argument("--rank", type=int, default=8, help="LoRA rank (default: %(default)s)")
    f.add_argument("--batch-seconds", type=float, default=60.0, help="padded audio seconds per batch (default: %(default)s)")
    f.add_argument("--accumulate", type=int, default=1, help="batches per optimizer step (default: %(default)s)")
    f.add_argument("--patience", type=int, default=3, help="stop after K epochs without a better validation UA (0: never)")
    f.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto", help="auto: bf16 where native (default)")
    f.add_argument("--augment", metavar="speed=F,...", help="a copy of each training clip per speed factor, e.g. speed=0.9,1.1")
    f.add_argument("--noise-snr", type=float, metavar="DB", help="a copy of each training clip with noise at this SNR, in dB")
    f.add_argument("--noise", metavar="FILE", help="the noise for --noise-snr: an audio file (default: white noise)")
    f.add_argument("--resume", action="store_true", help="go on from the last finished epoch of an interrupted run")
    f.add_argument("--json", action="store_true", help="print training_card.json's content")
    f.set_defaults(func=run_fine_tune)

    r = sub.add_parser(
        "fine-tune-report",
        help="score the base model, a train-head head and the fine-tuned model on the same held-out clips, in one table",
    )
    r.add_argument("folder", metavar="DIR", help="the fine-tuned model folder (the report is written into DIR/report/)")
    r.add_argument(
        "--test", metavar="DATA",
        help="the held-out clips (default: the fine-tune's --test set, else its validation part rebuilt from the card)",
    )  # fmt: skip
    r.add_argument("--head", dest="report_head", metavar="HEAD_DIR", help="a head trained with train-head on the base model")
    r.add_argument("--map", dest="label_map", metavar="MAP", help='your labels onto the nine, for the base model: "calm=neutral"')
    r.add_argument("--base", metavar="MODEL", help="the base model, when its folder moved (default: training_card.json's)")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    r.add_argument("--json", action="store_true", help="print report.json's content")
    r.set_defaults(func=run_report)


def _bar(desc: str, unit: str):
    from tqdm import tqdm

    bar = tqdm(unit=unit, file=sys.stderr, disable=None, desc=desc)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, update


def run_fine_tune(args) -> int:
    from ..errors import EmotionAppError
    from ..fields import checked
    from ..finetune.augment import parse_augment
    from ..finetune.run import FineTuneOptions, fine_tune

    def epoch_line(r: dict) -> None:
        print(
            f"epoch {r['epoch']}: loss {r['loss']:.4f}  validation WA {r['val_wa']:.3f} UA {r['val_ua']:.3f}  "
            f"lr {r['lr']:.3g}  {r['seconds']:.1f} s",
            file=sys.stderr,
        )

    try:
        options = checked(
            FineTuneOptions, epochs=args.epochs, lr=args.lr, seed=args.seed, batch_seconds=args.batch_seconds,
            accumulate=args.accumulate, patience=args.patience, precision=args.precision, top=args.top,
            unfreeze=args.unfreeze, rank=args.rank, device=args.device, speeds=parse_augment(args.augment),
            noise_snr=args.noise_snr, noise=args.noise,
        )  # fmt: skip
        features_bar, on_features = _bar("features", "clip")
        steps_bar, on_step = _bar("training", "step")
        with features_bar, steps_bar:
            run = fine_tune(
                args.data, out=args.out, model=args.model, hub=args.hub, val=args.val, test=args.test,
                label_map=args.label_map, options=options, resume=args.resume, on_features=on_features,
                on_step=on_step, on_epoch=epoch_line,
            )  # fmt: skip
    except EmotionAppError as exc:
        return fail(exc.message)
    except KeyboardInterrupt:
        print("interrupted: the last finished epoch is kept; continue with the same command and --resume", file=sys.stderr)
        return 130
    card = run.card
    if args.json:
        print(json.dumps({**card, "out": str(run.folder)}, ensure_ascii=False))
        return 0
    lines = [f"{card['data']['counts']['train']['clips']} training clips, labels {', '.join(card['labels'])}; "
             f"features {card['seconds']['features']:.1f} s ({card['features']['cached']} from the cache), "
             f"training {card['seconds']['training']:.1f} s, best epoch {card['best_epoch']}"]  # fmt: skip
    for part in ("validation", "test"):
        if card[part]:
            lines.append(f"{part}: WA {card[part]['wa']:.3f}  UA {card[part]['ua']:.3f}  macro F1 {card[part]['macro_f1']:.3f}")
    print("\n".join(lines) + f"\n-> {run.folder} (use it: --model {run.folder})")
    return 0


def run_report(args) -> int:
    from ..errors import EmotionAppError
    from ..finetune.report import REPORT_FILE, model_report

    try:
        bar, update = _bar("embeddings", "file")
        with bar:
            report = model_report(
                args.folder, test=args.test, head=args.report_head, base_map=args.label_map, base_model=args.base,
                device=args.device, progress=update,
            )  # fmt: skip
        out = report.write()
    except EmotionAppError as exc:
        return fail(exc.message)
    if args.json:
        print(json.dumps({**json.loads(report.files()[REPORT_FILE]), "out": str(out)}, ensure_ascii=False))
    else:
        print(f"{report.table()}\n-> {out}")
    return 0
