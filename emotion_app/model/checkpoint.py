"""Reading `model.pt` (FunASR's layouts) into the native model, with a safetensors cache.

FunASR keeps random weights for any key it cannot match; here a missing weight or a shape
mismatch is an error that names the keys.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path

import torch

from ..errors import ModelLoadError
from .config import ModelConfig

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
_ENC = r"modality_encoders\.AUDIO\."
_BLOCK_PARTS = {"mlp.fc1": "fc1", "mlp.fc2": "fc2"}

# (FunASR name pattern, native name builder). Checkpoint keys are matched after the wrapper
# prefixes `module.` and `d2v_model.` are removed.
_TO_NATIVE: list[tuple[re.Pattern, callable]] = [
    (re.compile(_ENC + r"local_encoder\.conv_layers\.(\d+)\.0\.weight$"), lambda m: f"features.convs.{m[1]}.weight"),
    (re.compile(_ENC + r"local_encoder\.conv_layers\.(\d+)\.2\.1\.(\w+)$"), lambda m: f"features.norms.{m[1]}.{m[2]}"),
    (re.compile(_ENC + r"local_encoder\.conv_layers\.0\.2\.(\w+)$"), lambda m: f"features.norms.0.{m[1]}"),
    (re.compile(_ENC + r"project_features\.1\.(\w+)$"), lambda m: f"feature_norm.{m[1]}"),
    (re.compile(_ENC + r"project_features\.2\.(\w+)$"), lambda m: f"feature_proj.{m[1]}"),
    (re.compile(_ENC + r"relative_positional_encoder\.0\.(weight|bias)$"), lambda m: f"pos_conv.pre_norm.{m[1]}"),
    (
        re.compile(_ENC + r"relative_positional_encoder\.(?:1\.)?(\d+)\.0\.(\w+)$"),
        lambda m: f"pos_conv.convs.{int(m[1]) - 1}.{m[2]}",
    ),
    (re.compile(_ENC + r"(extra_tokens|alibi_scale)$"), lambda m: m[1]),
    (re.compile(_ENC + r"context_encoder\.norm\.(\w+)$"), lambda m: f"prenet_norm.{m[1]}"),
    (
        re.compile(
            r"(" + _ENC + r"context_encoder\.)?blocks\.(\d+)\.(attn\.qkv|attn\.proj|norm1|norm2|mlp\.fc1|mlp\.fc2)\.(\w+)$"
        ),
        lambda m: f"{'prenet' if m[1] else 'blocks'}.{m[2]}.{_BLOCK_PARTS.get(m[3], m[3])}.{m[4]}",
    ),
    (re.compile(r"proj\.(weight|bias)$"), lambda m: f"head.{m[1]}"),
]


def native_key(key: str) -> str | None:
    """Native parameter name for a FunASR/fairseq checkpoint key, or None for unused keys."""
    for prefix in ("module.", "d2v_model."):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    for pattern, build in _TO_NATIVE:
        m = pattern.match(key)
        if m:
            return build(m)
    return None


def funasr_key(name: str, cfg: ModelConfig) -> str:
    """FunASR's key (without `d2v_model.`) for a native parameter name: the inverse of native_key."""
    enc = "modality_encoders.AUDIO."
    parts = name.split(".")
    if parts[0] == "features":
        i, leaf = parts[2], parts[3]
        if parts[1] == "convs":
            return f"{enc}local_encoder.conv_layers.{i}.0.{leaf}"
        norm_path = "2.1" if cfg.extractor_mode == "layer_norm" else "2"
        return f"{enc}local_encoder.conv_layers.{i}.{norm_path}.{leaf}"
    if parts[0] in ("feature_norm", "feature_proj"):
        return f"{enc}project_features.{1 if parts[0] == 'feature_norm' else 2}.{parts[1]}"
    if parts[0] == "pos_conv":
        if parts[1] == "pre_norm":
            return f"{enc}relative_positional_encoder.0.{parts[2]}"
        inner = "1." if cfg.conv_pos_pre_ln else ""
        return f"{enc}relative_positional_encoder.{inner}{int(parts[2]) + 1}.0.{parts[3]}"
    if parts[0] in ("extra_tokens", "alibi_scale"):
        return enc + parts[0]
    if parts[0] == "prenet_norm":
        return f"{enc}context_encoder.norm.{parts[1]}"
    if parts[0] in ("prenet", "blocks"):
        sub = {v: k for k, v in _BLOCK_PARTS.items()}.get(parts[2], ".".join(parts[2:-1]))
        base = f"{enc}context_encoder.blocks" if parts[0] == "prenet" else "blocks"
        return f"{base}.{parts[1]}.{sub}.{parts[-1]}"
    if parts[0] == "head":
        return f"proj.{parts[1]}"
    raise KeyError(name)


def hub_state(weights: dict[str, torch.Tensor], cfg: ModelConfig, prefix: str = "d2v_model.") -> dict[str, torch.Tensor]:
    """Native weights under the hub's keys (model.pt holds `{"model": hub_state(...)}`): the
    backbone's behind `prefix`, the head's as `proj.*`."""
    state = {}
    for name, w in weights.items():
        key = funasr_key(name, cfg)
        state[key if key.startswith("proj.") else prefix + key] = w
    return state


def _unwrap(obj) -> dict:
    # The wrappers FunASR's load_pretrained_model accepts, in its order.
    for wrapper in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict):
        raise ModelLoadError(f"model.pt holds a {type(obj).__name__}, not a dict of weights")
    return obj


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Load model.pt safely (tensors only, memory-mapped) and return native-named weights."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing; a model folder needs config.yaml, tokens.txt and model.pt")
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:  # legacy (non-zip) files cannot be memory-mapped
            if "mmap" not in str(exc):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise ModelLoadError(
            f"cannot read {path}: {exc}. The file may be truncated or not a PyTorch checkpoint; download it again."
        ) from exc
    weights: dict[str, torch.Tensor] = {}
    for key, value in _unwrap(obj).items():
        name = native_key(str(key)) if isinstance(value, torch.Tensor) else None
        if name is None:
            continue
        if name in weights:
            raise ModelLoadError(f"{path}: two checkpoint keys map to the same weight {name!r} (e.g. {key!r})")
        weights[name] = value
    return weights


def check_weights(weights: dict[str, torch.Tensor], expected: dict[str, torch.Size], cfg: ModelConfig, source) -> None:
    """Refuse missing weights and shape mismatches, naming the checkpoint keys."""
    if "alibi_scale" in weights and weights["alibi_scale"].dim() == 4:  # older layout (fairseq upgrade)
        weights["alibi_scale"] = weights["alibi_scale"].unsqueeze(0)
    missing = [funasr_key(k, cfg) for k in expected if k not in weights]
    wrong = [
        f"{funasr_key(k, cfg)}: checkpoint {tuple(weights[k].shape)} vs config {tuple(shape)}"
        for k, shape in expected.items()
        if k in weights and weights[k].shape != shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} weights missing: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    if wrong:
        problems.append(f"{len(wrong)} shapes differ: {'; '.join(wrong[:8])}{' ...' if len(wrong) > 8 else ''}")
    if problems:
        raise ModelLoadError(
            f"{source} does not match its config.yaml: {'. '.join(problems)}. Use the config.yaml that came with this model.pt."
        )


def cache_root() -> Path:
    """Where converted weights are kept: $EMOTION_APP_CACHE, else ~/.cache/emotion_app."""
    env = os.environ.get("EMOTION_APP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "emotion_app"


def _fingerprint(path: Path) -> dict:
    st = path.stat()
    return {"format": CACHE_FORMAT, "source": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _cache_dir(path: Path) -> Path:
    return cache_root() / hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]


def load_cached(path: Path) -> dict[str, torch.Tensor] | None:
    """Native weights from the safetensors cache, if it was made from this very model.pt."""
    from safetensors.torch import load_file

    folder = _cache_dir(path)
    try:
        meta = json.loads((folder / "source.json").read_text())
    except (OSError, ValueError):
        return None
    if meta != _fingerprint(path):
        logger.info("weights cache is stale for %s; converting again", path)
        return None
    try:
        return load_file(folder / "model.safetensors")
    except Exception as exc:  # noqa: BLE001 - a damaged cache is rebuilt, never fatal
        logger.warning("ignoring damaged weights cache %s: %s", folder, exc)
        return None


def save_cache(path: Path, weights: dict[str, torch.Tensor]) -> None:
    """Write the converted weights beside a fingerprint of model.pt (atomically; failures only warn)."""
    from safetensors.torch import save_file

    folder = _cache_dir(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            save_file({k: v.contiguous() for k, v in weights.items()}, Path(tmp) / "model.safetensors")
            os.replace(Path(tmp) / "model.safetensors", folder / "model.safetensors")
        (folder / "source.json").write_text(json.dumps(_fingerprint(path)))
        logger.info("cached converted weights in %s", folder)
    except OSError as exc:
        logger.warning("could not cache converted weights in %s: %s", folder, exc)


def load_weights(path: Path, expected: dict[str, torch.Size], cfg: ModelConfig, use_cache: bool = True):
    """Native weights for `expected` from model.pt (via the cache when fresh), validated."""
    path = Path(path)
    weights = load_cached(path) if use_cache else None
    from_cache = weights is not None
    if weights is None:
        weights = read_checkpoint(path)
    check_weights(weights, expected, cfg, path)
    weights = {k: weights[k] for k in expected}
    if use_cache and not from_cache:
        save_cache(path, weights)
    return weights
