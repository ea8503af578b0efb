"""What the page's tabs share: accepted file types and the guard around each event."""

from __future__ import annotations

import logging
from collections.abc import Callable

import gradio as gr

from .errors import EmotionAppError
from .i18n import error_message, t

logger = logging.getLogger(__name__)

FILE_TYPES = ["audio", "video", ".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus", ".webm", ".aiff", ".mp4", ".mkv", ".mov"]


def guarded(engine, load_error: str | None, lang: str, what: str, call: Callable):
    """Run `call()` for a page event. A missing model, bad input or an unexpected failure becomes a
    gr.Error in the page's language (the page stays usable; the traceback goes to the log)."""
    if engine is None:
        raise gr.Error(t("model_error", lang, error=load_error))
    try:
        return call()
    except EmotionAppError as exc:
        raise gr.Error(error_message(exc, lang)) from None
    except Exception:
        logger.exception("%s failed", what)
        raise gr.Error("Internal error; the server log has the details.") from None
