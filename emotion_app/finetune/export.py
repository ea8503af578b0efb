"""The fine-tuned model as a model folder in the hub's layout, and its training card.

    DIR/config.yaml           the base model's (the architecture did not change), byte for byte
                              but for `tokenizer_conf.unk_symbol` when the labels lack `<unk>`
    DIR/configuration.json    the base model's, when it has one (FunASR reads the file names there)
    DIR/tokens.txt            the new labels: `开心/happy` for the nine, the label itself otherwise
                              (+ `unuse_unk`, see below)
    DIR/model.pt              {"model": weights} under the hub's keys (`d2v_model.*`, the head as
                              `proj.*`), LoRA adapters merged: plain fp32 weights
    DIR/training_card.json    base model and its hash, data counts per label and speaker,
                              hyperparameters, the per-epoch curve, the held-out report

Every entry point loads DIR with `--model DIR` (Engine(model=DIR)), and so does FunASR 1.4.16's
AutoModel; none of them needs adapter code. The folder is written whole or not at all
(heads/report.py `write_folder`).

FunASR's tokenizer refuses a tokens.txt without its unknown symbol (`<unk>` in every hub config).
Labels without `unknown` therefore get one more token, `unuse_unk`, named as the unknown symbol
in config.yaml: its head row is zero and, as every `unuse*` token, masked to -inf by FunASR and
by the engine, so both give exactly the data's labels with the probabilities training computed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from ..heads.report import write_folder
from .data import token_for

CARD_FILE = "training_card.json"
UNK = "<unk>"  # FunASR's default tokenizer_conf.unk_symbol
MASKED_UNK = "unuse_unk"


def config_text(base_text: str, tokens: list[str]) -> str:
    """config.yaml for `tokens`: the base's text, with `unk_symbol` pointed at a token that exists."""
    import yaml

    conf = yaml.safe_load(base_text)
    unk = ((conf.get("tokenizer_conf") or {}).get("unk_symbol")) or UNK
    if unk in tokens:
        return base_text
    text, n = re.subn(r"(?m)^(\s+unk_symbol:\s*).*$", rf"\g<1>{MASKED_UNK}", base_text)
    if n == 1:
        return text
    conf.setdefault("tokenizer_conf", {})["unk_symbol"] = MASKED_UNK
    return yaml.safe_dump(conf, allow_unicode=True, sort_keys=False)


def model_files(model, base_dir: Path, labels: tuple[str, ...], card: dict) -> dict[str, str | bytes | Callable]:
    """The folder's files for `model` (an Emotion2vec whose head has one row per label, adapters
    merged). model.pt is a function that writes it (write_folder calls it): torch.save straight
    into the file, where bytes in memory cost twice the model (the buffer and its copy)."""
    import torch

    from ..model.checkpoint import hub_state

    weights = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    tokens = [token_for(k) for k in labels]
    base_text = (Path(base_dir) / "config.yaml").read_text(encoding="utf-8")
    config = config_text(base_text, tokens)
    if config != base_text:  # the masked unknown token: a zero head row
        tokens.append(MASKED_UNK)
        weights["head.weight"] = torch.cat([weights["head.weight"], torch.zeros_like(weights["head.weight"][:1])])
        weights["head.bias"] = torch.cat([weights["head.bias"], torch.zeros_like(weights["head.bias"][:1])])
    state = {"model": hub_state(weights, model.cfg)}
    files: dict[str, str | bytes | Callable] = {
        "config.yaml": (Path(base_dir) / "config.yaml").read_bytes() if config == base_text else config,
        "tokens.txt": "\n".join(tokens),  # as the hub's file: no final newline
        "model.pt": lambda path: save_to(path, state),
        CARD_FILE: json.dumps(card, ensure_ascii=False, indent=2) + "\n",
    }
    if (Path(base_dir) / "configuration.json").is_file():
        files["configuration.json"] = (Path(base_dir) / "configuration.json").read_bytes()
    return files


def save_to(path: Path, obj) -> None:
    """torch.save into an open file: the bytes a buffer would hold (a path would name the zip's
    inner folder after the file), written as they come."""
    import torch

    with open(path, "wb") as f:
        torch.save(obj, f)


def write_model(out: Path, files: dict[str, str | bytes | Callable]) -> Path:
    """Write the folder whole; an existing folder is replaced only when it is an earlier fine-tune."""
    return write_folder(Path(out), files, CARD_FILE)
