"""Evaluate a head (the model's own 9-class head, or one of yours) on a labelled set.

    data = read_dataset("iemocap.csv")
    ev = evaluate_dataset(engine, data, label_map="ang=angry,hap=happy,exc=happy,neu=neutral,sad=sad")
    ev.report["ua"], ev.files()  # metrics.json, confusion.csv/.png, errors.csv, predictions.csv

The 9-class head needs every data label mapped onto its labels (or already named like them);
labels that are not are left out and reported, never guessed. The features come from the
embedding cache (cache.py), so a second run, or a training run on the same files, reuses them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from ..model.head import Head, engine_model_id
from .cache import EmbeddingCache, embed_dataset
from .dataset import Dataset, DatasetError, apply_label_map, check_counts, parse_label_map
from .report import classification_scores, confusion_csv, confusion_png, require_sklearn, rows_csv, scores_table

MODEL_HEAD = "emotion2vec"  # the name of the model's own 9-class head in reports


@dataclass
class Evaluation:
    """`report` is metrics.json's content: wa, ua, macro_f1, n, labels, confusion, per_class,
    errors (the files classified wrong), predictions, failed, unmapped, and what was evaluated."""

    report: dict

    def files(self, lang: str = "en") -> dict[str, str | bytes]:
        r = self.report
        return {
            "metrics.json": json.dumps(r, ensure_ascii=False, indent=2) + "\n",
            "confusion.csv": confusion_csv(r["labels"], r["confusion"]),
            "confusion.png": confusion_png(r["labels"], r["confusion"], f"{r['head']}: {r['data']['source']}", lang),
            "errors.csv": rows_csv(("file", "label", "predicted", "confidence"), r["errors"]),
            "predictions.csv": rows_csv(("file", "label", "predicted", "confidence", "speaker"), r["predictions"]),
        }

    def summary(self) -> str:
        """The result for people: the three scores, per-class table, what was left out."""
        return summary_text(self.report)


def evaluate_dataset(
    engine,
    dataset: Dataset,
    *,
    label_map: str | dict | None = None,
    head: Head | None = None,
    cache: EmbeddingCache | bool | None = True,
    progress=None,
    labels=None,
) -> Evaluation:
    """Classify every file of `dataset` with `head` (default: the model's 9-class head) and score it.
    `labels`: a label set for the model's head (labelset.py): its predictions over those labels only
    (the 4-class protocol: labels="angry,happy,neutral,sad", label_map="exc=happy,...")."""
    require_sklearn()
    mapping = parse_label_map(label_map) if isinstance(label_map, str) or label_map is None else dict(label_map)
    label_set = engine.label_set(labels)
    if label_set is not None and head is not None:
        raise DatasetError("a label set applies to the model's 9-class head, not to your head (it has its own labels)")
    targets = head.labels if head is not None else (label_set.keys if label_set else tuple(engine.labels))
    if head is not None:
        head.check(engine_model_id(engine), engine.embed_dim)
    mapped, unmapped = apply_label_map(dataset, mapping, targets)
    if not mapped.items:
        raise DatasetError(
            f"none of the data's labels ({', '.join(dataset.labels)}) is a label of the head ({', '.join(targets)}): "
            'map them, e.g. --map "ang=angry,hap=happy"'
        )
    check_counts(mapped, min_labels=2, min_files=1, what="evaluation")
    emb = embed_dataset(engine, mapped, cache, progress)
    check_counts(Dataset(mapped.source, emb.items, mapped.layout), min_labels=2, min_files=1, what="evaluation")
    probs = head.probabilities(emb.features) if head is not None else emb.probabilities
    if label_set is not None:
        probs = label_set.restrict(engine.labels, probs)
    best = probs.argmax(axis=1)
    predicted = [targets[i] for i in best]
    truth = emb.labels
    report = classification_scores(truth, predicted, targets)
    predictions = [
        {"file": item.name, "label": item.label, "predicted": p, "confidence": round(float(probs[k, best[k]]), 4),
         "speaker": item.speaker or ""}
        for k, (item, p) in enumerate(zip(emb.items, predicted))
    ]  # fmt: skip
    report |= {
        "head": head.name if head is not None else MODEL_HEAD,
        "head_labels": list(targets),
        "model": dict(engine.model_info),
        "data": Dataset(dataset.source, emb.items, dataset.layout).summary(),
        "label_map": {k: v for k, v in mapping.items()},
        "protocol": protocol(targets, mapping, unmapped, label_set is not None, len(emb.items)),
        "unmapped": unmapped,
        "failed": emb.failed,
        "duplicates": emb.duplicates,
        "notes": mapped.notes,
        "errors": [{k: v for k, v in p.items() if k != "speaker"} for p in predictions if p["predicted"] != p["label"]],
        "predictions": predictions,
        "embeddings": {"computed": emb.computed, "cached": emb.cached},
        "timestamp": datetime.now().isoformat(timespec="seconds"),
    }
    return Evaluation(report)


def protocol(targets, mapping: dict, unmapped: dict, restricted: bool, scored: int) -> str:
    """The evaluation protocol in one sentence, as a paper would state it."""
    merged: dict[str, list[str]] = {}
    for source, target in mapping.items():
        if source != target:
            merged.setdefault(target, []).append(source)
    parts = [f"{len(targets)}-class ({', '.join(targets)})"]
    if merged:
        parts.append("data labels mapped: " + "; ".join(f"{', '.join(sorted(s))} -> {t}" for t, s in sorted(merged.items())))
    parts.append("softmax over these classes only" if restricted else "argmax over the head's classes")
    if unmapped:
        parts.append(f"left out: {', '.join(f'{k} ({n})' for k, n in unmapped.items())}")
    return f"{'; '.join(parts)}; {scored} files scored"


def left_out_lines(report: dict) -> list[str]:
    """What was not scored and why, one line each (unmapped labels, undecodable files, duplicates)."""
    lines = []
    if report.get("unmapped"):
        found = ", ".join(f"{k} ({n})" for k, n in report["unmapped"].items())
        lines.append(f"left out, labels not mapped onto the head's labels: {found}")
    for f in report.get("failed", []):
        lines.append(f"skipped, {f['file']}: {f['error']}")
    for d in report.get("duplicates", []):
        lines.append(f"skipped, {d['file']}: the same audio as {d['same_as']}")
    return lines + list(report.get("notes", []))


def summary_text(r: dict) -> str:
    head = f"{r['head']} ({len(r['head_labels'])} labels)"
    lines = [
        f"{head} on {r['data']['source']}: {r['n']} files",
        f"protocol: {r['protocol']}",
        f"WA {r['wa']:.3f}   UA {r['ua']:.3f}   macro F1 {r['macro_f1']:.3f}",
        "",
        scores_table(r),
        "",
        f"confusion (rows: true, columns: predicted; {', '.join(r['labels'])}):",
        *("  " + " ".join(f"{n:5d}" for n in row) + f"   {k}" for k, row in zip(r["labels"], r["confusion"])),
        f"{len(r['errors'])} files classified wrong (errors.csv)",
    ]
    return "\n".join(lines + left_out_lines(r))
