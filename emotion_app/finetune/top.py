"""What trains: the top K blocks of the base model (LoRA adapters, or unfrozen) and a new head.

`TopModel` holds the whole base model (the export writes it whole) but runs only blocks
cut..L-1 over the cached tokens of the lower part (features.py), then the mean over real frames
and the head, as the engine's graph does (model/graph.py: `run_blocks`, `classify`).

The new head has one row per label of the data. A label that is one of the base model's nine
(directly, or through `--map`) starts from the 9-class head's row for it; any other label starts
from small random weights (the spread of the base head's weights), which `probe_head` then sets to
a linear probe of the training clips (LP-FT). With the nine labels and no training step the model
is the base model.
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

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, pooled: bool = False) -> torch.Tensor:
        """tokens: (B, E+T, D) from the lower part, zero-padded; mask: (B, T) True on real frames.
        Returns (B, V) fp32 utterance logits (`pooled`: the (B, D) mean frames the head reads)."""
        base = self.base
        # Training recomputes each block's activations in backward instead of keeping those of all
        # K blocks (attention probabilities, feed-forward) for the whole step: one block's at a time.
        recompute = self.training and torch.is_grad_enabled()
        x = base.run_blocks(tokens, mask, self.cut, base.num_blocks, recompute=recompute)
        out = base.classify(x[:, base.cfg.num_extra_tokens :], mask)
        return out.mean if pooled else out.utterance_logits


def probe_head(head: nn.Linear, x, y: list[int], rows: list[int], c: float = 0.05, seed: int = 0) -> None:
    """Set `head`'s `rows` (labels that start from no row of the base head) to a logistic regression
    fitted on the pooled features `x` (N, D) of the training clips with their labels `y` (indices
    into the head's rows): training then starts where a train-head head ends (linear probing, then
    fine-tuning: LP-FT). Standardisation is folded into the weights; the other rows are kept."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    present = sorted(set(y))
    if len(present) < 2 or not set(present) <= set(rows):
        return
    mu, sigma = x.mean(0), x.std(0) + 1e-6
    clf = LogisticRegression(C=c, max_iter=5000, class_weight="balanced", random_state=seed).fit((x - mu) / sigma, y)
    coef, bias = clf.coef_, clf.intercept_
    if len(clf.classes_) == 2:  # sklearn's binary form: one row for the second class
        coef, bias = np.concatenate([-coef, coef]) / 2, np.concatenate([-bias, bias]) / 2
    weight, offset = coef / sigma, bias - (coef / sigma) @ mu
    with torch.no_grad():
        for k, row in enumerate(clf.classes_):
            head.weight[row] = torch.as_tensor(weight[k], dtype=head.weight.dtype)
            head.bias[row] = float(offset[k])
