"""Start the web app: settings, model loading with a clear failure, REST routes, the live WebSocket + Gradio page.

`build_app` makes the whole app as one FastAPI app (our routes, Gradio's page mounted at / with
`gr.mount_gradio_app`, the guard around both); `serve` runs it with uvicorn; `launch` does both.

Safe to leave running: every request passes the guard (guard.py: Host check, CORS, body size and
time limits, login throttling, with --users the caller and their limits, with --audit-log the
audit log; its options and the page's login: access.py), download links carry a secret key
(outputs.py), old results are deleted by a sweeper thread and Gradio's cache by Gradio
(retention.py), and Gradio's analytics are off.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import EmotionAppError
from .access import callers_and_audit, guard_options, page_allowed_paths, page_login, page_sessions, warn_if_exposed
from .settings import AppSettings

logger = logging.getLogger(__name__)


def _preload_matplotlib() -> None:
    """Gradio imports matplotlib and sets its backend around every event, on the event loop: the
    first import stalled the loop 0.3-0.9 s. Done here, before serving, that is a dictionary lookup."""
    import matplotlib

    matplotlib.use("agg")
    matplotlib.get_backend()


def load_engine(**options):
    """(engine, None), or (None, one sentence saying what failed and how to fix it)."""
    from ..engine import Engine

    try:
        return Engine(**options), None
    except EmotionAppError as exc:
        logger.error("%s", exc)
        return None, str(exc)


def build_app(engine, settings: AppSettings, load_error: str | None = None, lang: str = "en"):
    """The whole web app as one ASGI app (a FastAPI app) that any ASGI server can run: the REST routes,
    the live WebSocket (/api/stream), the MCP tools (/mcp, with `settings.mcp`) and Gradio's page at /,
    and /metrics (api/metrics.py), all behind the guard. With `settings.cross_batch` the engine merges
    concurrent requests' model calls (Engine.enable_batching). `engine` may run its model elsewhere
    (a Ray Serve handle, scale/remote.py): every route is the same. Its lifespan runs the retention
    sweeper, the event loop's watchdog, the metrics' observers, the MCP transport and Gradio's queue
    and cache cleaning. `app.state` holds `live` (the live hub),
    `watchdog`, `metrics`, `memory` (the memory budget every analysis holds from) and `demo` (the Blocks).
    `launch` serves it; it must be served with `ws_max_size=MAX_MESSAGE_BYTES` (web/api/stream.py),
    as `launch` does."""
    import gradio as gr
    from fastapi import FastAPI
    from starlette.routing import Mount

    from ..memory import MemoryBudget
    from ..outputs import read_secret
    from ..retention import Sweeper, remove_temp_folders
    from .api.guard import Guard
    from .api.metrics import Metrics, MetricsMiddleware, add_metrics_route
    from .api.rest import add_api_fallback, add_rest_routes, auth_check
    from .api.stream import add_stream_routes
    from .api.throttle import LoginThrottle
    from .api.watchdog import LoopWatchdog
    from .i18n import GRADIO_MISSING
    from .ui.page import build_demo, stylesheet

    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read when the Blocks are built: no telemetry, no version check
    outputs = Path(settings.outputs_dir)
    outputs.mkdir(parents=True, exist_ok=True)
    _preload_matplotlib()
    remove_temp_folders(outputs)  # those of dead processes on this host (outputs.temp_owner): left by a kill
    read_secret(outputs)  # made now rather than by the first requests, racing
    warn_if_exposed(settings)
    if engine is not None and settings.cross_batch:
        engine.enable_batching(settings.batch_max or None, settings.batch_wait_ms / 1000)
    allowed_paths = page_allowed_paths(outputs)
    live = _live_hub(engine, outputs, settings)
    wait = {"wait_s": settings.memory_wait_s} if settings.memory_wait_s is not None else {}
    memory = MemoryBudget.for_machine(settings.max_memory_gb, **wait)  # after the model's load: the default leaves it room
    logger.info("memory budget for analyses: %.0f MB", memory.budget_mb)
    models = _model_set(engine, settings)
    demo = build_demo(engine, outputs, load_error, lang, live=live, memory=memory, models=models)
    demo.analytics_enabled = False
    demo.queue(default_concurrency_limit=settings.concurrency)
    if settings.keep_hours:  # Gradio's cache (uploads and page downloads), cleaned by the mounted page's lifespan
        demo.delete_cache = cache_schedule(settings.keep_hours)
    throttle = LoginThrottle()  # shared by the REST routes' Basic auth and the guard's /login
    watchdog = LoopWatchdog()
    max_bytes = int(settings.max_outputs_gb * 2**30) if settings.max_outputs_gb else None
    interval = {"interval_s": settings.sweep_interval_s} if settings.sweep_interval_s else {}
    interval |= {"disk_check_s": settings.disk_check_s} if settings.disk_check_s else {}
    floor = int(settings.min_free_disk_mb * 2**20) if settings.min_free_disk_mb else None
    sweeper = Sweeper(outputs, settings.keep_hours, max_bytes, min_free_bytes=floor, **interval)
    metrics = Metrics(engine, live)
    # more of them: the users file's watch, the audit log's writer, the MCP transport's
    lifespans = [lambda: metrics.lifespan(engine, watchdog)]
    callers, audit = callers_and_audit(settings, lifespans)
    app = FastAPI(lifespan=_lifespan(sweeper, watchdog, lifespans), docs_url=None, redoc_url=None)
    app.state.watchdog, app.state.live, app.state.demo, app.state.memory = watchdog, live, demo, memory
    app.state.metrics = metrics
    denied = auth_check(settings.auth, throttle)  # the REST routes' login, for /metrics and /mcp too
    add_rest_routes(app, engine, settings, load_error, throttle=throttle, models=models)
    add_metrics_route(app, metrics, denied)
    add_stream_routes(app, live, settings, load_error, throttle=throttle)
    if settings.mcp:
        from .api.mcp_server import add_mcp_routes

        lifespans.append(add_mcp_routes(app, engine, settings, load_error, denied, settings.mcp_allow_urls, models=models))
    add_api_fallback(app)
    # The page is mounted at / after our routes, so /api/* and /mcp are ours and the rest Gradio's.
    # ssr_mode and mcp_server are set here, so that Gradio's environment variables cannot start a
    # Node proxy outside the guard (GRADIO_SSR_MODE) or a second set of MCP tools (GRADIO_MCP_SERVER).
    gr.mount_gradio_app(
        app,
        demo,
        path="/",
        server_name=settings.host,
        server_port=settings.port,
        auth=page_login(settings.auth, callers),
        max_file_size=f"{settings.max_upload_mb:g}mb",
        allowed_paths=allowed_paths,
        show_error=True,
        ssr_mode=False,
        mcp_server=False,
        i18n=gr.I18n(**GRADIO_MISSING),
        css=stylesheet(),
    )
    app.state.page = next(route.app for route in app.routes if isinstance(route, Mount))  # Gradio's app, at /
    if callers is not None:  # the guard reads who logged in on the page from Gradio's sessions
        callers.page_user = page_sessions(app.state.page)
    # The guard is added after the routes and the page (only the metrics' counter is outside it), so
    # it is around our routes and the mounted page alike, and its CORS policy replaces Gradio's (which
    # allows any localhost origin, with credentials).
    options = guard_options(settings, throttle, private_dir=outputs if allowed_paths else None)
    app.add_middleware(Guard, **options, callers=callers, basic_auth=settings.auth is not None, audit=audit)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outside the guard: its refusals are counted too
    return app


@dataclass
class Served:
    """A running server (`launch(..., block=False)`): `local_url`, `share_url` (None without
    --share), `app` (build_app's: `app.state.live`, `.watchdog`, `.demo`) and `close()`."""

    app: object
    server: object  # uvicorn.Server
    thread: threading.Thread
    local_url: str
    share_url: str | None = None

    @property
    def demo(self):
        return self.app.state.demo

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the server: Gradio's queue, then uvicorn (its lifespan stops the sweeper and the watchdog)."""
        self.demo.close(verbose=False)
        loop = getattr(self.app.state, "loop", None)
        if loop is not None and not loop.is_closed():
            # Each open page (or gradio_client) holds a heartbeat stream until the mounted app's
            # stop event (what Blocks.close sets on the app launch() makes); uvicorn's shutdown
            # would wait for them, then cancel them with an error each.
            loop.call_soon_threadsafe(self.app.state.page.stop_event.set)
        self.server.should_exit = True
        self.thread.join(timeout=timeout_s)


def launch(engine, settings: AppSettings, load_error: str | None = None, lang: str = "en", block: bool = True) -> Served:
    """Build the app (`build_app`) and serve it with uvicorn on `settings.host:port`. Blocks until the
    server stops (Ctrl-C) unless `block=False`, which returns the `Served` server once it answers."""
    require_websockets()
    app = build_app(engine, settings, load_error, lang)
    served = serve(app, settings.host, settings.port)
    if settings.share:
        served.share_url = _share_link(settings.host, settings.port)
    # Everything made so far (the model, Gradio's blocks, the imported modules) lives as long as the
    # server: kept out of the garbage collector's full passes, which stop every thread (the event
    # loop too) for as long as they scan; a large heap made them 0.2-0.5 s pauses.
    gc.collect()
    gc.freeze()
    if block:
        logger.info("Running on %s", served.local_url)
        if served.share_url:
            logger.info("Public link: %s", served.share_url)
        else:
            logger.info("For a public link, start with --share (needs internet; set --auth too).")
        try:
            while served.thread.is_alive():
                served.thread.join(0.5)
        except KeyboardInterrupt:
            logger.info("Stopping the server")
            served.close()
    return served


def serve(app, host: str, port: int, start_timeout_s: float = 120.0) -> Served:
    """Run `app` (build_app's) with uvicorn in a thread; returns once the page answers.

    WebSocket messages larger than the live stream's limit are refused as their header arrives
    (close 1009) instead of being read whole first (uvicorn's default reads up to 16 MiB), and each
    WebSocket connection's kernel send buffer is fixed, so a client that stops reading is noticed
    after a bound that is the same on every machine (web/api/stream.py)."""
    import time

    import uvicorn
    from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

    from .api.stream import MAX_MESSAGE_BYTES, capped_send_buffer

    config = uvicorn.Config(
        app,
        host=host.strip("[]"),
        port=port,
        # h11 and asyncio's loop whatever else is installed (ray[serve] brings httptools and uvloop,
        # which uvicorn would pick): the same server everywhere, reading a chunked body as it arrives
        # for the guard's limit
        http="h11",
        loop="asyncio",
        ws=capped_send_buffer(AutoWebSocketsProtocol),
        ws_max_size=MAX_MESSAGE_BYTES,
        lifespan="on",  # a lifespan that fails to start stops the server rather than serving without it
        log_level="warning",
        timeout_graceful_shutdown=5,  # on stopping, requests still running after 5 s are cancelled
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="emotion-app-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:  # bound and the lifespan started
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise EmotionAppError(
                f"The server could not start on {host}:{port} (see the error above): the port may be in use or the "
                "address not this machine's; choose another with --port or --host.",
                "unavailable",
            )
        time.sleep(0.05)
    served = Served(app, server, thread, local_url(host, port))
    _wait_until_served(served.local_url)
    return served


def local_url(host: str, port: int) -> str:
    """The address to open on this machine: localhost for a wildcard bind (0.0.0.0, ::)."""
    name = host.strip().strip("[]")
    if name in ("", "0.0.0.0", "::"):
        name = "localhost"
    elif ":" in name:
        name = f"[{name}]"
    return f"http://{name}:{port}/"


def _share_link(host: str, port: int) -> str | None:
    """A temporary public https link through Gradio's share server (the tunnel launch() opens for
    share=True), or None, logged, when it cannot be made (it needs internet and downloads a client)."""
    from urllib.parse import urlparse

    from gradio.networking import setup_tunnel

    try:
        url = setup_tunnel(host.strip("[]") or "127.0.0.1", port, secrets.token_urlsafe(32), None, None)
    except Exception as exc:  # noqa: BLE001 - any failure of the tunnel leaves the local server serving
        logger.error("No public link (--share): %s. The app still serves on this machine.", exc)
        return None
    return urlparse(url)._replace(scheme="https").geturl()


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


def _lifespan(sweeper, watchdog, others: list):
    """The server's lifespan: the retention sweeper's thread, the event loop's watchdog and `others`
    (functions giving async context managers: the MCP transport's; read when the server starts)."""

    @contextlib.asynccontextmanager
    async def lifespan(app):
        app.state.loop = asyncio.get_running_loop()  # for `Served.close`, from another thread
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


def _model_set(engine, settings: AppSettings):
    """The models served by name (the base and `settings.models`, checked now, loaded on first use);
    None without a model. OptionError for a folder that is not a model folder."""
    if engine is None:
        return None
    from ..modelset import ModelSet

    return ModelSet(engine, settings.models)


def cache_schedule(keep_hours: float) -> tuple[int, int]:
    """Gradio's `delete_cache` (every s, older than s): files go after `keep_hours`, checked 4 times as often."""
    age = max(60, int(keep_hours * 3600))
    return min(3600, max(60, age // 4)), age


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
