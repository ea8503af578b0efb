"""LoRA: low-rank adapters on a model's linear layers, merged back into plain weights for export.

A LoRA linear computes y = x W^T + b + s (x A^T) B^T with A (r, in) and B (out, r) trained, W and
b frozen, s = alpha / r. B starts at zero, so an adapter changes nothing before training (the
zero-step model is the base model, bit for bit), and merging writes W + s B A into the layer:
the exported folder is plain weights that the engine, FunASR and the ONNX export load as they
load any emotion2vec folder.

Own code, not `peft`: peft 0.21 wraps our native modules cleanly (tried: `inject_adapter_in_model`
with target_modules `blocks.N.attn.qkv|attn.proj|fc1|fc2` swapped the four linears of a block and the
graph ran unchanged), but it is not among the project's requirements, brings `accelerate` and
imports `transformers` (3 s), all for the 40 lines below; the merge here is one fp32 matmul whose
exactness the tests hold. Training needs nothing beyond torch; loading a fine-tuned folder needs
no adapter code at all.
"""

from __future__ import annotations

import math

import torch
from torch import nn

TARGETS = ("attn.qkv", "attn.proj", "fc1", "fc2")  # a block's attention and feed-forward linears


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trained low-rank update (rank r, scale alpha / r)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, generator: torch.Generator):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.scale = alpha / rank
        # A as nn.Linear's default init (kaiming uniform, a = sqrt(5)); B zero: no change at step 0
        bound = 1.0 / math.sqrt(base.in_features)
        a = (torch.rand(rank, base.in_features, generator=generator) * 2 - 1) * bound
        self.lora_a = nn.Parameter(a.to(base.weight.device))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale

    def merged(self) -> nn.Linear:
        """The plain linear with the update folded in: W + s B A, computed in fp32."""
        with torch.no_grad():
            delta = (self.lora_b.float() @ self.lora_a.float()) * self.scale
            self.base.weight.copy_((self.base.weight.float() + delta).to(self.base.weight.dtype))
        return self.base


def _parent(module: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    *path, leaf = dotted.split(".")
    for part in path:
        module = getattr(module, part)
    return module, leaf


def add_lora(blocks: list[nn.Module], rank: int, alpha: float, seed: int) -> list[str]:
    """Swap the TARGETS linears of each block for LoRALinear, in place; returns the adapted names."""
    gen = torch.Generator().manual_seed(seed)
    names = []
    for k, block in enumerate(blocks):
        for target in TARGETS:
            parent, leaf = _parent(block, target)
            setattr(parent, leaf, LoRALinear(getattr(parent, leaf), rank, alpha, gen))
            names.append(f"{k}.{target}")
    return names


def merge_lora(module: nn.Module) -> int:
    """Replace every LoRALinear under `module` by its merged nn.Linear; returns how many."""
    found = [(name, m) for name, m in module.named_modules() if isinstance(m, LoRALinear)]
    for name, m in found:
        parent, leaf = _parent(module, name)
        setattr(parent, leaf, m.merged())
    return len(found)
