"""`export-onnx --int8`: onnxruntime's dynamic quantizer on an exported graph (int8 weights per
output channel for the linear layers; the head, the convs and the attention products stay fp32)."""

from __future__ import annotations

import logging
from pathlib import Path


def quantize_graph(source: Path, target: Path, head_shape: tuple[int, int], max_inline_bytes: int) -> bool:
    """onnxruntime's dynamic quantizer on `source`: int8 weights per output channel for every MatMul
    with a weight matrix except the head's (the attention products multiply two activations and
    stay fp32; so do the convs). Writes `target`; returns whether its weights went to an external file.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    proto = onnx.load(str(source), load_external_data=False)
    shapes = {init.name: tuple(init.dims) for init in proto.graph.initializer}
    head = {head_shape, head_shape[::-1]}
    keep_float = [n.name for n in proto.graph.node if n.op_type in ("MatMul", "Gemm") and head & {shapes.get(i) for i in n.input}]
    if len(keep_float) != 2:  # the utterance head (Gemm) and the frame head (MatMul)
        raise RuntimeError(f"expected the head in two nodes of the graph, found {keep_float}")
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
    return external


class _DropAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider to run pre-processing")
