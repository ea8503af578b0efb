"""A model's linear layers swapped for a faster kind, in place: int8 (quantize.py) or bf16 packed
for oneDNN (packed.py). The 9-class head is never swapped: graph.head_logits reads its weight in
fp32, and its logits are what the user reads."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

FLOAT_LAYERS = frozenset({"head"})  # linear layers left as they are


def linear_layers(model: nn.Module) -> list[tuple[nn.Module, str, nn.Linear]]:
    """(parent, name, layer) of every nn.Linear of `model` except FLOAT_LAYERS, in module order."""
    return [
        (parent, name, child)
        for parent_name, parent in model.named_modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.Linear) and (f"{parent_name}.{name}" if parent_name else name) not in FLOAT_LAYERS
    ]


def swap_linears(model: nn.Module, make: Callable[[nn.Linear], nn.Module]) -> int:
    """Replace every layer of `linear_layers(model)` by `make(layer)`; returns how many."""
    layers = linear_layers(model)
    for parent, name, child in layers:
        setattr(parent, name, make(child))
    return len(layers)
