"""Where the model comes from: a local folder, ModelScope or Hugging Face (never at import time)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..constants import DEFAULT_MODEL
from ..errors import ModelLoadError

logger = logging.getLogger(__name__)

HUBS = {"ms": "ModelScope", "hf": "Hugging Face"}
# alias -> (ModelScope id, Hugging Face id)
ALIASES = {
    "emotion2vec_plus_large": ("iic/emotion2vec_plus_large", "emotion2vec/emotion2vec_plus_large"),
    "emotion2vec_plus_base": ("iic/emotion2vec_plus_base", "emotion2vec/emotion2vec_plus_base"),
    "emotion2vec_plus_seed": ("iic/emotion2vec_plus_seed", "emotion2vec/emotion2vec_plus_seed"),
}
REQUIRED_FILES = ("config.yaml", "tokens.txt", "model.pt")
ALLOW = ["config.yaml", "tokens.txt", "model.pt", "configuration.json", "README.md"]


def hub_id(model: str, hub: str) -> str:
    """The repository id to fetch for `model` (an alias or an id) on `hub`."""
    if hub not in HUBS:
        raise ModelLoadError(f"unknown hub {hub!r}: use 'ms' (ModelScope) or 'hf' (Hugging Face)")
    name = model.split("/")[-1]
    if name in ALIASES:
        return ALIASES[name][0 if hub == "ms" else 1]
    return model


def check_model_dir(path: Path) -> Path:
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise ModelLoadError(
            f"model folder {path} lacks {', '.join(missing)}; it needs config.yaml, tokens.txt and model.pt "
            "(as downloaded from iic/emotion2vec_plus_large)"
        )
    return path


def _download(repo: str, hub: str, local_only: bool, cache_dir, endpoint):
    if hub == "ms":
        from modelscope.hub.snapshot_download import snapshot_download

        return snapshot_download(repo, cache_dir=cache_dir, local_files_only=local_only, allow_patterns=ALLOW, endpoint=endpoint)
    from huggingface_hub import snapshot_download

    return snapshot_download(repo, cache_dir=cache_dir, local_files_only=local_only, allow_patterns=ALLOW, endpoint=endpoint)


def resolve_model(model: str = DEFAULT_MODEL, hub: str = "ms", *, cache_dir=None, endpoint: str | None = None) -> Path:
    """A local model folder for `model`: a folder path, an alias or a hub id.

    Hub ids are looked up in the hub's local cache first and downloaded (with progress bars)
    only when missing. Raises ModelLoadError naming the id, the hub and how to use a local folder.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return check_model_dir(path)
    if model.startswith((".", "/", "~")) or path.suffix:
        raise ModelLoadError(f"model folder {model!r} does not exist")
    repo = hub_id(model, hub)
    try:
        folder = _download(repo, hub, True, cache_dir, endpoint)
        if all((Path(folder) / f).is_file() for f in REQUIRED_FILES):
            logger.info("using cached %s from %s: %s", repo, HUBS[hub], folder)
            return Path(folder)
    except Exception:  # noqa: BLE001 - not cached: fall through to a download
        pass
    logger.info("downloading %s from %s (about 2 GB for plus_large)", repo, HUBS[hub])
    try:
        folder = Path(_download(repo, hub, False, cache_dir, endpoint))
    except Exception as exc:  # noqa: BLE001 - hub clients raise many types; all mean "not obtained"
        other = "hf" if hub == "ms" else "ms"
        raise ModelLoadError(
            f"Could not download model '{repo}' from {HUBS[hub]} ({type(exc).__name__}: {str(exc)[:200]}). "
            f"Check the network and the id, try the other hub (--hub {other}), or download the model folder "
            "elsewhere and pass its path: --model /path/to/emotion2vec_plus_large "
            "(containing config.yaml, tokens.txt, model.pt)."
        ) from exc
    return check_model_dir(folder)
