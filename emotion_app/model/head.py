"""A head of your own: a small classifier on emotion2vec's features, applied with numpy only.

A head folder (HEAD_DIR, written by `train.py`, read here):

    head.safetensors  `scaler.mean`, `scaler.scale` (D,) and `layers.{i}.weight` (in, out),
                      `layers.{i}.bias` (out,); metadata: format, kind, model_id, embed_dim
    labels.json       {"labels": [...], "names": {label: {"zh": ..., "emoji": ...}}}
    metrics.json      the cross-validation results and the training data's counts
    card.md           the same, for people

Applying a head: x -> (x - mean) / scale -> each layer x @ W + b, relu between layers -> softmax.
A logistic-regression head has one layer, an MLP more. sklearn fits them (train.py), but only
plain weights are stored and neither sklearn nor torch is needed to apply them. The head's name
is its folder's name; a head made for another model (its name or embedding size) is refused.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import EmotionAppError
from .logits import softmax

logger = logging.getLogger(__name__)

FORMAT = "emotion_app.head/1"
WEIGHTS_FILE = "head.safetensors"
LABELS_FILE = "labels.json"
METRICS_FILE = "metrics.json"
CARD_FILE = "card.md"
KINDS = ("logreg", "mlp")


class HeadError(EmotionAppError):
    """A head folder is missing, unreadable or made for another model (the message says which)."""

    code = "bad_head"


def model_key(model_id: str) -> str:
    """A model's name without hub owner or parent folders, lower case: `iic/emotion2vec_plus_large`,
    the alias `emotion2vec_plus_large`, the Hugging Face id and a local folder of that name agree."""
    return str(model_id).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].lower()


def engine_model_id(engine) -> str:
    """The id of the model an engine runs: an ONNX export's source model, else result.json's model id."""
    return getattr(engine.backend, "model_id", None) or engine.model_info["id"]


@dataclass(eq=False)  # compared and hashed by identity: EngineOptions may hold heads
class Head:
    """A classifier over the D-dimensional utterance (or frame) feature of one model."""

    name: str
    labels: tuple[str, ...]
    layers: list[tuple[np.ndarray, np.ndarray]]  # [(W (in, out), b (out,))], relu between them
    mean: np.ndarray  # (D,) feature standardisation
    scale: np.ndarray  # (D,)
    model_id: str  # the model whose features it was trained on (result.json's model id)
    kind: str = "logreg"
    names: dict[str, dict[str, str]] = field(default_factory=dict)  # label -> {"zh": ..., "emoji": ...}
    path: Path | None = None

    def __post_init__(self):
        self.labels = tuple(self.labels)
        dims = [len(self.mean), *(w.shape[1] for w, _ in self.layers)]
        ok = len(self.scale) == dims[0] and all(
            w.ndim == 2 and w.shape[0] == dims[i] and b.shape == (w.shape[1],) for i, (w, b) in enumerate(self.layers)
        )
        if not self.layers or not ok or dims[-1] != len(self.labels) or len(self.labels) < 2:
            raise HeadError(f"head {self.name!r}: its weights do not fit together ({dims} for {len(self.labels)} labels)")

    @property
    def embed_dim(self) -> int:
        return len(self.mean)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(D,) -> (V,) or (T, D) -> (T, V) float32 probabilities, V = len(self.labels)."""
        x = (np.asarray(features, dtype=np.float32) - self.mean) / self.scale
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        return softmax(x).astype(np.float32)

    def check(self, model_id: str, embed_dim: int) -> None:
        """Refuse a head made for another model: its embedding size, or its model's name."""
        where = f" ({self.path})" if self.path else ""
        if self.embed_dim != embed_dim:
            raise HeadError(
                f"head {self.name!r}{where} was trained on {self.embed_dim}-d features of {self.model_id}; "
                f"this model ({model_id}) gives {embed_dim}-d features. Train a head for it with train-head."
            )
        if model_key(self.model_id) != model_key(model_id):
            raise HeadError(
                f"head {self.name!r}{where} was trained for the model {self.model_id}, not {model_id}: its features "
                "differ even at the same size. Use it with that model, or train a head for this one."
            )

    def label_info(self, label: str) -> dict[str, str]:
        return dict(self.names.get(label, {}))

    # -- files ------------------------------------------------------------------------------------
    def weights_bytes(self) -> bytes:
        from safetensors.numpy import save

        tensors = {"scaler.mean": self.mean.astype(np.float32), "scaler.scale": self.scale.astype(np.float32)}
        for i, (w, b) in enumerate(self.layers):
            tensors[f"layers.{i}.weight"] = np.ascontiguousarray(w, dtype=np.float32)
            tensors[f"layers.{i}.bias"] = np.ascontiguousarray(b, dtype=np.float32)
        meta = {"format": FORMAT, "kind": self.kind, "model_id": self.model_id, "embed_dim": str(self.embed_dim)}
        return save(tensors, metadata=meta)

    def labels_json(self) -> str:
        names = {k: v for k, v in self.names.items() if k in self.labels and v}
        return json.dumps({"labels": list(self.labels), "names": names}, ensure_ascii=False, indent=2) + "\n"

    @classmethod
    def load(cls, folder: str | Path) -> Head:
        """The head in `folder` (head.safetensors + labels.json), named after the folder."""
        from safetensors import SafetensorError, safe_open

        folder = Path(folder)
        if not (folder / WEIGHTS_FILE).is_file() or not (folder / LABELS_FILE).is_file():
            raise HeadError(f"{folder} is not a head folder: it needs {WEIGHTS_FILE} and {LABELS_FILE} (made by train-head)")
        try:
            with safe_open(str(folder / WEIGHTS_FILE), framework="np") as f:
                meta, tensors = f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}
            spec = json.loads((folder / LABELS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError, SafetensorError) as exc:
            raise HeadError(f"head folder {folder} cannot be read: {exc}") from None
        if meta.get("format") != FORMAT:
            raise HeadError(f"{folder / WEIGHTS_FILE} is not an emotion_app head (format {meta.get('format')!r}, not {FORMAT})")
        try:
            n = sum(1 for k in tensors if k.endswith(".weight"))
            layers = [(tensors[f"layers.{i}.weight"], tensors[f"layers.{i}.bias"]) for i in range(n)]
            return cls(
                name=folder.resolve().name,
                labels=tuple(str(x) for x in spec["labels"]),
                layers=layers,
                mean=tensors["scaler.mean"],
                scale=tensors["scaler.scale"],
                model_id=meta["model_id"],
                kind=meta.get("kind", "logreg"),
                names={str(k): dict(v) for k, v in (spec.get("names") or {}).items()},
                path=folder,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise HeadError(f"head folder {folder} is incomplete: missing {exc}") from None


def is_head_folder(folder: Path) -> bool:
    return (folder / WEIGHTS_FILE).is_file()


def load_heads(specs: Iterable, model_id: str, embed_dim: int) -> dict[str, Head]:
    """name -> Head for `specs`: Head objects, head folders, or folders whose subfolders are heads.
    Each is checked against the model (`Head.check`); two heads of one name are refused."""
    heads: dict[str, Head] = {}
    for spec in specs:
        if isinstance(spec, Head):
            found = [spec]
        else:
            folder = Path(spec)
            if is_head_folder(folder):
                found = [Head.load(folder)]
            elif folder.is_dir() and (subs := sorted(p for p in folder.iterdir() if p.is_dir() and is_head_folder(p))):
                found = [Head.load(p) for p in subs]
            else:
                raise HeadError(
                    f"no head in {folder}: give a folder made by train-head (head.safetensors, labels.json), or a folder of them"
                )
        for head in found:
            head.check(model_id, embed_dim)
            if head.name in heads:
                raise HeadError(f"two heads are named {head.name!r}; heads are named after their folders, rename one")
            heads[head.name] = head
    return heads


def select_heads(available: Mapping[str, Head], wanted: Sequence | None, model_id: str, embed_dim: int) -> list[Head]:
    """The heads one call applies: all of `available` for None; else each name (of `available`)
    or Head object (checked against the model) in `wanted`."""
    if wanted is None:
        return list(available.values())
    out: list[Head] = []
    for item in wanted:
        if isinstance(item, Head):
            item.check(model_id, embed_dim)
            out.append(item)
        elif item in available:
            out.append(available[item])
        else:
            from ..fields import OptionError

            known = ", ".join(available) or "none (load heads with --head)"
            raise OptionError(f"head {item!r} is not loaded; loaded heads: {known}")
    return out


def frame_readings(heads: Sequence[Head], features: np.ndarray) -> dict[str, np.ndarray]:
    """name -> (T, V) probabilities of each head over one chunk's (T, D) frame features."""
    return {head.name: head.probabilities(features) for head in heads}
