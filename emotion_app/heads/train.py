"""Train a head on frozen emotion2vec features: the emotion2vec authors' recipe for new label sets.

    data = read_dataset("my_set/")            # one folder per label, or path,label[,speaker]
    run = train_head(engine, data, name="calm_or_not")
    run.metrics["cv"]["ua"]                    # {"mean", "std", "folds"}
    write_folder(Path("heads/calm_or_not"), run.files(), WEIGHTS_FILE)

The utterance feature (mean frame feature, D = 1024 for the large model) of each file comes
from the embedding cache or the engine. The features are standardised, then a logistic regression
(default) or a one-hidden-layer MLP is fitted with class weights inverse to the label counts.
Cross-validation first: speaker-grouped stratified k-fold when every file has a speaker (a speaker
is never in the training and the test part of one fold), plain stratified k-fold otherwise; then
the head is fitted on all files. scikit-learn does the fitting; the head keeps plain weights.
"""

from __future__ import annotations

import json
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np

from ..model.head import CARD_FILE, KINDS, LABELS_FILE, METRICS_FILE, WEIGHTS_FILE, Head, engine_model_id
from .cache import EmbeddingCache, embed_dataset
from .dataset import Dataset, DatasetError, apply_label_map, check_counts, parse_label_map
from .report import classification_scores, confusion_csv, confusion_png, require_sklearn, scores_table

MIN_FILES = 5  # per label: below this, k-fold cross-validation says little


@dataclass(frozen=True)
class TrainOptions:
    kind: str = "logreg"  # "logreg" (logistic regression) or "mlp" (one hidden layer, relu)
    folds: int = 5  # k of the cross-validation (fewer when a label or the speakers are fewer)
    c: float = 1.0  # logistic regression: inverse regularisation strength
    hidden: int = 256  # mlp: hidden units
    seed: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not 2 <= self.folds <= 20:
            raise ValueError(f"folds must be 2-20, not {self.folds}")
        if not self.c > 0:
            raise ValueError(f"c must be > 0, not {self.c}")
        if not 1 <= self.hidden <= 4096:
            raise ValueError(f"hidden must be 1-4096, not {self.hidden}")


def parse_label_names(text: str | None) -> dict[str, dict[str, str]]:
    """ "calm=平静:😌,tense=紧张:😬" -> {"calm": {"zh": "平静", "emoji": "😌"}, ...}; either part may be left out."""
    names: dict[str, dict[str, str]] = {}
    for entry in str(text or "").replace(";", ",").replace("\n", ",").split(","):
        if not entry.strip():
            continue
        label, eq, rest = entry.partition("=")
        if not eq or not label.strip():
            raise DatasetError(f"label names entry {entry.strip()!r} must read label=中文名:emoji (e.g. calm=平静:😌)")
        zh, _, emoji = rest.partition(":")
        names[label.strip()] = {k: v.strip() for k, v in (("zh", zh), ("emoji", emoji)) if v.strip()}
    return names


# -- fitting ------------------------------------------------------------------------------------------
def _fit(x: np.ndarray, y: list[str], opts: TrainOptions):
    """(scaler, classifier) fitted on standardised features, classes weighted inverse to their counts."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler
    from sklearn.utils.class_weight import compute_sample_weight

    scaler = StandardScaler().fit(x)
    xs = scaler.transform(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # few files, many dimensions: the optimum is flat
        if opts.kind == "logreg":
            clf = LogisticRegression(C=opts.c, max_iter=5000, class_weight="balanced").fit(xs, y)
        else:
            clf = MLPClassifier((opts.hidden,), alpha=1e-3, max_iter=800, random_state=opts.seed)
            clf.fit(xs, y, sample_weight=compute_sample_weight("balanced", y))
    return scaler, clf


def _layers(clf) -> list[tuple[np.ndarray, np.ndarray]]:
    """The classifier as plain layers [(W (in, out), b (out,))] ending in logits for softmax. sklearn
    gives a binary problem one logistic output z; softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)]."""
    if hasattr(clf, "coefs_"):  # MLPClassifier
        layers = [(w.astype(np.float32), b.astype(np.float32)) for w, b in zip(clf.coefs_, clf.intercepts_)]
    else:
        layers = [(clf.coef_.T.astype(np.float32), clf.intercept_.astype(np.float32))]
    w, b = layers[-1]
    if len(clf.classes_) == 2 and w.shape[1] == 1:
        layers[-1] = (np.concatenate([np.zeros_like(w), w], axis=1), np.concatenate([np.zeros_like(b), b]))
    return layers


def fit_head(x: np.ndarray, y: list[str], opts: TrainOptions, *, name: str, model_id: str, names=None) -> Head:
    """A Head fitted on all of (x (N, D), y); its labels are the sorted labels of y."""
    scaler, clf = _fit(x, y, opts)
    return Head(
        name=name,
        labels=tuple(str(k) for k in clf.classes_),
        layers=_layers(clf),
        mean=scaler.mean_.astype(np.float32),
        scale=scaler.scale_.astype(np.float32),
        model_id=model_id,
        kind=opts.kind,
        names=dict(names or {}),
    )


# -- cross-validation ---------------------------------------------------------------------------------
def choose_splits(y: list[str], groups: list[str] | None, folds: int, seed: int) -> tuple[str, list, list[str]]:
    """(grouping, [(train indices, test indices)], notes). Speaker-grouped folds when `groups` has 2+
    speakers: StratifiedGroupKFold keeps each speaker's files in one fold."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    notes, x = [], np.zeros((len(y), 1))
    if groups is not None and len(set(groups)) >= 2:
        k = min(folds, len(set(groups)))
        if k < folds:
            notes.append(f"{k} folds: one per speaker ({k} speakers)")
        return "speaker", list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(x, y, groups)), notes
    if groups is not None:
        notes.append("every file has the same speaker: folds are stratified, not speaker-independent")
    k = min(folds, min(Counter(y).values()))
    if k < folds:
        notes.append(f"{k} folds: the smallest label has {k} files")
    return "stratified", list(StratifiedKFold(k, shuffle=True, random_state=seed).split(x, y)), notes


def _spread(values: list[float]) -> dict:
    return {"mean": round(float(np.mean(values)), 4), "std": round(float(np.std(values)), 4), "folds": values}


def cross_validate(x: np.ndarray, y: list[str], groups: list[str] | None, opts: TrainOptions) -> dict:
    """Per-fold WA, UA and macro F1 with their mean and std over folds, and `pooled`: the scores and
    confusion matrix of all out-of-fold predictions together."""
    grouping, splits, notes = choose_splits(y, groups, opts.folds, opts.seed)
    order = sorted(set(y))
    y_arr = np.array(y, dtype=object)
    predicted = np.full(len(y), None, dtype=object)
    per_fold = []
    for i, (train, test) in enumerate(splits):
        if groups is not None and grouping == "speaker":
            assert not {groups[k] for k in train} & {groups[k] for k in test}, "a speaker in both parts of a fold"
        missing = sorted(set(order) - set(y_arr[train]))
        if len(missing) >= len(order) - 1:
            notes.append(f"fold {i + 1} skipped: its training part has one label only")
            continue
        if missing:
            notes.append(f"fold {i + 1}: no training files of {', '.join(missing)} (one speaker only?); it cannot predict them")
        scaler, clf = _fit(x[train], list(y_arr[train]), opts)
        predicted[test] = clf.predict(scaler.transform(x[test]))
        per_fold.append(classification_scores(list(y_arr[test]), list(predicted[test]), order))
    if not per_fold:
        raise DatasetError("no fold could be trained: each needs two labels in its training part; add speakers or files")
    scored = [k for k in range(len(y)) if predicted[k] is not None]
    return {
        "grouping": grouping,
        "folds": len(splits),
        "notes": notes,
        **{m: _spread([f[m] for f in per_fold]) for m in ("wa", "ua", "macro_f1")},
        "pooled": classification_scores([y[k] for k in scored], [predicted[k] for k in scored], order),
    }


# -- the whole run -------------------------------------------------------------------------------------
@dataclass
class Training:
    head: Head
    metrics: dict  # metrics.json's content

    def files(self) -> dict[str, str | bytes]:
        """The head folder's files: weights, labels, metrics, card, and the CV confusion matrix."""
        pooled = self.metrics["cv"]["pooled"]
        return {
            WEIGHTS_FILE: self.head.weights_bytes(),
            LABELS_FILE: self.head.labels_json(),
            METRICS_FILE: json.dumps(self.metrics, ensure_ascii=False, indent=2) + "\n",
            CARD_FILE: card_text(self.metrics),
            "confusion.csv": confusion_csv(pooled["labels"], pooled["confusion"]),
            "confusion.png": confusion_png(pooled["labels"], pooled["confusion"], f"{self.head.name}: cross-validation"),
        }


def train_head(
    engine,
    dataset: Dataset,
    *,
    name: str,
    label_map: str | dict | None = None,
    names: str | dict | None = None,
    options: TrainOptions | None = None,
    cache: EmbeddingCache | bool | None = True,
    progress=None,
) -> Training:
    """Extract (or reuse) the features of `dataset`, cross-validate, fit on all files. Files that
    cannot be decoded are listed and skipped; the size rules are checked before and after that."""
    require_sklearn()
    opts = options or TrainOptions()
    mapping = parse_label_map(label_map) if isinstance(label_map, str) or label_map is None else dict(label_map)
    label_names = parse_label_names(names) if isinstance(names, str) or names is None else dict(names)
    mapped, left_out = apply_label_map(dataset, mapping)
    check_counts(mapped, 2, MIN_FILES)
    unknown = sorted(set(label_names) - set(mapped.labels))
    if unknown:
        raise DatasetError(f"label names given for labels the data does not have: {', '.join(unknown)}")
    t0 = time.perf_counter()
    emb = embed_dataset(engine, mapped, cache, progress)
    t1 = time.perf_counter()
    usable = Dataset(mapped.source, emb.items, mapped.layout, mapped.notes)
    check_counts(usable, 2, MIN_FILES, what="training (after leaving out the files that failed)")
    y, groups = emb.labels, ([i.speaker for i in emb.items] if usable.has_speakers else None)
    cv = cross_validate(emb.features, y, groups, opts)
    model_id = engine_model_id(engine)
    head = fit_head(emb.features, y, opts, name=name, model_id=model_id, names=label_names)
    t2 = time.perf_counter()
    train_scores = classification_scores(y, [head.labels[i] for i in head.probabilities(emb.features).argmax(1)], head.labels)
    metrics = {
        "head": name,
        "kind": opts.kind,
        "options": asdict(opts),
        "model": {"id": model_id, "embed_dim": engine.embed_dim, "device": engine.model_info.get("device")},
        "labels": list(head.labels),
        "data": {**usable.summary(), "label_map": mapping, "left_out": left_out, "failed": emb.failed,
                 "duplicates": emb.duplicates, "notes": mapped.notes},
        "cv": cv,
        "train": {"n": len(y), "wa": train_scores["wa"], "ua": train_scores["ua"]},
        "seconds": {"features": round(t1 - t0, 3), "training": round(t2 - t1, 3)},
        "embeddings": {"computed": emb.computed, "cached": emb.cached},
        "created": datetime.now().isoformat(timespec="seconds"),
    }  # fmt: skip
    return Training(head, metrics)


def cv_line(cv: dict) -> str:
    how = "speaker-grouped" if cv["grouping"] == "speaker" else "stratified"
    parts = [f"{m} {cv[k]['mean']:.3f} ± {cv[k]['std']:.3f}" for m, k in (("WA", "wa"), ("UA", "ua"), ("macro F1", "macro_f1"))]
    return f"{cv['folds']}-fold {how} cross-validation: " + "   ".join(parts)


def card_text(m: dict) -> str:
    """card.md: what the head is, what it was trained on and how well it did in cross-validation."""
    d, cv = m["data"], m["cv"]
    counts = "\n".join(f"| {k} | {n} |" for k, n in d["counts"].items())
    folds = "\n".join(
        f"| {i + 1} | {wa:.3f} | {ua:.3f} | {f1:.3f} |"
        for i, (wa, ua, f1) in enumerate(zip(cv["wa"]["folds"], cv["ua"]["folds"], cv["macro_f1"]["folds"]))
    )
    skipped = [f"- {f['file']}: {f['error']}" for f in d["failed"]] + [
        f"- {x['file']}: same audio as {x['same_as']}" for x in d["duplicates"]
    ]
    kind = "logistic regression" if m["kind"] == "logreg" else f"MLP ({m['options']['hidden']} hidden units, relu)"
    return f"""# Head `{m["head"]}`

A {kind} over the {m["model"]["embed_dim"]}-d utterance features of **{m["model"]["id"]}**, trained
{m["created"]} on {d["files"]} files from `{d["source"]}`{f", {d['speakers']} speakers" if d["speakers"] else ""}.
Labels: {", ".join(m["labels"])}.

## Data

| label | files |
|---|---|
{counts}

{"Left out (labels): " + ", ".join(f"{k} ({n})" for k, n in d["left_out"].items()) if d["left_out"] else ""}
{"Skipped files:" + chr(10) + chr(10).join(skipped) if skipped else "No file was skipped."}

## Cross-validation

{cv_line(cv)} (mean ± std over folds).

| fold | WA | UA | macro F1 |
|---|---|---|---|
{folds}

All out-of-fold predictions together (confusion matrix: confusion.csv, confusion.png):

{scores_table(cv["pooled"])}

{chr(10).join("- " + n for n in cv["notes"])}

## Use

```bash
python -m emotion_app predict speech.wav --model {m["model"]["id"]} --head PATH/TO/{m["head"]}
```

```python
Engine(model="{m["model"]["id"]}", heads=["PATH/TO/{m["head"]}"]).predict("speech.wav").heads["{m["head"]}"].emotion
```

The head is refused by a model other than {m["model"]["id"]} ({m["model"]["embed_dim"]}-d features).
"""
