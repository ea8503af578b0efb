"""The models a server serves, by name: its base engine and fine-tuned folders beside it
(`serve --models DIR,NAME=DIR`), each request choosing one (`model=` on REST, the page's model
list, the Gradio API's `model`, the MCP tools' `model` argument).

    models = ModelSet(engine, ["models/mine", "calls=models/calls_v2"])
    models.names                 # ("emotion2vec_plus_large", "mine", "calls")
    models.labels("mine")        # ("angry", "calm", ...) from tokens.txt, nothing loaded
    models.engine("mine")        # the Engine: loaded on first use, then kept (blocking: a worker thread)
    models.add("calls", folder)  # served from now on (the page's fine-tune jobs, web/ui/tab_labels.py)

Each folder is checked when the set is made (a model folder: config.yaml, model.pt, tokens.txt,
or with `--backend onnx` an export-onnx folder; a name no other model has), and loaded on the
first request that asks for it, with the base engine's options (device, dtype, backend, threads,
limits) but no custom heads (a head is fitted to one model's features, model/head.py). Loaded
models stay loaded: each is a whole copy of the network (plus_large: 1.2 GB in fp32, 0.6 GB in
bf16), so a server with N folders may come to hold N + 1 models once each has been asked for.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path

from .constants import label_for_token
from .engine import Engine
from .errors import EmotionAppError
from .fields import OptionError

logger = logging.getLogger(__name__)

MODEL_FILES = {"torch": ("config.yaml", "tokens.txt", "model.pt"), "onnx": ("model.onnx", "labels.json", "head.npz")}


class UnknownModel(EmotionAppError):
    """A request named a model the server does not serve (the message lists the ones it does)."""

    code = "unknown_model"


def parse_folders(folders) -> dict[str, Path]:
    """`"DIR,NAME=DIR"` (or a list of such items) -> {name: folder}; a folder's name is its base
    name unless given. OptionError for an empty item or a name given twice."""
    items = folders.split(",") if isinstance(folders, str) else list(folders or ())
    named: dict[str, Path] = {}
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        name, sep, folder = item.partition("=")
        name, folder = (name.strip(), folder.strip()) if sep else (Path(item).name, item)
        if not name or not folder:
            raise OptionError(f"--models: {item!r} is not DIR or NAME=DIR")
        if name in named:
            raise OptionError(f"--models: two models are named {name!r}; name one NAME=DIR")
        named[name] = Path(folder)
    return named


def folder_labels(folder: Path, backend: str = "torch") -> tuple[str, ...]:
    """A model folder's labels as the engine gives them: tokens.txt without its `unuse*` tokens, or
    an ONNX export's labels.json."""
    if backend == "onnx":
        from .model.onnx_backend import read_labels

        return tuple(read_labels(Path(folder))["labels"])
    tokens = (Path(folder) / "tokens.txt").read_text(encoding="utf-8").split("\n")
    return tuple(label_for_token(t.strip()).key for t in tokens if t.strip() and not t.strip().startswith("unuse"))


class ModelSet:
    """The base engine and the fine-tuned folders served beside it (see the module docstring)."""

    def __init__(self, base: Engine, folders=None):
        self.base = base
        self.base_name = base.model_info["id"]
        self.folders = parse_folders(folders)
        if self.base_name in self.folders:
            raise OptionError(f"--models: {self.base_name!r} is the base model's name; name the folder NAME=DIR")
        self._labels = {self.base_name: tuple(base.labels)}
        for name, folder in self.folders.items():
            self._labels[name] = self._checked(folder)
        self._engines: dict[str, Engine] = {self.base_name: base}
        self._lock = threading.Lock()  # one load at a time, in a worker thread (never the event loop)

    def _checked(self, folder: Path) -> tuple[str, ...]:
        """The labels of a model folder; OptionError when it is not one this server can load."""
        backend = self.base.options.backend
        missing = [f for f in MODEL_FILES[backend] if not (Path(folder) / f).is_file()]
        if missing:
            written = "fine-tune, then export-onnx (the server runs --backend onnx)" if backend == "onnx" else "fine-tune"
            lacks = ", ".join(missing)
            raise OptionError(f"--models: {folder} is not a model folder (no {lacks}); give folders written by {written}")
        return folder_labels(folder, backend)

    def add(self, name: str, folder: Path) -> None:
        """Serve `folder` as `name` from now on (a fine-tune the page ran); a model of that name is
        replaced, the base model never. Loaded on first use, as the others."""
        if name == self.base_name:
            raise OptionError(f"{name!r} is the base model's name; choose another name")
        labels = self._checked(folder)
        with self._lock:  # new dicts, not changed ones: readers on the event loop (health) take no lock
            self.folders = {**self.folders, name: Path(folder)}
            self._labels = {**self._labels, name: labels}
            self._engines.pop(name, None)  # an earlier model of that name: the new weights on next use

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._labels)

    def labels(self, name: str | None = None) -> tuple[str, ...]:
        """The labels a model gives, without loading it."""
        return self._labels[self.check(name)]

    def all_labels(self) -> dict[str, list[str]]:
        """Each served model's labels (no lock, no disk: safe on the event loop)."""
        return {name: list(labels) for name, labels in self._labels.items()}

    def check(self, name: str | None) -> str:
        """The served name for `name` (None or "": the base model); UnknownModel for another."""
        if not name:
            return self.base_name
        if name not in self._labels:
            raise UnknownModel(f"No model named {name!r} is served here; choose one of: {', '.join(self.names)}.")
        return name

    def engine(self, name: str | None = None) -> Engine:
        """The Engine of model `name` (None: the base), loaded on first use. Blocks while it loads:
        call it from a worker thread."""
        name = self.check(name)
        engine = self._engines.get(name)
        if engine is not None:
            return engine
        with self._lock:
            if name not in self._engines:  # another request may have loaded it meanwhile
                options = replace(self.base.options, model=str(self.folders[name]), heads=())
                self._engines[name] = Engine(options)
                logger.info("model %s loaded from %s", name, self.folders[name])
            return self._engines[name]

    def loaded(self) -> list[str]:
        return [n for n in self.names if n in self._engines]


def served_engine(engine: Engine | None, models: ModelSet | None, name: str | None) -> Engine | None:
    """The engine a request asked for: `engine` itself without a set or a name; else the set's."""
    if models is None or engine is None:
        if name and engine is not None and name != engine.model_info["id"]:
            raise UnknownModel(f"No model named {name!r} is served here; only {engine.model_info['id']}.")
        return engine
    return models.engine(name)
