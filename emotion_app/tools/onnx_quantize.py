"""`export-onnx --int8`: onnxruntime's dynamic quantizer on an exported graph (int8 weights per
output channel for the linear layers; the head, the convs and the attention products stay fp32).
`quantize_export` makes the int8 folder of an fp32 export; it needs onnx and onnxruntime, not torch
(onnx_export.py, which traces the model, writes the fp32 folder and then calls it)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..audio.vad import ONNX_NAME as VAD_ONNX
from ..model.onnx_backend import HEAD_FILE, LABELS_FILE, ONNX_DATA_FILE, ONNX_FILE, README_FILE

logger = logging.getLogger(__name__)

# bytes: protobuf cannot serialise 2 GB; above this the weights go to model.onnx.data
MAX_INLINE_BYTES = 2 * 1024**3 - 64 * 1024**2


def quantize_export(fp32_folder, out_dir, *, max_inline_bytes: int = MAX_INLINE_BYTES) -> Path:
    """The int8 folder of an fp32 export (`export-onnx --int8`): its graph's linear layers through
    onnxruntime's dynamic quantizer (quantize_graph), its other files as they are, labels.json
    saying `"dtype": "int8"`. Written as onnx_export.export_model writes (into a temporary folder
    inside `out_dir`, then each file moved into place)."""
    src, out = Path(fp32_folder), Path(out_dir)
    meta = json.loads((src / LABELS_FILE).read_text(encoding="utf-8"))
    if meta.get("dtype", "fp32") != "fp32":
        raise ValueError(f"{src} holds an {meta['dtype']} export: quantize the fp32 export instead")
    with np.load(src / HEAD_FILE) as head:
        head_shape = tuple(head["weight"].shape)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out) as tmp:
        tmp = Path(tmp)
        meta["external_data"] = quantize_graph(src / ONNX_FILE, tmp / ONNX_FILE, head_shape, max_inline_bytes)
        meta["dtype"] = "int8"
        write_labels(tmp, meta)
        for name in (HEAD_FILE, README_FILE, VAD_ONNX):
            if (src / name).exists():
                shutil.copyfile(src / name, tmp / name)
        place(tmp, out)
    logger.info("quantized %s to int8 in %s", meta.get("model_id", src), out)
    return out


def write_labels(folder: Path, meta: dict) -> None:
    (folder / LABELS_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def place(tmp: Path, out: Path) -> None:
    """The export's files from `tmp` into `out`, each by a rename; a file of an earlier export that
    this one has not (a weights file of a larger one) is removed."""
    for name in (ONNX_DATA_FILE, ONNX_FILE, HEAD_FILE, LABELS_FILE, README_FILE, VAD_ONNX):
        if (tmp / name).exists():
            os.replace(tmp / name, out / name)
        elif (out / name).exists():
            (out / name).unlink()


def quantize_graph(source: Path, target: Path, head_shape: tuple[int, int], max_inline_bytes: int) -> bool:
    """onnxruntime's dynamic quantizer on `source`: int8 weights per output channel for every MatMul
    with a weight matrix except the head's (the attention products multiply two activations and
    stay fp32; so do the convs). Writes `target`; returns whether its weights went to an external file.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    proto = onnx.load(str(source), load_external_data=False)
    keep_float = head_nodes(proto, head_shape, ("MatMul", "Gemm"))
    if len(keep_float) != 2:  # the utterance head (Gemm) and the frame head (MatMul)
        raise RuntimeError(f"expected the head in two nodes of the graph, found {keep_float}")
    # the quantizer first splits a Gemm into `NAME_MatMul` + `NAME_Add`, then quantizes that MatMul
    # unless it is named too (the utterance head was int8 in exports before this)
    keep_float += [f"{n.name}_MatMul" for n in proto.graph.node if n.name in keep_float and n.op_type == "Gemm"]
    del proto
    external = source.stat().st_size // 4 > max_inline_bytes  # int8 weights: about a quarter of the fp32 graph
    advice = _DropAdvice()  # the quantizer's root-logger advice to run its shape pre-processing (no gain here)
    logging.getLogger().addFilter(advice)
    try:
        quantize_dynamic(
            source,
            target,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=keep_float,
            use_external_data_format=external,
        )
    finally:
        logging.getLogger().removeFilter(advice)
    # the head by its shape, whatever the quantizer named it
    int8_head = head_nodes(onnx.load(str(target), load_external_data=False), head_shape, ("MatMulInteger",))
    if int8_head:
        raise RuntimeError(f"the quantizer made the head int8 ({int8_head}); its nodes must stay float")
    return external


def head_nodes(proto, head_shape: tuple[int, int], op_types: tuple[str, ...]) -> list[str]:
    """The names of the `op_types` nodes of `proto` that read a weight of the head's shape (either way round)."""
    shapes = {init.name: tuple(init.dims) for init in proto.graph.initializer}
    head = {head_shape, head_shape[::-1]}
    return [n.name for n in proto.graph.node if n.op_type in op_types and head & {shapes.get(i) for i in n.input}]


class _DropAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider to run pre-processing")
