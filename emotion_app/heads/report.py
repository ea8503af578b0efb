"""Classification metrics (scikit-learn) and the files an evaluation or a training run writes.

WA (weighted accuracy) is the share of files classified right; UA (unweighted accuracy) the mean
of the per-class recalls, so every class counts the same whatever its size; macro F1 the mean of
the per-class F1. UA and macro F1 average over the labels the data has: a label that is only
predicted (the 9-class head saying `other` on a 4-class set) counts as an error, never as a class.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import EmotionAppError
from .dataset import DatasetError


def require_sklearn() -> None:
    """scikit-learn, which evaluation and training need (applying a head does not), or a clear error."""
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise EmotionAppError(
            f"evaluate and train-head need scikit-learn, which cannot be imported ({exc}); pip install scikit-learn",
            "missing_dependency",
        ) from None


def _r(x: float) -> float:
    return round(float(x), 4)


def classification_scores(y_true: Sequence[str], y_pred: Sequence[str], order: Sequence[str] = ()) -> dict:
    """{n, wa, ua, macro_f1, labels, confusion, per_class}. `labels` (the confusion matrix's rows =
    true, columns = predicted) are the labels that occur, in `order` first, then sorted."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    seen = set(y_true) | set(y_pred)
    labels = [k for k in order if k in seen] + sorted(seen - set(order))
    present = [k for k in labels if k in set(y_true)]
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    _, ua, macro_f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=present, average="macro", zero_division=0)
    return {
        "n": len(y_true),
        "wa": _r(accuracy_score(y_true, y_pred)),
        "ua": _r(ua),
        "macro_f1": _r(macro_f1),
        "labels": labels,
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "per_class": {
            k: {"precision": _r(p[i]), "recall": _r(r[i]), "f1": _r(f[i]), "support": int(s[i])} for i, k in enumerate(labels)
        },
    }


def confusion_csv(labels: Sequence[str], confusion: Sequence[Sequence[int]]) -> str:
    """Rows: true labels; columns: predicted labels."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["true \\ predicted", *labels])
    for k, row in zip(labels, confusion):
        w.writerow([k, *row])
    return buf.getvalue()


def confusion_png(labels: Sequence[str], confusion: Sequence[Sequence[int]], title: str = "", lang: str = "en") -> bytes:
    from ..analysis.charts import confusion_chart, png_bytes

    return png_bytes(confusion_chart(list(labels), np.asarray(confusion), lang, title))


def rows_csv(columns: Sequence[str], rows: Sequence[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, list(columns), lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def scores_table(metrics: dict) -> str:
    """Per-class precision, recall, F1 and support as a Markdown table."""
    lines = ["| label | precision | recall | F1 | files |", "|---|---|---|---|---|"]
    for k, v in metrics["per_class"].items():
        lines.append(f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |")
    return "\n".join(lines)


def write_folder(dest: Path, files: dict[str, str | bytes | Callable[[Path], None]], marker: str) -> Path:
    """Write `files` (name -> content) as the folder `dest`, whole or not at all: into a temporary
    folder beside it, then renamed into place. A content that is a function writes the file at
    the path it is given (a large file streamed, never held whole in memory). An existing `dest`
    is replaced only when it holds `marker` (a folder this tool wrote) or nothing; any other
    folder is refused."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or (any(dest.iterdir()) and not (dest / marker).is_file())):
        raise DatasetError(f"{dest} exists and was not written by this tool (no {marker}); choose another output folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    old = None
    try:
        for name, content in files.items():
            path = tmp / name
            if callable(content):
                content(path)
            elif isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.replace(dest, old / "x")
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and (old / "x").exists() and not dest.exists():
            os.replace(old / "x", dest)  # put the previous folder back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return dest
