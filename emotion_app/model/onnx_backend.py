"""Run an exported ONNX folder with onnxruntime and numpy only: no torch at import or run time.

The folder comes from `python -m emotion_app export-onnx OUT_DIR --model ...` (tools/onnx_export.py)
and this module owns its format: the file names, the graph's input and output names and
labels.json. `OnnxModel.run_chunks` keeps the contract of `Engine.run_chunks`, so the engine can
use either backend for its one model call.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..constants import RECEPTIVE_FIELD
from ..errors import ModelLoadError
from ..optional import import_onnxruntime
from .chunking import ChunkOutput
from .devices import cpu_has_int8_dot
from .logits import softmax
from .onnx_int8 import unsigned_weights

logger = logging.getLogger(__name__)

FORMAT = "emotion_app.onnx"
FORMAT_VERSION = 1
ONNX_FILE = "model.onnx"
ONNX_DATA_FILE = "model.onnx.data"  # the weights, only for graphs over protobuf's 2 GB
LABELS_FILE = "labels.json"
HEAD_FILE = "head.npz"
README_FILE = "README.md"
INPUTS = ("waveform", "lengths")  # (B, N) float32 at 16 kHz zero-padded; (B,) int64 samples
OUTPUTS = ("utterance_probabilities", "frame_probabilities", "embedding", "num_frames")
FRAME_EMBEDDINGS = "frame_embeddings"  # (B, T, D), only in graphs exported with --frame-embeddings


def head_fingerprint(weight: np.ndarray, bias: np.ndarray) -> str:
    """sha256 of the head's float32 weight (V, D) and bias (V,): which model a folder's files are for."""
    digest = hashlib.sha256()
    for a in (weight, bias):
        a = np.ascontiguousarray(a, dtype="<f4")
        digest.update(repr(a.shape).encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _export_hint(folder: Path) -> str:
    return f"export the model again with `python -m emotion_app export-onnx {folder} --model MODEL`"


def read_labels(folder: Path) -> dict:
    """Check that `folder` holds a complete export and return its labels.json content."""
    if not folder.is_dir():
        raise ModelLoadError(f"ONNX folder {folder} does not exist; {_export_hint(folder)}")
    for name in (ONNX_FILE, LABELS_FILE, HEAD_FILE):
        if not (folder / name).is_file():
            raise ModelLoadError(f"ONNX folder {folder} lacks {name}; {_export_hint(folder)}")
    path = folder / LABELS_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON ({exc}); {_export_hint(folder)}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelLoadError(f"{path} is not an emotion_app ONNX labels file; {_export_hint(folder)}")
    if meta.get("version", 0) > FORMAT_VERSION:
        raise ModelLoadError(f"{path} has format version {meta.get('version')}; this emotion_app reads up to {FORMAT_VERSION}")
    missing = [k for k in ("labels", "embed_dim", "fingerprint", "model_id") if k not in meta]
    if missing:
        raise ModelLoadError(f"{path} lacks {', '.join(missing)}; {_export_hint(folder)}")
    if meta.get("external_data") and not (folder / ONNX_DATA_FILE).is_file():
        raise ModelLoadError(f"ONNX folder {folder} lacks {ONNX_DATA_FILE} (the weights of model.onnx); {_export_hint(folder)}")
    return meta


class OnnxModel:
    """An exported emotion2vec+ folder on onnxruntime; a drop-in for the engine's model call.

    `OnnxModel(folder)` refuses a folder whose files are missing or belong to different exports
    (labels.json, head.npz and model.onnx carry the same head fingerprint). `threads`: onnxruntime
    intra-op threads (0: its default, the physical cores); `providers`: onnxruntime execution
    providers (default: the CPU).
    """

    device = "cpu"  # as the engine reports it (the default providers; `info` reads the session's own)

    def __init__(self, folder, *, threads: int = 0, providers: Sequence[str] | None = None, dtype: str = "auto"):
        self.folder = folder = Path(folder)
        self.meta = meta = read_labels(folder)
        self.dtype = meta.get("dtype", "fp32")  # fp32, or int8 for `export-onnx --int8`
        if dtype not in ("auto", self.dtype):
            other = "export-onnx --int8" if dtype == "int8" else "export-onnx (without --int8)"
            raise ModelLoadError(
                f"{folder} holds an {self.dtype} export, and the ONNX backend runs an export in its own dtype: "
                f"drop --dtype {dtype}, or make a folder with `{other}`"
                + (", or use --backend torch" if dtype not in ("fp32", "int8") else "")
            )
        ort = import_onnxruntime()
        options = ort.SessionOptions()
        # "extended", not "all": the layout optimisations "all" adds copy the 650 MB of weights into
        # another format (peak RSS 1.31 vs 0.96 GB for a 10 s clip) and load slower, for no speed
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        if threads:
            options.intra_op_num_threads = threads
        providers = list(providers or ["CPUExecutionProvider"])
        graph = str(folder / ONNX_FILE)
        try:
            if self.dtype == "int8" and not cpu_has_int8_dot():  # also beside a GPU: its uint8 products run on the CPU
                graph = unsigned_weights(folder / ONNX_FILE) or graph  # products that cannot saturate (onnx_int8.py)
            self.session = ort.InferenceSession(graph, options, providers=providers)
        except Exception as exc:  # onnxruntime's errors (InvalidProtobuf, Fail, ...) derive from Exception only
            raise ModelLoadError(f"onnxruntime cannot load {folder / ONNX_FILE}: {exc}; {_export_hint(folder)}") from exc
        # The graph is the authority: labels.json and head.npz must carry its head's fingerprint.
        graph_fingerprint = str(self.session.get_modelmeta().custom_metadata_map.get("fingerprint"))
        if meta["fingerprint"] != graph_fingerprint:
            raise ModelLoadError(
                f"{folder / LABELS_FILE} was written for another model than {folder / ONNX_FILE} "
                f"(head fingerprint {meta['fingerprint'][:12]} vs {graph_fingerprint[:12]}); {_export_hint(folder)}"
            )
        with np.load(folder / HEAD_FILE, allow_pickle=False) as head:
            self.head_weight = head["weight"].astype(np.float32)  # (V, D)
            self.head_bias = head["bias"].astype(np.float32)  # (V,)
        if head_fingerprint(self.head_weight, self.head_bias) != graph_fingerprint:
            raise ModelLoadError(
                f"{folder / HEAD_FILE} holds the head of another model than {folder / ONNX_FILE}; {_export_hint(folder)}"
            )
        if self.head_weight.shape != (len(meta["labels"]), int(meta["embed_dim"])):
            raise ModelLoadError(
                f"{folder / LABELS_FILE} lists {len(meta['labels'])} labels of dimension {meta['embed_dim']}, "
                f"the model has {self.head_weight.shape[0]} of {self.head_weight.shape[1]}; {_export_hint(folder)}"
            )
        self.labels = tuple(label["key"] for label in meta["labels"])
        self.embed_dim = int(meta["embed_dim"])
        self.model_id = meta["model_id"]
        self.has_frame_embeddings = FRAME_EMBEDDINGS in {o.name for o in self.session.get_outputs()}
        self._min_samples = int(meta.get("min_samples", RECEPTIVE_FIELD))
        logger.info("ONNX model %s loaded from %s (%s)", self.model_id, folder, ", ".join(self.session.get_providers()))

    @property
    def info(self) -> dict[str, str]:
        device = "cuda" if "CUDAExecutionProvider" in self.session.get_providers() else "cpu"
        return {"id": self.model_id, "path": str(self.folder), "device": device, "dtype": self.dtype, "backend": "onnx"}

    def run_chunks(self, chunks: Sequence[np.ndarray], keep_frames: bool = False) -> list[ChunkOutput]:
        """Run 16 kHz mono float32 chunks (each at most a window long) in one padded batch.

        Returns per chunk its mean frame feature (D,), utterance probabilities (V,), frame
        probabilities (T, V) and, with `keep_frames`, the frame features (T, D): what
        `Engine.run_chunks` returns.
        """
        if keep_frames and not self.has_frame_embeddings:
            raise ModelLoadError(
                f"{self.folder / ONNX_FILE} was exported without frame embeddings; export it again with --frame-embeddings"
            )
        if not chunks:
            return []
        lengths = np.array([len(c) for c in chunks], dtype=np.int64)
        # At least one receptive field, so the conv stack has a frame to give; lengths stay true.
        wav = np.zeros((len(chunks), max(int(lengths.max()), self._min_samples)), dtype=np.float32)
        for i, c in enumerate(chunks):
            wav[i, : len(c)] = c
        names = [*OUTPUTS, FRAME_EMBEDDINGS] if keep_frames else list(OUTPUTS)
        utt, frame, mean, counts, *feats = self.session.run(names, {INPUTS[0]: wav, INPUTS[1]: lengths})
        return [
            ChunkOutput(mean[i], utt[i], frame[i, :t], feats[0][i, :t] if keep_frames else None)
            for i, t in enumerate(counts.tolist())
        ]

    def head_probabilities(self, mean: np.ndarray) -> np.ndarray:
        """(..., D) mean frame features -> (..., V) probabilities, as the graph's head computes them."""
        logits = np.asarray(mean, dtype=np.float32) @ self.head_weight.T + self.head_bias
        return softmax(logits)
