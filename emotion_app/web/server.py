"""Start the web app: settings, model loading with a clear failure, REST routes, the live WebSocket + Gradio page.

Safe to leave running: every request passes the guard (guard.py: Host check, CORS, body size and
time limits, login throttling), download links carry a secret key (outputs.py), old results are
deleted by a sweeper thread and Gradio's cache by Gradio (retention.py), and Gradio's analytics
are off.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import EmotionAppError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppSettings:
    host: str = "127.0.0.1"
    port: int = 7860
    outputs_dir: Path = Path("outputs")
    max_upload_mb: float = 100.0
    auth: tuple[str, str] | None = None
    share: bool = False
    concurrency: int = 2  # page/API predictions decoded at once; model calls are serialised anyway
    keep_hours: float | None = 24.0  # results (and Gradio's cached uploads) older than this are deleted; None/0: kept
    max_outputs_gb: float | None = None  # GiB the output folders may take, oldest deleted first; None: no cap
    cors_origins: tuple[str, ...] = ()  # other origins allowed to call the server from a browser ("*": any)
    allowed_hosts: tuple[str, ...] = ()  # Host names served besides the bind address (guard.HostPolicy)
    receive_timeout_s: float | None = None  # request body timeouts; None: guard.RECEIVE_TIMEOUT_S,
    body_timeout_s: float | None = None  # guard.BODY_TIMEOUT_S
    sweep_interval_s: float | None = None  # None: retention.SWEEP_INTERVAL_S
    max_live_sessions: int = 8  # live takes at once, page and /api/stream together
    live_max_minutes: float = 10.0  # a live take's limit, of audio and of wall-clock time
    mcp: bool = False  # serve the MCP tools at /mcp (api/mcp_server.py)
    mcp_allow_urls: bool = False  # let the MCP tools fetch http(s) URLs


def load_engine(**options):
    """(engine, None), or (None, one sentence saying what failed and how to fix it)."""
    from ..engine import Engine

    try:
        return Engine(**options), None
    except EmotionAppError as exc:
        logger.error("%s", exc)
        return None, str(exc)


def launch(engine, settings: AppSettings, load_error: str | None = None, lang: str = "en", block: bool = True):
    """Serve the page and the REST API. Blocks until the server stops unless `block=False`, which returns
    the running Blocks (`.local_url`, `.close()`) once the server answers."""
    import gradio as gr

    from ..outputs import read_secret
    from ..retention import Sweeper, remove_temp_folders
    from .api.rest import add_rest_routes, auth_check
    from .api.stream import MAX_MESSAGE_BYTES, add_stream_routes, capped_send_buffer
    from .api.throttle import LoginThrottle
    from .api.watchdog import LoopWatchdog
    from .i18n import GRADIO_MISSING
    from .ui.page import build_demo, stylesheet

    require_websockets()
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read when the Blocks are built: no telemetry, no version check
    outputs = Path(settings.outputs_dir)
    outputs.mkdir(parents=True, exist_ok=True)
    remove_temp_folders(outputs)  # all of them: left by a killed process, as no request runs yet
    read_secret(outputs)  # made now rather than by the first requests, racing
    _warn_if_exposed(settings)
    allowed_paths = _page_allowed_paths(outputs)
    live = _live_hub(engine, outputs, settings)
    demo = build_demo(engine, outputs, load_error, lang, live=live)
    demo.analytics_enabled = False
    demo.queue(default_concurrency_limit=settings.concurrency)
    if settings.keep_hours:  # Gradio reads it in launch(): uploads and page downloads in its cache
        demo.delete_cache = cache_schedule(settings.keep_hours)
    throttle = LoginThrottle()  # shared by the REST routes' Basic auth and the guard's /login
    # Our routes go on the app before Gradio adds its own, so launch() keeps all its features
    # (auth, share links, queue, upload limit) with /api/* served beside the page. Gradio's
    # `_app` parameter is what allows this; gradio is pinned to the version this was tested with.
    app = _guarded_app(settings, throttle, private_dir=outputs if allowed_paths else None)
    app.state.watchdog = LoopWatchdog()
    app.state.live = live
    add_rest_routes(app, engine, settings, load_error, throttle=throttle)
    add_stream_routes(app, live, settings, load_error, throttle=throttle)
    lifespans = []
    if settings.mcp:
        from .api.mcp_server import add_mcp_routes

        denied = auth_check(settings.auth, throttle)
        lifespans.append(add_mcp_routes(app, engine, settings, load_error, denied, settings.mcp_allow_urls))
    max_bytes = int(settings.max_outputs_gb * 2**30) if settings.max_outputs_gb else None
    interval = {"interval_s": settings.sweep_interval_s} if settings.sweep_interval_s else {}
    sweeper = Sweeper(outputs, settings.keep_hours, max_bytes, **interval)
    demo.launch(
        _app=app,
        app_kwargs={"lifespan": _lifespan(sweeper, app.state.watchdog, *lifespans)},  # they start and stop with the server
        server_name=settings.host,
        server_port=settings.port,
        auth=settings.auth,
        share=settings.share,
        max_file_size=f"{settings.max_upload_mb:g}mb",
        allowed_paths=allowed_paths,
        prevent_thread_lock=True,
        show_error=True,
        css=stylesheet(),
        quiet=True,  # Gradio's banner says "set share=True in launch()"; ours names the app's flag
        # Gradio's own "is localhost reachable" check gives up at the first HEAD / slower than 3 s,
        # which a busy 2-core machine hits while the full-size model's server starts (the server
        # then dies with advice about share=True); `_wait_until_served` checks with patience instead.
        _frontend=False,
        # Set here, so that Gradio's environment variables cannot: GRADIO_NUM_WORKERS would start
        # upload and file servers of its own on the next ports, and GRADIO_SSR_MODE a Node proxy,
        # each outside the guard.
        num_workers=0,
        ssr_mode=False,
        i18n=gr.I18n(**GRADIO_MISSING),
    )
    # A WebSocket message larger than the live stream's limit is refused as its header arrives
    # (close 1009) instead of being read whole first (uvicorn's default reads up to 16 MiB). Gradio
    # creates uvicorn's config itself; uvicorn reads both settings for each new connection. A live
    # connection's kernel send buffer is fixed, so a client that stops reading is noticed after a
    # bound that is the same on every machine (web/api/stream.py).
    demo.server.config.ws_max_size = MAX_MESSAGE_BYTES
    demo.server.config.ws_protocol_class = capped_send_buffer(demo.server.config.ws_protocol_class)
    _wait_until_served(demo.local_url)
    # Everything made so far (the model, Gradio's blocks, the imported modules) lives as long as the
    # server: kept out of the garbage collector's full passes, which stop every thread (the event
    # loop too) for as long as they scan; a large heap made them 0.2-0.5 s pauses.
    gc.collect()
    gc.freeze()
    if block:
        logger.info("Running on %s", demo.local_url)
        if demo.share_url:
            logger.info("Public link: %s", demo.share_url)
        else:
            logger.info("For a public link, start with --share (needs internet; set --auth too).")
        demo.block_thread()
    return demo


def require_websockets() -> None:
    """Refuse to start without a WebSocket implementation for uvicorn (the live stream and Gradio's
    page need one): without it uvicorn starts, then every WebSocket fails."""
    import importlib.util

    if importlib.util.find_spec("websockets") is None and importlib.util.find_spec("wsproto") is None:
        raise EmotionAppError(
            "No WebSocket library is installed, which the live meter (/api/stream) needs: install the app's "
            "requirements (pip install -r requirements.txt, or pip install websockets) and start again.",
            "missing_dependency",
        )


def _lifespan(sweeper, watchdog, *others):
    """The server's lifespan: the retention sweeper's thread, the event loop's watchdog and `others`
    (functions giving async context managers: the MCP transport's)."""

    @contextlib.asynccontextmanager
    async def lifespan(app=None):
        async with sweeper.lifespan(), watchdog.lifespan(), contextlib.AsyncExitStack() as stack:
            for other in others:
                await stack.enter_async_context(other())
            yield

    return lifespan


def _live_hub(engine, outputs: Path, settings: AppSettings):
    """The live sessions' hub, shared by the Live tab and /api/stream (None without a model)."""
    if engine is None:
        return None
    from ..live import LiveHub

    return LiveHub(engine, outputs, max_sessions=settings.max_live_sessions, max_seconds=settings.live_max_minutes * 60)


def cache_schedule(keep_hours: float) -> tuple[int, int]:
    """Gradio's `delete_cache` (every s, older than s): files go after `keep_hours`, checked 4 times as often."""
    age = max(60, int(keep_hours * 3600))
    return min(3600, max(60, age // 4)), age


def _guarded_app(settings: AppSettings, throttle, private_dir: Path | None):
    """Gradio's App with the guard around its whole middleware stack, so that the guard's CORS
    policy replaces Gradio's (which allows any localhost origin, with credentials)."""
    from gradio.routes import App

    from .api.guard import Guard, HostPolicy

    hosts = HostPolicy.for_bind(settings.host, settings.allowed_hosts, settings.share)
    options = {"receive_timeout_s": settings.receive_timeout_s, "body_timeout_s": settings.body_timeout_s}
    options = {k: v for k, v in options.items() if v is not None}
    options |= {"max_upload_mb": settings.max_upload_mb, "hosts": hosts, "cors_origins": settings.cors_origins}
    options |= {"throttle": throttle if settings.auth else None, "private_dir": private_dir}
    if settings.auth:  # the login form shows a throttled login's answer (throttle.LOGIN_SCRIPT)
        from .api.throttle import LOGIN_SCRIPT

        options |= {"page_script": LOGIN_SCRIPT}
    if settings.mcp:  # a data URL carries the audio in base64: 4/3 of its bytes, in JSON
        from .api.mcp_server import PATH, envelope_bytes

        options |= {"larger_bodies": {PATH: envelope_bytes(settings.max_upload_mb)}}

    class GuardedApp(App):
        def build_middleware_stack(self):
            return Guard(super().build_middleware_stack(), **options)

    return GuardedApp()


def _page_allowed_paths(outputs: Path) -> list[str]:
    """Gradio hands the page only files inside the working directory, the temp folder or its
    `allowed_paths`, and serves `allowed_paths` to anyone by absolute path (/gradio_api/file=...).
    So the outputs folder is passed only when it lies elsewhere, and then the guard refuses those
    paths: the page's download lists are copies in Gradio's cache either way."""
    resolved = outputs.resolve()
    roots = (Path.cwd().resolve(), Path(tempfile.gettempdir()).resolve())
    if any(resolved == root or root in resolved.parents for root in roots):
        return []
    return [str(resolved)]


def _warn_if_exposed(settings: AppSettings) -> None:
    from .api.guard import is_loopback

    if settings.auth is not None:
        return
    if not is_loopback(settings.host):
        logger.warning(
            "Serving on %s without --auth: anyone who can reach this address can use the app. "
            "Set --auth user:password, or serve on 127.0.0.1.",
            settings.host,
        )
    if settings.share:
        logger.warning("--share without --auth: anyone with the public link can use the app. Set --auth user:password.")


def _wait_until_served(url: str, timeout_s: float = 60.0) -> None:
    """Wait until the page answers (HEAD /), logging an error when it does not within `timeout_s`."""
    import time

    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.head(url, timeout=10).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    logger.error("the page at %s does not answer; check the host, port and proxy settings", url)
