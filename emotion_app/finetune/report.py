"""One table for a fine-tuned folder: the base model (its nine labels, with a label map), a head
trained with `train-head`, and the fine-tuned model, each scored by `evaluate` on the same
held-out clips (WA, UA, macro-F1, a confusion PNG each), printed and written into the folder.

    from emotion_app.finetune.report import model_report

    rep = model_report("models/mine", head="heads/mine", base_map="calm=neutral")
    print(rep.table())              # the table `emotion-app fine-tune-report` prints
    rep.write()                     # models/mine/report/: report.json, report.md, confusion_*.png

The held-out clips are `test` when given (DATA, labelled with the fine-tuned model's labels, or
mapped onto them by the fine-tune's own label map), else the fine-tune's `--test` set, else its
validation part rebuilt from the training card (the same DATA, label map and seed give the same
split; a rebuilt part whose counts differ from the card's is refused: the data changed).
`base_map` maps those labels onto the nine for the base model ("calm=neutral"); a label that is
neither one of the nine nor mapped is left out of the base model's row and reported.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..heads.dataset import Dataset, DatasetError, read_dataset
from ..heads.evaluate import Evaluation, evaluate_dataset
from .data import prepare
from .export import CARD_FILE

logger = logging.getLogger(__name__)

REPORT_DIR = "report"
REPORT_FILE = "report.json"


@dataclass
class ModelReport:
    folder: Path  # the fine-tuned model folder
    heldout: str  # what was scored, in words
    rows: dict[str, Evaluation] = field(default_factory=dict)  # row name -> evaluate's result

    def table(self) -> str:
        """The rows as a Markdown table (the confusion PNGs are named in the last column)."""
        lines = [
            f"held out: {self.heldout}",
            "",
            "| model | labels | clips | WA | UA | macro F1 | confusion |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, ev in self.rows.items():
            r = ev.report
            lines.append(
                f"| {name} | {len(r['head_labels'])} | {r['n']} | {r['wa']:.3f} | {r['ua']:.3f} | {r['macro_f1']:.3f} "
                f"| {png_name(name)} |"
            )
        left = [f"{name}: left out {', '.join(f'{k} ({n})' for k, n in ev.report['unmapped'].items())}"
                for name, ev in self.rows.items() if ev.report["unmapped"]]  # fmt: skip
        return "\n".join(lines + ([""] + left if left else []))

    def files(self) -> dict[str, str | bytes]:
        rows = {}
        for name, ev in self.rows.items():
            r = ev.report
            keep = ("head", "head_labels", "model", "protocol", "n", "wa", "ua", "macro_f1", "labels", "confusion",
                    "per_class", "unmapped", "label_map")  # fmt: skip
            rows[name] = {k: r[k] for k in keep} | {"confusion_png": png_name(name)}
        out: dict[str, str | bytes] = {
            REPORT_FILE: json.dumps({"heldout": self.heldout, "rows": rows}, ensure_ascii=False, indent=2) + "\n",
            "report.md": self.table() + "\n",
        }
        for name, ev in self.rows.items():
            out[png_name(name)] = ev.files()["confusion.png"]
        return out

    def write(self) -> Path:
        """`<folder>/report/`, written whole (an earlier report is replaced)."""
        from ..heads.report import write_folder

        return write_folder(self.folder / REPORT_DIR, self.files(), REPORT_FILE)


def png_name(row: str) -> str:
    return f"confusion_{row.split(' ')[0]}.png"


def heldout_set(card: dict, test: Dataset | str | Path | None) -> tuple[Dataset, str]:
    """The clips to score, labelled with the fine-tuned model's labels, and their description."""
    data = card["data"]
    mapping = data.get("label_map") or {}
    places = data.get("paths") or {}
    if test is None and data["sources"].get("test") and not places.get("test"):
        raise DatasetError("the fine-tune's --test set was not given as a path; give the held-out clips: --test DATA")
    if test is not None or places.get("test"):
        given = test if test is not None else places["test"]
        ds = given if isinstance(given, Dataset) else read_dataset(given)
        relabelled = [replace(i, label=mapping.get(i.label, i.label)) for i in ds.items]
        kept = [i for i in relabelled if i.label is not None]
        return Dataset(ds.source, kept, ds.layout), f"{ds.source} ({len(kept)} clips)"
    if not places.get("train") or (data["sources"].get("val") and not places.get("val")):
        raise DatasetError("the fine-tune's data was not given as a path; give the held-out clips: --test DATA")
    try:
        split = prepare(places["train"], val=places.get("val"), label_map=mapping, seed=card["options"]["seed"])
    except (DatasetError, OSError) as exc:
        raise DatasetError(f"the fine-tune's data cannot be read again ({exc}); give the held-out clips: --test DATA") from None
    if split.counts()["val"] != data["counts"]["val"]:
        raise DatasetError(
            "the fine-tune's validation part cannot be rebuilt: its data changed since (the clips per label or speaker "
            "differ from training_card.json's); give the held-out clips: --test DATA"
        )
    items = [replace(c.item, label=c.label) for c in split.val]
    how = {"speaker": "whole speakers", "label": "a part of each label", "--val": "--val"}[split.how]
    source = split.sources["train"]
    return Dataset(source, items, "table"), f"the validation part of {source} ({how}, {len(items)} clips)"


def model_report(
    folder: str | Path,
    *,
    test: Dataset | str | Path | None = None,
    head: str | Path | None = None,
    base_map: str | dict | None = None,
    base_model: str | None = None,
    device: str = "auto",
    cache=True,
    progress=None,
) -> ModelReport:
    """Score the base model (over the nine, `base_map` onto them), the head `head` (a train-head
    folder, on the base model's features) and the fine-tuned model in `folder` on the same
    held-out clips. `base_model`: the base model when its folder moved (default: the card's)."""
    from ..engine import Engine
    from ..model.head import Head

    folder = Path(folder)
    card_path = folder / CARD_FILE
    if not card_path.is_file():
        raise DatasetError(f"{folder} is not a fine-tuned model folder (no {CARD_FILE})")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    heldout, described = heldout_set(card, test)
    known = card["base_model"]
    base_id = base_model or (known["folder"] if Path(known["folder"]).is_dir() else known["id"])
    report = ModelReport(folder, described)
    base = Engine(model=base_id, device=device)
    report.rows["base (9 labels)"] = evaluate_dataset(base, heldout, label_map=base_map, cache=cache, progress=progress)
    if head is not None:
        loaded = Head.load(head)
        report.rows[f"head {loaded.name}"] = evaluate_dataset(base, heldout, head=loaded, cache=cache, progress=progress)
    del base
    tuned = Engine(model=str(folder), device=device)
    report.rows[f"fine-tuned {folder.name}"] = evaluate_dataset(tuned, heldout, cache=cache, progress=progress)
    return report
