"""Random-weight checkpoints in the exact hub-folder layout, for tests and benchmarks.

`python -m emotion_app make-checkpoint DIR --preset plus_large --training-state` writes
config.yaml, tokens.txt, configuration.json and model.pt as the hub does (keys `d2v_model.*`
under `model`, head as `proj.*`), optionally with the optimizer state that makes the real
plus_large file 1.95 GB.
"""

from __future__ import annotations

import copy
import logging
import os
from importlib import resources
from pathlib import Path

logger = logging.getLogger(__name__)

TOKENS = [
    "生气/angry",
    "厌恶/disgusted",
    "恐惧/fearful",
    "开心/happy",
    "中立/neutral",
    "其他/other",
    "难过/sad",
    "吃惊/surprised",
    "<unk>",
]

CONFIGURATION_JSON = """{
  "framework": "pytorch",
  "task" : "emotion-recognition",
  "pipeline": {"type":"funasr-pipeline"},
  "model": {"type" : "funasr"},
  "file_path_metas": {
    "init_param":"model.pt", 
    "tokenizer_conf": {"token_list": "tokens.txt"},
    "config":"config.yaml"},
  "model_name_in_hub": {
    "ms":"iic/emotion2vec_base", 
    "hf":""}
}"""

# model_conf / modalities.audio overrides of the real plus_large config.
PRESETS: dict[str, tuple[dict, dict]] = {
    "tiny": (
        {"embed_dim": 32, "num_heads": 4, "depth": 2},
        {
            "prenet_depth": 1,
            "model_depth": 2,
            "num_alibi_heads": 4,
            "conv_pos_groups": 4,
            "feature_encoder_spec": "[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32,2,2)] + [(32,2,2)]",
        },
    ),
    # plus_large's exact block structure (4 + 8 blocks, 16 heads, 5 pos convs) at reduced width
    "tiny_large": (
        {"embed_dim": 64, "num_heads": 16},
        {"feature_encoder_spec": "[(64, 10, 5)] + [(64, 3, 2)] * 4 + [(64,2,2)] + [(64,2,2)]"},
    ),
    "plus_base": ({"embed_dim": 768, "num_heads": 12}, {"num_alibi_heads": 12}),
    "plus_large": ({}, {}),
}


def template_text() -> str:
    """The real emotion2vec_plus_large config.yaml, byte for byte."""
    return resources.files("emotion_app").joinpath("assets/emotion2vec_plus_large.yaml").read_text(encoding="utf-8")


def random_weights(cfg, num_labels: int, seed: int):
    """Native-named random weights with sensible scales (LayerNorm-friendly, non-uniform scores)."""
    import torch

    from ..model.graph import Emotion2vec

    gen = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in Emotion2vec(cfg, num_labels).state_dict().items()}
    weights = {}
    for name, shape in shapes.items():
        leaf = name.rsplit(".", 1)[-1]
        if name == "alibi_scale":  # some heads below 0 to exercise the clamp
            w = torch.rand(shape, generator=gen) * 1.6 - 0.3
        elif name == "extra_tokens":
            w = torch.randn(shape, generator=gen)
        elif "norm" in name and leaf == "weight":
            w = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif leaf == "bias":
            w = 0.02 * torch.randn(shape, generator=gen)
        elif name.startswith("head."):
            w = torch.randn(shape, generator=gen) * (2.0 / shape[1] ** 0.5)
        else:
            fan_in = shape[1] * (shape[2] if len(shape) > 2 else 1)
            w = torch.randn(shape, generator=gen) * (1.0 / fan_in**0.5)
        weights[name] = w
    return weights


def build_random_checkpoint(
    out_dir,
    preset: str = "tiny",
    *,
    seed: int = 0,
    training_state: bool = False,
    layout: str = "model",
    prefix: str = "d2v_model.",
    tokens: list[str] | None = None,
    model_conf: dict | None = None,
    audio_conf: dict | None = None,
) -> Path:
    """Write a random-weight model folder and return its path.

    layout: "model" (the hub's), "state_dict", "model_state_dict" or "bare" (no wrapper).
    prefix: put before backbone keys ("d2v_model." as the hub, "module.", or "").
    """
    import torch
    import yaml

    from ..model.checkpoint import hub_state
    from ..model.config import config_from_dict

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mc_over, audio_over = PRESETS[preset]
    mc_over, audio_over = {**mc_over, **(model_conf or {})}, {**audio_over, **(audio_conf or {})}
    text = template_text()
    conf = yaml.safe_load(text)
    if mc_over or audio_over:
        conf = copy.deepcopy(conf)
        conf["model_conf"].update(mc_over)
        conf["model_conf"]["modalities"]["audio"].update(audio_over)
        text = yaml.safe_dump(conf, allow_unicode=True, sort_keys=False)
    cfg = config_from_dict(conf)
    tokens = tokens or TOKENS
    (out / "config.yaml").write_text(text, encoding="utf-8")
    (out / "tokens.txt").write_text("\n".join(tokens), encoding="utf-8")  # as the hub file: no final newline
    (out / "configuration.json").write_text(CONFIGURATION_JSON, encoding="utf-8")

    state = hub_state(random_weights(cfg, len(tokens), seed), cfg, prefix)
    if layout == "bare":
        obj = state
    elif layout in ("model", "state_dict", "model_state_dict"):
        obj = {layout: state}
    else:
        raise ValueError(f"unknown layout {layout!r}")
    if training_state:
        # fairseq-style Adam moments beside the weights: the file becomes ~3x the weights.
        obj["last_optimizer_state"] = {
            "state": {
                i: {"exp_avg": torch.zeros_like(w), "exp_avg_sq": torch.zeros_like(w)} for i, w in enumerate(state.values())
            },
            "param_groups": [{"lr": 0.0, "betas": [0.9, 0.98], "eps": 1e-6, "params": list(range(len(state)))}],
        }
        obj["optimizer_history"] = [{"criterion_name": "ModelCriterion", "optimizer_name": "FairseqAdam", "num_updates": 0}]
    tmp = out / "model.pt.tmp"
    torch.save(obj, tmp)
    os.replace(tmp, out / "model.pt")
    logger.info("wrote %s checkpoint (%d tensors) to %s", preset, len(state), out)
    return out
