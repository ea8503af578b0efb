"""An int8 ONNX graph on a CPU without int8 dot products: its signed weights made unsigned, exactly.

`export-onnx --int8` writes MatMulInteger nodes that multiply uint8 activations by int8 weights
(U8S8), onnxruntime's fast kind on CPUs with VNNI or AMX. Without them (AVX2 only: AMD Zen 1-3,
Intel before Ice Lake) onnxruntime adds pairs of U8S8 products in 16 bits (VPMADDUBSW), which
saturate, as its quantization docs warn: on an AMD Zen 1 a fine-tuned model's probabilities moved
by 0.39 from fp32 and half its clear top labels changed; plus_large's random layout 0.040 (0.016
with uint8 weights). With uint8 weights (U8U8) onnxruntime takes kernels that do not saturate.

So on such a CPU the graph is loaded with each int8 weight w and its zero point z as w + 128 and
z + 128, both uint8: MatMulInteger computes (a - za) x (w - z), the same integers. The export on
disk stays as it is (a folder may be copied to another machine). Needs the `onnx` package to edit
the graph; without it the graph loads as it is, with a warning. The edit costs each load on such a
CPU about 2.4 s (1.6 s of it importing `onnx`) and 450 MB more peak memory for plus_large's 195 MB
graph (0.57 s and 354 MB as it is, on an AMD Zen 1); only there, and once per load.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

MAX_PROTO_BYTES = 2**31 - 1  # a graph handed to onnxruntime as bytes is one protobuf message


def unsigned_weights(path: Path) -> bytes | None:
    """The graph at `path` (external weights read from beside it) with every int8 weight and zero
    point of its MatMulInteger nodes as uint8, serialised; None when it has none to change, or
    when the graph cannot be edited here (then the caller loads the file as it is)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        logger.warning(
            "this CPU has no int8 dot products (VNNI) and the `onnx` package is missing: the int8 graph runs with "
            "signed weights, whose products can saturate here (probabilities far from fp32); pip install onnx"
        )
        return None
    proto = onnx.load(str(path))
    initializers = {init.name: init for init in proto.graph.initializer}
    products = [node for node in proto.graph.node if node.op_type == "MatMulInteger"]
    names = {
        name
        for node in products
        for name in node.input[1::2]  # B and its zero point (inputs 1 and 3)
        if name in initializers and initializers[name].data_type == onnx.TensorProto.INT8
    }
    # a tensor that anything else reads (another node, or as A) keeps its type
    names -= {
        name for node in proto.graph.node for i, name in enumerate(node.input) if node.op_type != "MatMulInteger" or i % 2 == 0
    }
    if not names:
        return None
    for name in names:
        signed = numpy_helper.to_array(initializers[name])
        initializers[name].CopyFrom(numpy_helper.from_array((signed.astype(np.int16) + 128).astype(np.uint8), name))
    if proto.ByteSize() > MAX_PROTO_BYTES:
        logger.warning("the int8 graph %s is too large to load edited (over 2 GB); its products may saturate on this CPU", path)
        return None
    changed = sum(node.input[1] in names for node in products)
    logger.info("int8 weights of %d products loaded as uint8: this CPU has no int8 dot products (VNNI)", changed)
    return proto.SerializeToString()
