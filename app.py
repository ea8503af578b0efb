"""emotion_app web app: `python app.py [--host ...] [--port ...] [--model ...]` (or ./run.sh)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(
        description="Speech emotion recognition web app (emotion2vec+).",
        formatter_class=_Help,
        epilog="Each flag can also be set by the environment variable in brackets; the flag wins. "
        "The defaults shown include the environment's values.",
    )
    p.add_argument("--host", default=env("EMOTION_APP_HOST", "127.0.0.1"), help="0.0.0.0 to share on the network")
    p.add_argument("--port", type=int, default=int(env("EMOTION_APP_PORT", "7860")), help="port to serve on")
    p.add_argument("--model", default=env("EMOTION_APP_MODEL", "iic/emotion2vec_plus_large"), help="hub id, alias or folder")
    p.add_argument("--hub", choices=["ms", "hf"], default=env("EMOTION_APP_HUB", "ms"), help="ms: ModelScope, hf: Hugging Face")
    p.add_argument("--device", default=env("EMOTION_APP_DEVICE", "auto"), help="auto, cpu or cuda")
    p.add_argument(
        "--dtype",
        choices=["auto", "fp32", "fp16", "bf16"],
        default=env("EMOTION_APP_DTYPE", "auto"),
        help="auto = fp32 (FunASR's numbers); bf16 on CUDA or a CPU with native bf16; fp16 on CUDA",
    )
    p.add_argument(
        "--backend",
        choices=["torch", "onnx"],
        default=env("EMOTION_APP_BACKEND", "torch"),
        help="onnx: --model is an export-onnx folder",
    )
    p.add_argument("--outputs", default=env("EMOTION_APP_OUTPUTS", "outputs"), help="folder for per-request results")
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=float(env("EMOTION_APP_MAX_UPLOAD_MB", "100")),
        help="the most one request may send, in MiB",
    )
    p.add_argument("--auth", default=env("EMOTION_APP_AUTH"), help="user:password to require a login")
    p.add_argument("--share", action="store_true", default=env("EMOTION_APP_SHARE", "") == "1", help="public Gradio link")
    p.add_argument("--lang", choices=["en", "zh"], default=env("EMOTION_APP_LANG", "en"), help="initial page language")
    keep = env("EMOTION_APP_KEEP_HOURS", "24")
    p.add_argument("--keep-hours", type=float, default=keep, help="delete results older than this; 0 keeps them")
    cap = env("EMOTION_APP_MAX_OUTPUTS_GB")
    p.add_argument("--max-outputs-gb", type=float, default=cap, help="cap on the results' size, oldest deleted first")
    origins = env("EMOTION_APP_CORS_ORIGINS", "")
    p.add_argument("--cors-origins", default=origins, help="comma-separated origins a browser may call from")
    hosts = env("EMOTION_APP_ALLOWED_HOSTS", "")
    p.add_argument("--allowed-hosts", default=hosts, help="comma-separated host names served besides the bind address")
    live = env("EMOTION_APP_MAX_LIVE_SESSIONS", "8")
    p.add_argument("--max-live-sessions", type=int, default=live, help="live takes at once (page and /api/stream)")
    minutes = env("EMOTION_APP_LIVE_MAX_MINUTES", "10")
    p.add_argument("--live-max-minutes", type=float, default=minutes, help="time limit of one live take, in minutes")
    heads = [h for h in env("EMOTION_APP_HEADS", "").split(os.pathsep) if h]
    p.add_argument("--head", action="append", default=heads, metavar="HEAD_DIR", help="your own head (train-head); repeatable")
    _name_env_variables(p)
    args = p.parse_args(argv)
    if args.auth and ":" not in args.auth:
        p.error("--auth takes user:password")
    if args.keep_hours < 0 or (args.max_outputs_gb is not None and args.max_outputs_gb < 0):
        p.error("--keep-hours and --max-outputs-gb take a number >= 0 (0: no limit)")
    if args.max_live_sessions < 0 or not 0 < args.live_max_minutes <= 120:
        p.error("--max-live-sessions takes a number >= 0 (0: no live sessions), --live-max-minutes one from 0 to 120")
    return args


ENV_NAMES = {"head": "EMOTION_APP_HEADS (folders joined by the path separator)", "share": "EMOTION_APP_SHARE=1"}
SECRET = {"auth"}  # flags whose value --help must not print (it may come from the environment)


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """--help with each flag's default, except secrets."""

    def _get_help_string(self, action):
        return action.help if action.dest in SECRET else super()._get_help_string(action)


def _name_env_variables(parser: argparse.ArgumentParser) -> None:
    """Each flag's help ends with its environment variable, EMOTION_APP_<FLAG> (ENV_NAMES: the others)."""
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            name = ENV_NAMES.get(action.dest, f"EMOTION_APP_{action.dest.upper()}")
            action.help = f"{action.help or ''} [{name}]".strip()


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from emotion_app.web.server import AppSettings, launch, load_engine

    settings = AppSettings(
        host=args.host,
        port=args.port,
        outputs_dir=Path(args.outputs),
        max_upload_mb=args.max_upload_mb,
        auth=tuple(args.auth.split(":", 1)) if args.auth else None,
        share=args.share,
        keep_hours=args.keep_hours,
        max_outputs_gb=args.max_outputs_gb,
        cors_origins=_names(args.cors_origins),
        allowed_hosts=_names(args.allowed_hosts),
        max_live_sessions=args.max_live_sessions,
        live_max_minutes=args.live_max_minutes,
    )
    engine, error = load_engine(
        model=args.model, hub=args.hub, device=args.device, dtype=args.dtype, backend=args.backend, heads=tuple(args.head)
    )
    launch(engine, settings, error, args.lang)


if __name__ == "__main__":
    main()
