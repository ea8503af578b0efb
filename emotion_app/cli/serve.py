"""`emotion-app serve`: the web app (page, REST, live WebSocket) on one port. `python app.py` and
`./run.sh` start it too.

Each flag can also be set by the environment variable `EMOTION_APP_<FLAG>` (the flag wins); --help
shows each default with the environment's value in it, secrets excepted.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from .args import add_head_arg, add_model_args

ENV_NAMES = {"head_dirs": "EMOTION_APP_HEADS (folders joined by the path separator)", "share": "EMOTION_APP_SHARE=1"}
SECRET = {"auth"}  # flags whose value --help must not print (it may come from the environment)
DESCRIPTION = "Speech emotion recognition web app (emotion2vec+)."
EPILOG = (
    "Each flag can also be set by the environment variable in brackets; the flag wins. "
    "The defaults shown include the environment's values."
)


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """--help with each flag's default, except secrets."""

    def _get_help_string(self, action):
        return action.help if action.dest in SECRET else super()._get_help_string(action)


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="start the web app", description=DESCRIPTION, epilog=EPILOG, formatter_class=_Help)
    add_arguments(p)
    p.set_defaults(func=run, check=lambda args: check(p, args))


def add_arguments(p: argparse.ArgumentParser) -> None:
    env = os.environ.get
    p.add_argument("--host", default=env("EMOTION_APP_HOST", "127.0.0.1"), help="0.0.0.0 to share on the network")
    p.add_argument("--port", type=int, default=int(env("EMOTION_APP_PORT", "7860")), help="port to serve on")
    add_model_args(p, env=True)
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
    p.add_argument(
        "--keep-hours",
        type=float,
        default=env("EMOTION_APP_KEEP_HOURS", "24"),
        help="delete results older than this; 0 keeps them",
    )
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
    p.add_argument(
        "--mcp", action="store_true", default=env("EMOTION_APP_MCP", "") == "1",
        help="serve the MCP tools (predict, analyze_recording, compare_clips) at /mcp for LLM agents",
    )  # fmt: skip
    p.add_argument(
        "--mcp-allow-urls", action="store_true", default=env("EMOTION_APP_MCP_ALLOW_URLS", "") == "1",
        help="let the MCP tools fetch audio from http(s) URLs (off: a fetching server can be turned against your network)",
    )  # fmt: skip
    p.add_argument(
        "--models", default=env("EMOTION_APP_MODELS", ""), metavar="DIR,NAME=DIR",
        help="fine-tuned model folders served beside --model, chosen per request (model=NAME); each loads on first use",
    )  # fmt: skip
    add_head_arg(p, env=True)
    _name_env_variables(p)


def _name_env_variables(parser: argparse.ArgumentParser) -> None:
    """Each flag's help ends with its environment variable, EMOTION_APP_<FLAG> (ENV_NAMES: the others)."""
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            name = ENV_NAMES.get(action.dest, f"EMOTION_APP_{action.dest.upper()}")
            action.help = f"{action.help or ''} [{name}]".strip()


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The checks argparse cannot express (parser.error exits 2 with the usage)."""
    if args.auth and ":" not in args.auth:
        parser.error("--auth takes user:password")
    if args.keep_hours < 0 or (args.max_outputs_gb is not None and args.max_outputs_gb < 0):
        parser.error("--keep-hours and --max-outputs-gb take a number >= 0 (0: no limit)")
    if args.max_live_sessions < 0 or not 0 < args.live_max_minutes <= 120:
        parser.error("--max-live-sessions takes a number >= 0 (0: no live sessions), --live-max-minutes one from 0 to 120")


def parse_args(argv=None) -> argparse.Namespace:
    """The serve flags alone (as `python app.py` takes them)."""
    parser = argparse.ArgumentParser(description=DESCRIPTION, epilog=EPILOG, formatter_class=_Help)
    add_arguments(parser)
    args = parser.parse_args(argv)
    check(parser, args)
    return args


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    from ..errors import EmotionAppError
    from ..web.server import AppSettings, launch, load_engine, require_websockets
    from .args import engine_options

    try:
        require_websockets()  # before the model's load: a missing library is said at once
    except EmotionAppError as exc:
        logging.getLogger(__name__).error("%s", exc)
        return 1

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
        mcp=args.mcp or args.mcp_allow_urls,
        mcp_allow_urls=args.mcp_allow_urls,
        models=_names(args.models),
    )
    engine, error = load_engine(**engine_options(args))
    try:
        launch(engine, settings, error, args.lang)
    except EmotionAppError as exc:  # the port is taken, say
        logging.getLogger(__name__).error("%s", exc)
        return 1
    return 0
