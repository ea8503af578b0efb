"""`emotion-app make-checkpoint DIR` (random weights in the hub layout) and `export-onnx OUT_DIR`."""

from __future__ import annotations

import sys

from ..constants import DEFAULT_MODEL


def add_parsers(sub) -> None:
    m = sub.add_parser("make-checkpoint", help="write a random-weight model folder in the hub layout (tests, benchmarks)")
    m.add_argument("dir")
    m.add_argument("--preset", choices=["tiny", "tiny_large", "plus_base", "plus_large"], default="tiny")
    m.add_argument("--training-state", action="store_true", help="add optimizer state as in the real 1.95 GB file")
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(func=run_make_checkpoint)

    x = sub.add_parser("export-onnx", help="export the model with its head to one ONNX graph (onnxruntime, no torch)")
    x.add_argument("out_dir", metavar="OUT_DIR", help="folder for model.onnx, labels.json, head.npz and README.md")
    x.add_argument("--model", default=DEFAULT_MODEL, help="hub id, alias or local folder (default: %(default)s)")
    x.add_argument("--hub", choices=["ms", "hf"], default="ms", help="ModelScope or Hugging Face (default: %(default)s)")
    x.add_argument("--frame-embeddings", action="store_true", help="add the output frame_embeddings (batch, frames, D)")
    x.add_argument("--opset", type=int, default=17, help="ONNX opset, 14 or later (default: %(default)s)")
    x.add_argument(
        "--int8", action="store_true", help="int8 weights for the linear layers: a third of the size, faster on most CPUs"
    )
    x.set_defaults(func=run_export_onnx)


def run_make_checkpoint(args) -> int:
    from ..tools.random_checkpoint import build_random_checkpoint

    path = build_random_checkpoint(args.dir, args.preset, seed=args.seed, training_state=args.training_state)
    print(path)
    return 0


def run_export_onnx(args) -> int:
    from ..errors import EmotionAppError
    from ..tools.onnx_export import export_onnx

    try:
        folder, diff = export_onnx(
            args.model, args.out_dir, hub=args.hub, frame_embeddings=args.frame_embeddings, opset=args.opset, int8=args.int8
        )
    except (EmotionAppError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{folder}  (max |p_onnx - p_torch| = {diff:.1e} on a test batch)")
    return 0
