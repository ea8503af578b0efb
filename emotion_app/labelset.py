"""Label sets: results in a chosen subset of the model's emotions (`--labels angry,happy,neutral,sad`).

The probabilities over a subset S are the softmax over S's logits only, which equals the full
probabilities renormalised over S: p_S(i) = p(i) / sum_{j in S} p(j) (FunASR's way of restricting
categories, masking the other logits to -inf, gives the same numbers). The engine applies a set
to every probability it returns (utterance, frames, a long input's mean), so segments, summaries,
speakers, charts, tables and exports are all in the set; result.json records it as `label_set`.

Common sets: IEMOCAP's 4 classes (`angry,happy,neutral,sad`; map the data's `excited` onto happy
with `evaluate --map`), and positive / negative / neutral through sentiment.py instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .constants import LABEL_KEYS
from .fields import OptionError

PRESETS = {"iemocap4": ("angry", "happy", "neutral", "sad")}


@dataclass(frozen=True)
class LabelSet:
    """The chosen labels, in the model's output order."""

    keys: tuple[str, ...]

    @classmethod
    def parse(cls, value, available: Sequence[str] = LABEL_KEYS) -> LabelSet | None:
        """The `labels` field: comma-separated names or a list, or a preset (iemocap4); None, "",
        "all" -> None (every label). A name the model lacks is an OptionError listing the valid ones."""
        if value is None:
            return None
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        names = [str(v).strip().lower() for v in items if str(v).strip()]
        if names in ([], ["all"]):
            return None
        if len(names) == 1 and names[0] in PRESETS:
            names = list(PRESETS[names[0]])
        unknown = [n for n in names if n not in available]
        if unknown:
            raise OptionError(
                f"labels: {', '.join(map(repr, unknown))} {'is not a label' if len(unknown) == 1 else 'are not labels'} "
                f"of the model; choose from {', '.join(available)} (or the preset {', '.join(PRESETS)})",
                "bad_labels",
            )
        keys = tuple(k for k in available if k in names)
        if len(keys) < 2:
            raise OptionError(
                f"labels: choose at least two labels (got {', '.join(keys)}); all of them: {', '.join(available)}", "bad_labels"
            )
        return None if len(keys) == len(available) else cls(keys)

    def restrict(self, labels: Sequence[str], probabilities: np.ndarray) -> np.ndarray:
        """(..., V) probabilities over `labels` -> (..., K) over this set, renormalised (float32)."""
        index = [list(labels).index(k) for k in self.keys]
        p = np.asarray(probabilities, dtype=np.float64)[..., index]
        total = p.sum(-1, keepdims=True)
        return (p / np.where(total > 0, total, 1.0)).astype(np.float32)

    def to_list(self) -> list[str]:
        return list(self.keys)
