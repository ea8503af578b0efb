"""An int8 ONNX graph on a CPU without int8 dot products: its signed weights made unsigned, exactly.

`export-onnx --int8` writes MatMulInteger nodes that multiply uint8 activations by int8 weights
(U8S8), onnxruntime's fast kind on CPUs with VNNI or AMX. Without VNNI (AMD Zen 1-3, older Intel:
devices.cpu_has_int8_dot) onnxruntime adds pairs of U8S8 products in 16 bits (VPMADDUBSW), which
saturate, as its quantization docs warn: on an AMD Zen 1 a fine-tuned tiny model's export moved
probabilities by 0.39 from fp32 and changed half its clear top labels (docs/benchmarks.md, "A CPU
without AVX-512"). With uint8 weights (U8U8) onnxruntime takes kernels that do not saturate.

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

from ..optional import ONNX_INSTALL_HINT

logger = logging.getLogger(__name__)

MAX_PROTO_BYTES = 2**31 - 1  # a graph handed to onnxruntime as bytes is one protobuf message
WEIGHT, ZERO_POINT = 1, 3  # MatMulInteger's inputs: A, B, A's zero point, B's zero point


def unsigned_weights(path: Path) -> bytes | None:
    """The graph at `path` (external weights read from beside it) with the int8 weight and zero
    point of each MatMulInteger node as uint8 (`convertible`), serialised; None when it has none
    to change, or when the graph cannot be edited here (then the caller loads the file as it is)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        logger.warning(
            "this CPU has no int8 dot products (VNNI) and the `onnx` package is missing: the int8 graph runs with "
            "signed weights, whose products can saturate here (probabilities far from fp32); %s",
            ONNX_INSTALL_HINT,
        )
        return None
    if sum(f.stat().st_size for f in Path(path).parent.glob(Path(path).name + "*")) > MAX_PROTO_BYTES:
        logger.warning("the int8 graph %s is too large to load edited (over 2 GB); its products may saturate on this CPU", path)
        return None
    proto = onnx.load(str(path))
    nodes = convertible(proto.graph, onnx.TensorProto.INT8)
    if not nodes:
        return None
    initializers = {init.name: init for init in proto.graph.initializer}
    for name in {node.input[i] for node in nodes for i in (WEIGHT, ZERO_POINT)}:
        signed = numpy_helper.to_array(initializers[name])
        initializers[name].CopyFrom(numpy_helper.from_array((signed.astype(np.int16) + 128).astype(np.uint8), name))
    logger.info("int8 weights of %d products loaded as uint8: this CPU has no int8 dot products (VNNI)", len(nodes))
    return proto.SerializeToString()


def convertible(graph, int8: int) -> list:
    """The MatMulInteger nodes of `graph` whose weight and zero point are both int8 initializers that
    only such nodes read, as their weight or zero point: a tensor shared with anything else (another
    node, a graph output, a node whose own pair cannot change) keeps its type, and so do the nodes
    that read it, so that each product changes both of its operands or neither. Nothing changes in a
    graph with subgraphs (If, Loop), whose reads are not followed here."""
    if any(attr.g.node or attr.graphs for node in graph.node for attr in node.attribute):
        return []
    initializers = {init.name for init in graph.initializer if init.data_type == int8}
    readers: dict[str, list] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            readers.setdefault(name, []).append((node, i))
    nodes = [
        n
        for n in graph.node
        if n.op_type == "MatMulInteger" and len(n.input) > ZERO_POINT and {n.input[WEIGHT], n.input[ZERO_POINT]} <= initializers
    ]
    outputs = {o.name for o in graph.output}
    while True:  # drop the nodes that share a tensor with something that cannot change, until none do
        ids = {id(n) for n in nodes}
        shared = {
            name
            for n in nodes
            for name in (n.input[WEIGHT], n.input[ZERO_POINT])
            if name in outputs or any(id(r) not in ids or i not in (WEIGHT, ZERO_POINT) for r, i in readers[name])
        }
        kept = [n for n in nodes if not {n.input[WEIGHT], n.input[ZERO_POINT]} & shared]
        if len(kept) == len(nodes):
            return kept
        nodes = kept
