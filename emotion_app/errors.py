"""The error types the package raises at its boundaries."""

from __future__ import annotations


class EmotionAppError(Exception):
    """Base class: a message for the user, and a stable `code` for translation and APIs."""

    code = "error"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ErrorText(str):
    """An error's message as a plain string that keeps the error's `code`: a batch row's error,
    which the page translates by its code while files and logs keep the message."""

    code = "error"

    def __new__(cls, message: str, code: str | None = None):
        text = super().__new__(cls, message)
        if code is not None:
            text.code = code
        return text


class AudioError(EmotionAppError):
    """The input could not be turned into 16 kHz mono audio (the message says why)."""

    code = "bad_audio"


class ModelLoadError(EmotionAppError):
    """The model folder, checkpoint or hub download is unusable (the message says how to fix it)."""

    code = "model_load"
