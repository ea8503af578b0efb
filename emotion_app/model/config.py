"""The model's architecture, read from a hub folder's config.yaml and tokens.txt."""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelLoadError


@dataclass(frozen=True)
class ModelConfig:
    """Everything the inference graph needs from config.yaml (training options are ignored)."""

    embed_dim: int = 1024
    num_heads: int = 16
    depth: int = 8  # main blocks
    prenet_depth: int = 4  # blocks of the audio context encoder
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-5
    norm_affine: bool = True
    normalize: bool = True  # layer-normalise the waveform before the model
    feature_layers: tuple[tuple[int, int, int], ...] = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
    extractor_mode: str = "layer_norm"
    conv_pos_width: int = 95
    conv_pos_depth: int = 5
    conv_pos_groups: int = 16
    conv_pos_pre_ln: bool = False
    num_extra_tokens: int = 10
    use_alibi: bool = True
    alibi_scale: float = 1.0
    alibi_scale_per_head: bool = True
    alibi_scale_per_layer: bool = False

    @property
    def conv_pos_kernel(self) -> int:
        return max(3, self.conv_pos_width // self.conv_pos_depth)

    @property
    def frame_stride(self) -> int:
        """Input samples between two output frames."""
        stride = 1
        for _, _, s in self.feature_layers:
            stride *= s
        return stride

    def num_frames(self, num_samples: int) -> int:
        """Frames the conv feature extractor yields for `num_samples` input samples."""
        n = num_samples
        for _, k, s in self.feature_layers:
            n = (n - k) // s + 1
            if n <= 0:
                return 0
        return n

    def min_samples(self) -> int:
        """Fewest input samples that give one frame (the receptive field)."""
        n = 1
        for _, k, s in reversed(self.feature_layers):
            n = (n - 1) * s + k
        return n


_BINOPS = {ast.Add: operator.add, ast.Mult: operator.mul}


def _literal(node: ast.AST):
    """Evaluate lists/tuples of ints joined by + and * (the only forms the spec uses)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_literal(node.left), _literal(node.right))
    raise ValueError(f"unsupported element {ast.dump(node)}")


def parse_feature_spec(spec: str) -> tuple[tuple[int, int, int], ...]:
    """Parse `feature_encoder_spec` such as "[(512, 10, 5)] + [(512, 3, 2)] * 4" without eval."""
    try:
        value = _literal(ast.parse(spec.strip(), mode="eval").body)
        layers = tuple(tuple(layer) for layer in value)
        if not layers or any(len(layer) != 3 or min(layer) <= 0 for layer in layers):
            raise ValueError("expected a non-empty list of (channels, kernel, stride)")
    except (SyntaxError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"config.yaml: cannot parse feature_encoder_spec {spec!r}: {exc}") from exc
    return layers


def config_from_dict(conf: dict) -> ModelConfig:
    """Build a ModelConfig from the parsed YAML of a hub folder's config.yaml."""
    try:
        mc = conf["model_conf"]
        audio = mc["modalities"]["audio"]
    except (KeyError, TypeError) as exc:
        raise ModelLoadError(f"config.yaml has no model_conf.modalities.audio section ({exc})") from exc
    if mc.get("layer_norm_first"):
        raise ModelLoadError("config.yaml: layer_norm_first=true is not an emotion2vec layout and is not supported")
    if audio.get("learned_alibi"):
        raise ModelLoadError("config.yaml: learned_alibi=true is not supported by this engine")
    if audio.get("extractor_mode", "layer_norm") not in ("layer_norm", "default"):
        raise ModelLoadError(f"config.yaml: unknown extractor_mode {audio.get('extractor_mode')!r}")
    cfg = ModelConfig(
        embed_dim=int(mc["embed_dim"]),
        num_heads=int(mc["num_heads"]),
        depth=int(mc["depth"]),
        prenet_depth=int(audio["prenet_depth"]),
        mlp_ratio=float(mc.get("mlp_ratio", 4.0)),
        norm_eps=float(mc.get("norm_eps", 1e-5)),
        norm_affine=bool(mc.get("norm_affine", True)),
        normalize=bool(mc.get("normalize", True)),
        feature_layers=parse_feature_spec(audio["feature_encoder_spec"]),
        extractor_mode=audio.get("extractor_mode", "layer_norm"),
        conv_pos_width=int(audio["conv_pos_width"]),
        conv_pos_depth=int(audio["conv_pos_depth"]),
        conv_pos_groups=int(audio["conv_pos_groups"]),
        conv_pos_pre_ln=bool(audio.get("conv_pos_pre_ln", False)),
        num_extra_tokens=int(audio.get("num_extra_tokens", 0)),
        use_alibi=bool(audio.get("use_alibi_encoder", True)),
        alibi_scale=float(audio.get("alibi_scale", 1.0)),
        alibi_scale_per_head=bool(audio.get("learned_alibi_scale_per_head", False)),
        alibi_scale_per_layer=bool(audio.get("learned_alibi_scale_per_layer", False)),
    )
    if cfg.use_alibi and int(audio.get("num_alibi_heads", cfg.num_heads)) != cfg.num_heads:
        raise ModelLoadError("config.yaml: num_alibi_heads must equal num_heads")
    if cfg.embed_dim % cfg.num_heads:
        raise ModelLoadError("config.yaml: embed_dim must be a multiple of num_heads")
    return cfg


def read_config(model_dir: Path) -> ModelConfig:
    """Read `config.yaml` of a hub folder."""
    import yaml

    path = Path(model_dir) / "config.yaml"
    try:
        conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelLoadError(f"{path} is missing; a model folder needs config.yaml, tokens.txt and model.pt") from exc
    except yaml.YAMLError as exc:
        raise ModelLoadError(f"{path} is not valid YAML: {exc}") from exc
    return config_from_dict(conf)


def read_tokens(model_dir: Path) -> list[str]:
    """Read `tokens.txt`: one label token per line, in the order of the head's outputs."""
    path = Path(model_dir) / "tokens.txt"
    try:
        tokens = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError as exc:
        raise ModelLoadError(f"{path} is missing; a model folder needs config.yaml, tokens.txt and model.pt") from exc
    if not tokens:
        raise ModelLoadError(f"{path} is empty")
    return tokens
