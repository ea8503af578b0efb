"""Start the web app: settings, model loading with a clear failure, REST routes + Gradio page."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .errors import EmotionAppError

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


def load_engine(**options):
    """(engine, None), or (None, one sentence saying what failed and how to fix it)."""
    from .engine import Engine

    try:
        return Engine(**options), None
    except EmotionAppError as exc:
        logger.error("%s", exc)
        return None, str(exc)


def launch(engine, settings: AppSettings, load_error: str | None = None, lang: str = "en", block: bool = True):
    """Serve the page and the REST API. Not blocking: returns the running Blocks (`.local_url`, `.close()`)."""
    from gradio.routes import App

    from .render import CSS
    from .rest import add_rest_routes
    from .webui import build_demo

    demo = build_demo(engine, settings.outputs_dir, load_error, lang)
    demo.queue(default_concurrency_limit=settings.concurrency)
    # Our routes go on the app before Gradio adds its own, so launch() keeps all its features
    # (auth, share links, queue, upload limit) with /api/* served beside the page. Gradio's
    # `_app` parameter is what allows this; gradio is pinned to the version this was tested with.
    app = App()
    add_rest_routes(app, engine, settings, load_error)
    Path(settings.outputs_dir).mkdir(parents=True, exist_ok=True)
    demo.launch(
        _app=app,
        server_name=settings.host,
        server_port=settings.port,
        auth=settings.auth,
        share=settings.share,
        max_file_size=f"{settings.max_upload_mb:g}mb",
        allowed_paths=[str(Path(settings.outputs_dir).resolve())],
        prevent_thread_lock=not block,
        show_error=True,
        css=CSS,
        quiet=not block,
    )
    return demo
