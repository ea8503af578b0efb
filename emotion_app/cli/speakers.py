"""`emotion-app embed-speaker FILE...`: a CAM++ speaker embedding per file (192 floats), as FunASR
computes it; `--json` prints `{"file", "embedding"}` per file, otherwise the files' cosine
similarities (same speaker: close to 1)."""

from __future__ import annotations

import json
import sys

from .args import fail


def add_parser(sub) -> None:
    p = sub.add_parser("embed-speaker", help="CAM++ speaker embeddings of audio files (192 floats each), or their similarities")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio or video files; each is decoded to 16 kHz mono")
    p.add_argument(
        "--speaker-model", default="campplus", metavar="DIR|ID",
        help="folder with campplus_cn_common.bin, hub id or alias (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--hub", choices=["ms", "hf"], default="ms", help="ModelScope or Hugging Face (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    p.add_argument("--json", action="store_true", help='print {"file", "embedding": [192 floats]} per file')
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from ..audio.source import load_audio
    from ..errors import EmotionAppError
    from ..speakers.model import SpeakerModel

    try:
        model = SpeakerModel(args.speaker_model, args.hub, device=args.device)
    except EmotionAppError as exc:
        return fail(exc.message)
    names, vectors, failed = [], [], 0
    for path in args.files:
        try:
            embedding = model.embed(load_audio(path).samples)
        except EmotionAppError as exc:
            failed += 1
            print(f"error: {exc.message if exc.message.startswith(path) else f'{path}: {exc.message}'}", file=sys.stderr)
            continue
        if args.json:
            print(json.dumps({"file": path, "embedding": [round(float(v), 6) for v in embedding]}), flush=True)
        names.append(path)
        vectors.append(embedding)
    if not args.json and vectors:
        unit = np.stack(vectors) / np.maximum(np.linalg.norm(np.stack(vectors), axis=1, keepdims=True), 1e-12)
        similarity = unit @ unit.T
        width = max(len(n) for n in names)
        for name, row in zip(names, similarity):
            print(f"{name:<{width}}  " + " ".join(f"{v:5.2f}" for v in row))
    return 1 if failed else 0
