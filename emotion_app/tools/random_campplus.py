"""A random-weight CAM++ model folder in the hub layout, for tests and benchmarks (needs torch, not FunASR).

What is real and what is a placeholder:
- `campplus_cn_common.bin`: real layout. A plain torch state dict (937 tensors, float32 weights and
  int64 `num_batches_tracked`) with exactly the keys and shapes of FunASR's
  `CAMPPlus(feat_dim=80, embedding_size=192)`, as the hub file (about 28 MB) has; values random.
- `configuration.json` and `config.yaml`: placeholders written from FunASR's conventions, not
  byte copies of the hub files (which could not be fetched here). They are what FunASR's
  `AutoModel(model=folder)` needs: configuration.json's `file_path_metas` names the weights
  (`init_param`) and config.yaml (`config`), whose `model: CAMPPlus` and `model_conf` build the
  network. Our own loader reads only the .bin.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..speakers.model import WEIGHTS_FILE

logger = logging.getLogger(__name__)


CONFIGURATION = {
    "framework": "pytorch",
    "task": "speaker-verification",
    "model": {"type": "funasr"},
    "pipeline": {"type": "funasr-pipeline"},
    "file_path_metas": {"init_param": WEIGHTS_FILE, "config": "config.yaml"},
}

CONFIG_YAML = """\
# placeholder written by emotion_app.tools.random_campplus: FunASR's CAM++ with its defaults
model: CAMPPlus
model_conf:
    feat_dim: 80
    embedding_size: 192
    growth_rate: 32
    bn_size: 4
    init_channels: 128
    config_str: batchnorm-relu
    memory_efficient: true
    output_level: segment
"""


def random_state_dict(seed: int = 0) -> dict:
    """FunASR-layout CAM++ weights: He-normal convs, BN affine near (1, 0), BN running stats
    mean ~ N(0, 0.1) and var ~ U(0.5, 1.5) so that parity tests exercise them."""
    import torch

    from ..speakers.campplus import CAMPPlus

    gen = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        template = CAMPPlus().state_dict()
    state = {}
    for name, meta in template.items():
        leaf = name.rsplit(".", 1)[-1]
        shape = meta.shape
        if leaf == "num_batches_tracked":
            value = torch.tensor(0, dtype=torch.long)
        elif leaf == "running_mean":
            value = 0.1 * torch.randn(shape, generator=gen)
        elif leaf == "running_var":
            value = 0.5 + torch.rand(shape, generator=gen)
        elif meta.dim() == 1 and leaf == "weight":  # batchnorm scale
            value = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif leaf == "bias":  # batchnorm shift, CAM 1x1 conv biases
            value = 0.1 * torch.randn(shape, generator=gen)
        else:  # conv kernels (out, in, k...): He init keeps activations O(1) through ReLUs
            fan_in = shape[1:].numel()
            value = torch.randn(shape, generator=gen) * (2.0 / fan_in) ** 0.5
        state[name] = value.contiguous()
    return state


def build_random_campplus(folder, seed: int = 0) -> Path:
    """Write `folder` (created if needed) as a CAM++ hub folder with random weights; returns its Path."""
    import torch

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(random_state_dict(seed), out / WEIGHTS_FILE)
    (out / "configuration.json").write_text(json.dumps(CONFIGURATION, indent=2) + "\n", encoding="utf-8")
    (out / "config.yaml").write_text(CONFIG_YAML, encoding="utf-8")
    logger.info("wrote a random CAM++ folder (seed %d): %s", seed, out)
    return out
