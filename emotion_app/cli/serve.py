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
ENV_NAMES |= {"cross_batch": "EMOTION_APP_CROSS_BATCH=0", "ray_serve": "EMOTION_APP_RAY_SERVE=1"}
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
    users = env("EMOTION_APP_USERS")
    p.add_argument("--users", default=users, help="users file: logins, API keys, roles, limits (emotion-app users ...)")
    p.add_argument("--audit-log", default=env("EMOTION_APP_AUDIT_LOG"), help="JSON lines file: one line per request")
    p.add_argument(
        "--audit-max-mb", type=float, default=float(env("EMOTION_APP_AUDIT_MAX_MB", "10")),
        help="the audit log starts a new file past this size; 5 old ones are kept",
    )  # fmt: skip
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
    floor = env("EMOTION_APP_MIN_FREE_DISK_MB", "1024")
    p.add_argument(
        "--min-free-disk-mb", type=float, default=floor,
        help="with less free space on the outputs' disk, the oldest results are deleted at once; 0: never",
    )  # fmt: skip
    memory = env("EMOTION_APP_MAX_MEMORY_GB")
    p.add_argument(
        "--max-memory-gb", type=float, default=memory,
        help="GiB the analyses may hold at once; past it they wait, then are answered busy (default: from the machine's memory)",
    )  # fmt: skip
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
        "--no-cross-batch", dest="cross_batch", action="store_false", default=env("EMOTION_APP_CROSS_BATCH", "1") != "0",
        help="run each request's model calls on their own instead of merging concurrent requests' calls",
    )  # fmt: skip
    p.add_argument(
        "--batch-max", type=int, default=int(env("EMOTION_APP_BATCH_MAX", "0")),
        help="chunks per merged model call (with --ray-serve also the calls a replica merges); 0: the engine's batch size",
    )  # fmt: skip
    p.add_argument(
        "--batch-wait-ms", type=float, default=float(env("EMOTION_APP_BATCH_WAIT_MS", "2")),
        help="how long a model call waits for other requests' calls to join it, in ms",
    )  # fmt: skip
    add_ray_serve_args(p, env)
    p.add_argument(
        "--models", default=env("EMOTION_APP_MODELS", ""), metavar="DIR,NAME=DIR",
        help="fine-tuned model folders served beside --model, chosen per request (model=NAME); each loads on first use",
    )  # fmt: skip
    add_head_arg(p, env=True)
    _name_env_variables(p)


def add_ray_serve_args(p: argparse.ArgumentParser, env) -> None:
    """--ray-serve and its flags (scale/cluster.py; docs/scale.md)."""
    p.add_argument(
        "--ray-serve", action="store_true", default=env("EMOTION_APP_RAY_SERVE", "") == "1",
        help="run the model in Ray Serve replicas (batched across requests), this process serving the web front",
    )  # fmt: skip
    p.add_argument(
        "--ray-address", default=env("EMOTION_APP_RAY_ADDRESS"),
        help="join this Ray cluster (HEAD_IP:6379); none: a local Ray on 127.0.0.1, stopped on exit",
    )  # fmt: skip
    p.add_argument("--replicas", type=int, default=int(env("EMOTION_APP_REPLICAS", "1")), help="model replicas (--ray-serve)")
    p.add_argument("--autoscale", default=env("EMOTION_APP_AUTOSCALE"), help="MIN,MAX replicas, scaled on load (--ray-serve)")
    gpus, cpus = env("EMOTION_APP_GPUS_PER_REPLICA", "0"), env("EMOTION_APP_CPUS_PER_REPLICA", "1")
    p.add_argument("--gpus-per-replica", type=float, default=float(gpus), help="GPUs each model replica takes (--ray-serve)")
    p.add_argument("--cpus-per-replica", type=float, default=float(cpus), help="CPUs each model replica takes (--ray-serve)")


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
    if args.audit_max_mb <= 0:
        parser.error("--audit-max-mb takes a size > 0 in MiB")
    if args.keep_hours < 0 or (args.max_outputs_gb is not None and args.max_outputs_gb < 0):
        parser.error("--keep-hours and --max-outputs-gb take a number >= 0 (0: no limit)")
    if args.min_free_disk_mb < 0:
        parser.error("--min-free-disk-mb takes a number of MiB >= 0 (0: never)")
    if args.max_memory_gb is not None and args.max_memory_gb <= 0:
        parser.error("--max-memory-gb takes a number of GiB above 0")
    if args.max_live_sessions < 0 or not 0 < args.live_max_minutes <= 120:
        parser.error("--max-live-sessions takes a number >= 0 (0: no live sessions), --live-max-minutes one from 0 to 120")
    if args.batch_max < 0 or args.batch_wait_ms < 0:
        parser.error("--batch-max and --batch-wait-ms take a number >= 0")
    if args.replicas < 1 or args.gpus_per_replica < 0 or args.cpus_per_replica < 0:
        parser.error("--replicas takes a whole number >= 1, --gpus-per-replica and --cpus-per-replica numbers >= 0")
    if args.autoscale is not None:
        try:
            low, high = (int(n) for n in args.autoscale.split(","))
        except ValueError:
            parser.error(f"--autoscale takes MIN,MAX (two whole numbers, such as 1,4), not {args.autoscale!r}")
        if not 0 <= low <= high or high < 1:
            parser.error(f"--autoscale MIN,MAX needs 0 <= MIN <= MAX and MAX >= 1, not {args.autoscale!r}")
    ray_only = [flag for flag, value in (("--ray-address", args.ray_address), ("--autoscale", args.autoscale)) if value]
    if args.ray_serve and args.models:
        parser.error("--models is not served with --ray-serve: its replicas hold the one --model (serve others apart)")
    if ray_only and not args.ray_serve:
        parser.error(f"{', '.join(ray_only)} needs --ray-serve")


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
        if args.users:  # and so is a users file that cannot be read (the server reads it again)
            from ..web.users import load

            load(Path(args.users))
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
        max_memory_gb=args.max_memory_gb,
        min_free_disk_mb=args.min_free_disk_mb,
        cors_origins=_names(args.cors_origins),
        allowed_hosts=_names(args.allowed_hosts),
        max_live_sessions=args.max_live_sessions,
        live_max_minutes=args.live_max_minutes,
        mcp=args.mcp or args.mcp_allow_urls,
        mcp_allow_urls=args.mcp_allow_urls,
        users_file=Path(args.users) if args.users else None,
        audit_log=Path(args.audit_log) if args.audit_log else None,
        audit_max_mb=args.audit_max_mb,
        cross_batch=args.cross_batch,
        batch_max=args.batch_max,
        batch_wait_ms=args.batch_wait_ms,
        models=_names(args.models),
    )
    if args.ray_serve:
        return _run_ray_serve(args, settings, engine_options(args))
    engine, error = load_engine(**engine_options(args))
    try:
        launch(engine, settings, error, args.lang)
    except EmotionAppError as exc:  # the port is taken, say
        logging.getLogger(__name__).error("%s", exc)
        return 1
    return 0


def _run_ray_serve(args, settings, options: dict) -> int:
    """The web front here, the model in Ray Serve replicas (scale/cluster.py), until Ctrl-C; a Ray
    started here is stopped on the way out."""
    from ..errors import EmotionAppError
    from ..scale.cluster import ServeOptions, start_model
    from ..web.server import launch

    autoscale = tuple(int(n) for n in args.autoscale.split(",")) if args.autoscale else None
    serve_options = ServeOptions(
        replicas=args.replicas, autoscale=autoscale, gpus_per_replica=args.gpus_per_replica,
        cpus_per_replica=args.cpus_per_replica, max_batch=args.batch_max, batch_wait_ms=args.batch_wait_ms,
    )  # fmt: skip
    try:
        with start_model(options, serve_options, address=args.ray_address) as engine:
            launch(engine, settings, None, args.lang)
    except EmotionAppError as exc:
        logging.getLogger(__name__).error("%s", exc)
        return 1
    return 0
