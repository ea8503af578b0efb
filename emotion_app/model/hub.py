"""Where models come from: a local folder, ModelScope or Hugging Face (never at import time).

One flow for every model the package runs (`HubModel`: the emotion2vec+ models, CAM++): a local
folder is used as it is; an alias or a hub id is looked up in the hub's local cache first and
downloaded (with the hub's progress bars) only when its files are missing there; offline, one
ModelLoadError names the id, the hub and how to use a local folder instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..constants import DEFAULT_MODEL, Hub
from ..errors import ModelLoadError

logger = logging.getLogger(__name__)

HUB_NAMES: dict[Hub, str] = {"ms": "ModelScope", "hf": "Hugging Face"}


@dataclass(frozen=True)
class HubModel:
    """A kind of model folder: its files, its aliases and how a user points at a copy of it."""

    what: str  # "model", "speaker model": how messages name it
    required: tuple[str, ...]  # files a folder must hold
    aliases: dict[str, tuple[str, str]] = field(default_factory=dict)  # alias -> (ModelScope id, Hugging Face id)
    extra: tuple[str, ...] = ("configuration.json", "README.md")  # fetched when present, not needed
    flag: str = "--model"  # the option that takes a local folder
    placeholder: str = "/path/to/folder"  # the folder in the advice (a placeholder, not a path of this machine)
    size: str = ""  # for the download's log line, e.g. "about 2 GB"

    @property
    def allow(self) -> list[str]:
        return [*self.required, *self.extra]

    def hub_id(self, model: str, hub: str) -> str:
        """The repository to fetch for `model` (an alias, an id of either hub, or any id) on `hub`."""
        if hub not in HUB_NAMES:
            raise ModelLoadError(f"unknown hub {hub!r}: use 'ms' (ModelScope) or 'hf' (Hugging Face)")
        name = model.split("/")[-1]
        for alias, ids in self.aliases.items():
            if model == alias or name == alias or model in ids:
                return ids[0 if hub == "ms" else 1]
        return model

    def folder_advice(self) -> str:
        """How to use a local copy instead of a download."""
        return (
            f"download the {self.what} folder elsewhere and pass its path: {self.flag} {self.placeholder} "
            f"(containing {', '.join(self.required)})"
        )

    def check(self, path: Path) -> Path:
        missing = [f for f in self.required if not (path / f).is_file()]
        if missing:
            raise ModelLoadError(f"{self.what} folder {path} lacks {', '.join(missing)}; it needs {', '.join(self.required)}")
        return path


EMOTION2VEC = HubModel(
    "model",
    ("config.yaml", "tokens.txt", "model.pt"),
    {
        "emotion2vec_plus_large": ("iic/emotion2vec_plus_large", "emotion2vec/emotion2vec_plus_large"),
        "emotion2vec_plus_base": ("iic/emotion2vec_plus_base", "emotion2vec/emotion2vec_plus_base"),
        "emotion2vec_plus_seed": ("iic/emotion2vec_plus_seed", "emotion2vec/emotion2vec_plus_seed"),
    },
    placeholder="/path/to/emotion2vec_plus_large",
    size="about 2 GB for plus_large",
)
REQUIRED_FILES = EMOTION2VEC.required


MS_REACH_TIMEOUT_S = 10.0  # the one request that tells whether ModelScope's endpoint answers at all


def _reach(endpoint: str | None) -> None:
    """Raise ConnectionError when ModelScope's endpoint does not answer (any HTTP answer will do).

    ModelScope's client retries a refused or unresolved connection with backoff (1 + 2 + 4 s): an
    offline user waited 7 s for the error. One request first says it at once; `requests` follows
    the same proxy settings (HTTPS_PROXY, ...) as the client does."""
    import requests
    from modelscope.hub.utils.utils import resolve_endpoint

    url = resolve_endpoint(endpoint)
    try:
        requests.head(url, timeout=MS_REACH_TIMEOUT_S, allow_redirects=False)
    except requests.RequestException as exc:
        raise ConnectionError(f"{url} does not answer ({type(exc).__name__})") from exc


def _download(repo: str, hub: str, local_only: bool, cache_dir, endpoint, allow: list[str]):
    if hub == "ms":
        from modelscope.hub.snapshot_download import snapshot_download

        if not local_only:
            _reach(endpoint)
        return snapshot_download(repo, cache_dir=cache_dir, local_files_only=local_only, allow_patterns=allow, endpoint=endpoint)
    from huggingface_hub import snapshot_download

    return snapshot_download(repo, cache_dir=cache_dir, local_files_only=local_only, allow_patterns=allow, endpoint=endpoint)


def resolve(kind: HubModel, model: str, hub: str = "ms", *, cache_dir=None, endpoint: str | None = None) -> Path:
    """A local folder of `kind` for `model`: a folder path, an alias or a hub id (see the module
    docstring). Raises ModelLoadError naming the id and the hub, and how to use a local folder."""
    path = Path(model).expanduser()
    if path.is_dir():
        return kind.check(path)
    if model.startswith((".", "/", "~")) or path.suffix:
        raise ModelLoadError(f"{kind.what} folder {model!r} does not exist")
    repo = kind.hub_id(model, hub)
    try:
        folder = Path(_download(repo, hub, True, cache_dir, endpoint, kind.allow))
        if all((folder / f).is_file() for f in kind.required):
            logger.info("using cached %s from %s: %s", repo, HUB_NAMES[hub], folder)
            return folder
    except Exception:  # noqa: BLE001 - not cached: fall through to a download
        pass
    logger.info("downloading %s from %s%s", repo, HUB_NAMES[hub], f" ({kind.size})" if kind.size else "")
    try:
        folder = Path(_download(repo, hub, False, cache_dir, endpoint, kind.allow))
    except Exception as exc:  # noqa: BLE001 - hub clients raise many types; all mean "not obtained"
        other = "hf" if hub == "ms" else "ms"
        raise ModelLoadError(
            f"Could not download {kind.what} '{repo}' from {HUB_NAMES[hub]} ({type(exc).__name__}: {str(exc)[:200]}). "
            f"Check the network and the id, try the other hub (--hub {other}), or {kind.folder_advice()}."
        ) from exc
    return kind.check(folder)


def hub_id(model: str, hub: str) -> str:
    """The emotion model's repository id for `model` on `hub`."""
    return EMOTION2VEC.hub_id(model, hub)


def check_model_dir(path: Path) -> Path:
    return EMOTION2VEC.check(path)


def resolve_model(model: str = DEFAULT_MODEL, hub: str = "ms", *, cache_dir=None, endpoint: str | None = None) -> Path:
    """A local emotion2vec+ folder for `model`: a folder path, an alias or a hub id."""
    return resolve(EMOTION2VEC, model, hub, cache_dir=cache_dir, endpoint=endpoint)
