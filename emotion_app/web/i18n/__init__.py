"""The page's words: one table of strings per language, the same keys in each (en.EN, zh.ZH; add
a string to both), looked up by `t(key, lang)`; and errors and warnings in the user's language, from
the sentences of the code registry (errors.ERRORS, errors.WARNINGS).

Gradio's own texts (upload area, recorder, toasts, footer) come from Gradio's locale files; the
page switches Gradio's locale with its own language (page.py).
"""

from __future__ import annotations

from ...errors import ERRORS, WARNINGS, EmotionAppError, error_code
from .en import EN
from .zh import ZH

GRADIO_LOCALES = {"en": "en", "zh": "zh-CN"}  # the page language -> Gradio's frontend locale
# Gradio's own texts that its locale files leave untranslated (its zh-CN file lacks the status
# tracker's "common.complete", so the key itself was shown): added to its locales at launch.
GRADIO_MISSING = {"zh-CN": {"common": {"complete": "完成"}}, "zh-TW": {"common": {"complete": "完成"}}}
TABLES = {"en": EN, "zh": ZH}


def t(key: str, lang: str = "en", **kw) -> str:
    """The words of `key` in `lang` (English where the language's table lacks it), formatted with `kw`."""
    text = TABLES.get(lang, EN).get(key) or EN[key]
    return text.format(**kw) if kw else text


def error_message(exc: EmotionAppError, lang: str = "en") -> str:
    """The error for the page: English as raised, or a Chinese sentence with the English detail."""
    if lang == "zh" and exc.code in ERRORS:
        return f"{ERRORS[exc.code].zh}（{exc.message}）"
    return exc.message


def short_error(message: str, code: str | None, lang: str = "en") -> str:
    """An error for a table cell: the message in English, in Chinese the sentence of its code alone
    (the English detail stays in the downloads)."""
    if lang != "zh":
        return message
    return error_code(code).zh  # an unknown code: the generic "error"


def warning_message(code: str, message: str, lang: str = "en") -> str:
    """A warning for the page: its message in English, in Chinese the sentence of its code."""
    return WARNINGS[code].zh if lang == "zh" and code in WARNINGS else message
