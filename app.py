"""emotion_app web app: `python app.py [--host ...] [--port ...] [--model ...]` (or ./run.sh)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description="Speech emotion recognition web app (emotion2vec+).")
    p.add_argument("--host", default=env("EMOTION_APP_HOST", "127.0.0.1"), help="0.0.0.0 to share on the network")
    p.add_argument("--port", type=int, default=int(env("EMOTION_APP_PORT", "7860")))
    p.add_argument("--model", default=env("EMOTION_APP_MODEL", "iic/emotion2vec_plus_large"), help="hub id, alias or folder")
    p.add_argument("--hub", choices=["ms", "hf"], default=env("EMOTION_APP_HUB", "ms"))
    p.add_argument("--device", default=env("EMOTION_APP_DEVICE", "auto"), help="auto, cpu or cuda")
    p.add_argument("--outputs", default=env("EMOTION_APP_OUTPUTS", "outputs"), help="folder for per-request results")
    p.add_argument("--max-upload-mb", type=float, default=float(env("EMOTION_APP_MAX_UPLOAD_MB", "100")))
    p.add_argument("--auth", default=env("EMOTION_APP_AUTH"), help="user:password to require a login")
    p.add_argument("--share", action="store_true", default=env("EMOTION_APP_SHARE", "") == "1", help="public Gradio link")
    p.add_argument("--lang", choices=["en", "zh"], default=env("EMOTION_APP_LANG", "en"), help="initial page language")
    args = p.parse_args(argv)
    if args.auth and ":" not in args.auth:
        p.error("--auth takes user:password")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from emotion_app.server import AppSettings, launch, load_engine

    settings = AppSettings(
        host=args.host,
        port=args.port,
        outputs_dir=Path(args.outputs),
        max_upload_mb=args.max_upload_mb,
        auth=tuple(args.auth.split(":", 1)) if args.auth else None,
        share=args.share,
    )
    engine, error = load_engine(model=args.model, hub=args.hub, device=args.device)
    launch(engine, settings, error, args.lang)


if __name__ == "__main__":
    main()
