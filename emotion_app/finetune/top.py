"""What trains: the top K blocks of the base model (LoRA adapters, or unfrozen) and a new head.

`TopModel` holds the whole base model (the export writes it whole) but runs only blocks
cut..L-1 over the cached tokens of the lower part (features.py), then the mean over real frames
and the head, as the engine's graph does (model/graph.py: `run_blocks`, `classify`).

The new head has one row per label of the data. A label that is one of the base model's nine
(directly, or through `--map`) starts from the 9-class head's row for it; any other label starts
from small random weights (the spread of the base head's weights). With the nine labels and no
training step the model is the base model.
"""

from __future__ import annotations

import torch
from torch import nn

from ..constants import label_for_token
from .lora import add_lora


def new_head(base_head: nn.Linear, base_tokens: list[str], labels: tuple[str, ...], seed: int) -> tuple[nn.Linear, list[str]]:
    """(the head for `labels`, the labels that started from a base row)."""
    rows = {label_for_token(t).key: i for i, t in enumerate(base_tokens) if not t.startswith("unuse")}
    w, b = base_head.weight.detach().float(), base_head.bias.detach().float()
    gen = torch.Generator().manual_seed(seed)
    head = nn.Linear(w.shape[1], len(labels))
    with torch.no_grad():
        head.weight.copy_(torch.randn(len(labels), w.shape[1], generator=gen) * w.std())
        head.bias.zero_()
        for k, label in enumerate(labels):
            if label in rows:
                head.weight[k] = w[rows[label]]
                head.bias[k] = b[rows[label]]
    return head.to(base_head.weight.device), [k for k in labels if k in rows]


class TopModel(nn.Module):
    """The base model with its top `top` blocks trainable (LoRA rank `rank`, or all their weights
    with `unfreeze`) and `head` in place of its own."""

    def __init__(self, base, head: nn.Linear, top: int, *, unfreeze: bool, rank: int, alpha: float, seed: int):
        super().__init__()
        n = base.num_blocks
        if not 1 <= top <= n:
            raise ValueError(f"the model has {n} transformer blocks; choose 1 to {n} of them to train, not {top}")
        self.base, self.cut = base, n - top
        base.requires_grad_(False)
        base.head = head
        base.label_mask = torch.zeros(head.out_features, dtype=torch.bool, device=head.weight.device)
        head.requires_grad_(True)
        blocks = [base.block(i) for i in range(self.cut, n)]
        if unfreeze:
            for block in blocks:
                block.requires_grad_(True)
        else:
            add_lora(blocks, rank, alpha, seed)

    def trainable(self) -> dict[str, nn.Parameter]:
        return {name: p for name, p in self.named_parameters() if p.requires_grad}

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """tokens: (B, E+T, D) from the lower part, zero-padded; mask: (B, T) True on real frames.
        Returns (B, V) fp32 utterance logits."""
        base = self.base
        x = base.run_blocks(tokens, mask, self.cut, base.num_blocks)
        return base.classify(x[:, base.cfg.num_extra_tokens :], mask).utterance_logits
