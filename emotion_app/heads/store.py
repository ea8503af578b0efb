"""Where the page keeps the heads it trains: `<outputs>/heads/<name>/`, one folder per head,
claimed atomically (two sessions training heads of one name never overwrite each other) and
written whole or not at all (a failed training leaves no folder).

The retention sweeper deletes only the output folders (`outputs_*`), so heads stay. The CLI's
`train-head --out HEAD_DIR` writes where it is told (heads/report.write_folder).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ..errors import EmotionAppError
from ..model.head import WEIGHTS_FILE
from .dataset import Dataset
from .report import write_folder
from .train import Training, TrainOptions, train_head

HEADS_DIR = "heads"  # under the outputs folder


def head_folder_name(name: str | None) -> str:
    """A safe folder (and head) name from what the user typed."""
    clean = re.sub(r"[^\w-]+", "_", str(name or "")).strip("_")[:40]
    return clean or "my_labels"


def reserve_head_folder(outputs_dir: Path, name: str) -> Path:
    """An empty new folder `<outputs>/heads/<name>` (`_2`, `_3`, ... when taken), claimed atomically."""
    root = Path(outputs_dir) / HEADS_DIR
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        folder = root / (name if n == 1 else f"{name}_{n}")
        try:
            os.mkdir(folder)
            return folder
        except FileExistsError:
            continue
    raise EmotionAppError(f"too many heads named {name}; choose another name")


def train_and_store(
    engine, data: Dataset, outputs_dir: Path, name: str | None, *, kind: str = "logreg", names=None, progress=None
) -> tuple[Path, Training]:
    """Train a head on `data` and keep it in a new folder under `<outputs>/heads/`: (folder, run).
    Nothing is left behind when training or writing fails."""
    folder = reserve_head_folder(outputs_dir, head_folder_name(name))
    try:
        run = train_head(engine, data, name=folder.name, names=names, options=TrainOptions(kind=kind), progress=progress)
        write_folder(folder, run.files(), WEIGHTS_FILE)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder, run
