"""Your own labels: evaluate on a labelled set, train a head on the embeddings, use it everywhere.

    dataset   DATA (label folders, CSV/JSONL, zip) -> labelled items; label maps; the size rules
    cache     utterance embeddings per file and model, on disk (computed once)
    report    WA / UA / macro F1 / confusion (scikit-learn), CSV and PNG files, folders written whole
    evaluate  a head (the model's 9-class one or yours) scored on a labelled set
    train     cross-validation (speaker-grouped when speakers are known), then a head fitted on all
    head      the Head type: safetensors weights + labels.json, applied with numpy only
    commands  `python -m emotion_app evaluate | train-head`

Importing this package loads nothing heavy (the CLI's --help stays instant); numpy comes with
`head`, scikit-learn only when a head is trained or scored.
"""

from __future__ import annotations

import importlib

__all__ = ["Head", "HeadError", "HeadReading", "load_heads"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module(".head", __name__), name)
    raise AttributeError(f"module 'emotion_app.heads' has no attribute {name!r}")
