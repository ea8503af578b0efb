"""What the page's tabs share: the registry of translatable components, the inputs and outputs
several tabs have (audio upload, granularity radio, download list, segment player), the guard
around each event (`guarded`), and how a callback becomes an event function (`bind`, `owned`: its
output folders are the logged-in user's). The boundary between Gradio and the callbacks (a tab's
form, its view, the skeleton of the tabs that keep a result) is boundary.py.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import gradio as gr

from ...constants import GRANULARITIES, LABELS
from ...errors import EmotionAppError
from ...outputs import owned_by
from ...service import segment_clip
from ..i18n import error_message, t
from . import render

logger = logging.getLogger(__name__)

FILE_TYPES = ["audio", "video", ".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus", ".webm", ".aiff", ".mp4", ".mkv", ".mov"]
GRANULARITY_CHOICES = [(g, g) for g in GRANULARITIES]  # (text key, value)


QUIET = {"api_visibility": "private", "show_progress": "hidden"}  # the page's own events: no API, no spinner


def translate(keys: dict, lang: str) -> dict:
    """{property: text key, or [(text key, value)] for choices} -> the words in `lang`."""
    return {k: t(v, lang) if isinstance(v, str) else [(t(key, lang), val) for key, val in v] for k, v in keys.items()}


class Texts:
    """The page's translatable components, one table for the whole page.

    Each is created through the registry with the text keys of its words, so the language switch
    relabels exactly what was registered:

        start = texts(gr.Button, value_key="start", variant="primary")
        mode = texts(gr.Radio, label_key="segmentation", choice_keys=[("seg_vad", "vad")], value="vad")

    `label_key` and `value_key` name one text each; `choice_keys` is [(text key, value)]. Works for
    layout blocks too (`with texts(gr.Tab, label_key="tab_long"):`).

    `remount=True` marks a component that shows Gradio's own texts (upload area, recorder): Gradio
    translates those when a component mounts, so the language switch hides and shows it again
    (`updates(lang, hide=True)`, then `shown()`); its value is kept.
    """

    def __init__(self, lang: str = "en"):
        self.lang = lang
        self.table: list[tuple[gr.blocks.Block, dict]] = []
        self.remounted: list[gr.blocks.Block] = []

    def __call__(self, make: Callable, *args, label_key=None, value_key=None, choice_keys=None, remount=False, **props):
        keys = {"label": label_key, "value": value_key, "choices": list(choice_keys) if choice_keys else None}
        keys = {k: v for k, v in keys.items() if v is not None}
        component = make(*args, **translate(keys, self.lang), **props)
        self.table.append((component, keys))
        if remount:
            self.remounted.append(component)
        return component

    def __len__(self) -> int:
        return len(self.table)

    @property
    def components(self) -> list:
        return [component for component, _ in self.table]

    def updates(self, lang: str, hide: bool = False) -> list[dict]:
        """One gr.update per registered component, in registration order, with its words in `lang`
        (and, with `hide`, the remounted ones hidden)."""
        hidden = {id(c) for c in self.remounted} if hide else set()
        return [gr.update(**translate(keys, lang), **({"visible": False} if id(c) in hidden else {})) for c, keys in self.table]

    def shown(self) -> list[dict]:
        """The remounted components shown again (outputs: `remounted`)."""
        return [gr.update(visible=True) for _ in self.remounted]


def bind(fn: Callable, *args, **keywords) -> Callable:
    """`fn` with `args` and `keywords` bound, for an event: named after `fn` (Gradio names the
    endpoint after it), with no docstring (Gradio would publish partial's own as the API
    description; `fn`'s speaks of the bound arguments), its output folders the logged-in user's
    (`owned`). Gradio sees the signature without the bound arguments, the `keywords` too (the
    server's objects, such as its memory budget: not inputs)."""
    return owned(*partial_event(fn, *args, **keywords), fn.__name__)


def partial_event(fn: Callable, *args, **keywords) -> tuple[partial, list[inspect.Parameter]]:
    """`fn` with `args` and `keywords` bound, and the parameters Gradio sees: those left, less the
    `keywords` (the server's objects: not inputs)."""
    bound = partial(fn, *args, **keywords)
    return bound, [p for p in inspect.signature(bound).parameters.values() if p.name not in keywords]


def owned(call: Callable, params: list[inspect.Parameter], name: str) -> Callable:
    """`call` as an event function with the signature `params` (what Gradio reads: inputs,
    progress) plus a `request` that Gradio fills (gr.Request): the output folders written during
    the call are the page's logged-in user's (outputs.owned_by; none without a login)."""
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    at = next((i for i, p in enumerate(params) if p.kind not in positional), len(params))
    request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=gr.Request)
    with_request = at == len(params) or params[at].kind is not inspect.Parameter.VAR_POSITIONAL
    if with_request:
        params = [*params[:at], request, *params[at:]]

    def event(*args, **kwargs):
        asked = None
        if with_request and len(args) > at:
            asked, args = args[at], args[:at] + args[at + 1 :]
        elif with_request and args and isinstance(args[-1], gr.Request):  # fewer inputs than parameters
            asked, args = args[-1], args[:-1]
        elif with_request:
            asked = kwargs.pop("request", None)
        user = getattr(asked, "username", None)
        with owned_by(user):
            return call(*args, **kwargs)

    event.__name__ = event.__qualname__ = name
    event.__doc__ = None
    event.__signature__ = inspect.Signature(params)
    event.__annotations__ = {"request": gr.Request} if with_request else {}  # how Gradio finds it
    return event


def audio_upload(texts: Texts, label_key: str, elem_id: str, *, multiple: bool = False, zips: bool = False, **props):
    """The file input of a tab: audio and video (and zip archives with `zips`), as server paths."""
    return texts(
        gr.File,
        label_key=label_key,
        file_types=[*FILE_TYPES, ".zip"] if zips else FILE_TYPES,
        file_count="multiple" if multiple else "single",
        type="filepath",
        elem_id=elem_id,
        **props,
    )


def api_upload() -> gr.File:
    """The file input of an API endpoint (`predict`, `recording`): hidden, and with no `file_types`.
    Gradio checks `file_types` against the uploaded file's name, and the npm client (@gradio/client)
    uploads a Blob or a Node Buffer as "blob", with no extension: it was refused though the decoder
    reads it. What the file is, the readers tell from its content (a file that is not audio gets the
    decoder's `not_audio` error, an unreadable turns file `bad_turns`); the page's pickers keep their
    lists for the browser's file dialog."""
    return gr.File(type="filepath", visible=False)  # no label: a hidden component shows nothing to translate


def granularity_radio(texts: Texts, **props) -> gr.Radio:
    """utterance (one result) or frame (50 a second)."""
    return texts(gr.Radio, label_key="granularity", choice_keys=GRANULARITY_CHOICES, value="utterance", **props)


def label_set_inputs(texts: Texts, prefix: str) -> list:
    """[labels, sentiment]: a label set (several of the 9 emotions; none: all) and the sentiment
    switch, as the `labels` and `sentiment` fields of a request (labelset.py, sentiment.py), in a
    closed accordion (placed below the start button, which stays in view on a phone)."""
    choices = [(f"{label.emoji} {label.key} · {label.zh}", label.key) for label in LABELS]
    with texts(gr.Accordion, label_key="label_options", open=False, elem_id=f"{prefix}-label-options"):
        labels = texts(
            gr.Dropdown, choices=choices, value=[], multiselect=True, label_key="label_set", elem_id=f"{prefix}-labels"
        )
        sentiment = texts(gr.Checkbox, False, label_key="sentiment_box", elem_id=f"{prefix}-sentiment")
    return [labels, sentiment]


def model_dropdown(texts: Texts, models, elem_id: str) -> gr.Dropdown:
    """The served models to choose from (`serve --models`), each with its labels (emoji and Chinese
    name for one of the nine, the label as written otherwise); shown only when there are several.
    Its value is the model's name (the base model's first). Names served later (a fine-tune the
    page ran) pass Gradio's check of the choices; the model set answers an unknown name."""
    names = models.names if models is not None else ()
    return texts(
        gr.Dropdown, choices=model_choices(models), value=names[0] if names else None, label_key="model_choice",
        visible=len(names) > 1, allow_custom_value=True, elem_id=elem_id,
    )  # fmt: skip


def model_choices(models) -> list[tuple[str, str]]:
    """(shown, name) of each served model: its name and its labels, e.g. "mine: 😠 angry 生气 · calm"."""
    names = models.names if models is not None else ()
    return [(f"{n}: {' · '.join(render.label_text(k, 'en') for k in models.labels(n))}", n) for n in names]


def model_list(models) -> dict:
    """The model list's update for the models served now (a fine-tune the page ran included)."""
    return gr.update(choices=model_choices(models), visible=len(models.names) > 1)


def download_list(texts: Texts, elem_id: str) -> gr.File:
    """The files of an output folder, for download."""
    return texts(gr.File, label_key="downloads", file_count="multiple", interactive=False, elem_id=elem_id)


PRIVATE = {"api_visibility": "private"}  # the page's own events: not in the API


def busy() -> dict:
    """A start button while its action runs: disabled, so it cannot be pressed twice."""
    return gr.update(interactive=False)


def ready() -> dict:
    return gr.update(interactive=True)


def show_error(message: str | None) -> None:
    """The last step of an action whose error is already shown where its result goes: the same
    message as a toast (gr.Error), so it is also announced."""
    if message:
        raise gr.Error(message)


def play_segment(kept, lang: str, evt: gr.SelectData):
    """The clicked segment's span of the processed audio, playing."""
    if kept is None or not kept.report.segments:
        return gr.skip()
    segment = kept.report.segments[evt.index[0]]
    clip = segment_clip(kept, segment.start, segment.end, segment.channel)
    if clip is None:
        raise gr.Error(t("audio_gone", lang))  # deleted after --keep-hours
    return gr.update(value=clip, visible=True)


@contextmanager
def guarded(engine, load_error: str | None, lang: str, what: str) -> Iterator[None]:
    """The guard around a page event's work. A missing model, bad input or an unexpected failure
    becomes a gr.Error in the page's language (the page stays usable; the traceback goes to the log)."""
    if engine is None:
        raise gr.Error(t("model_error", lang, error=load_error))
    try:
        yield
    except gr.Error:
        raise
    except EmotionAppError as exc:
        raise gr.Error(error_message(exc, lang)) from None
    except Exception:
        logger.exception("%s failed", what)
        raise gr.Error(t("internal_error", lang)) from None
