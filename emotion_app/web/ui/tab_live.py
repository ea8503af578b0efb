"""The page's Live tab: the microphone streamed to the server, a meter updated every hop, a strip
chart of the last 60 s, the segments so far, and on Stop the whole take analysed as an upload.

Gradio sends the microphone in chunks (0.1 s in Gradio 6.31, at the browser's rate, about 48 kHz);
`live_chunk` feeds each chunk to the browser's live session (emotion_app.live), whose windows the
hub's scheduler scores together with every other session's, and redraws the views when hops were
scored since the last call. It never waits for the model: Gradio keeps only the latest chunk that
arrives while a call runs (`event.data = body` in gradio/routes.py), so a slow call loses audio.
Scores that are not back yet show at the next chunk, a tenth of a second later. Under load the
hub cuts fewer windows (hops stretch for every session, live/capacity.py) and the status line says
that the meter is slowed, so the meter stays current rather than falling behind. `live_stop`
analyses the take; the state's delete_callback discards a take whose tab was closed. The WebSocket
(stream.py) has no such loss: every byte sent is in the take.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

import gradio as gr
import numpy as np

from ...audio.samples import downmix, to_float
from ...errors import EmotionAppError
from ...live import LiveHub, LiveOptions, LiveSession, StreamFormat
from ...live.session import CHART_SPAN_S
from ..i18n import t
from . import live_view
from .boundary import LabelledForm, View, request_options
from .common import GRANULARITY_CHOICES, QUIET, Texts, bind, download_list, guarded, label_set_inputs

STREAM_EVERY_S = 0.5  # s of microphone audio per chunk asked of the browser (Gradio 6.31's recorder sends 0.1 s)
PAGE_IDLE_S = 120.0  # a page take without audio for this long may be discarded for a new one
LATE_CHUNK_S = 1.0  # chunks arriving this soon after Stop belong to the stopped take
SMOOTHING_CHOICES = [("live_ewma", "ewma"), ("live_vote", "vote"), ("live_none", "none")]


class LiveTake:
    """One browser's handle on its live take (the value of a gr.State): the session and the
    windows waiting for the model, in order."""

    def __init__(self):
        self.session: LiveSession | None = None
        self.pending: deque = deque()  # (Window, Future)
        self.stopped_at = 0.0
        self.shown: tuple | None = None  # (session id, hops, limit reached) of the views last drawn
        self.analysis = None  # the last finished take (service.Analysis): its files are the downloads
        self.form: LiveForm | None = None  # the form when the take started: its label set and sentiment hold for the take
        self.lock = threading.Lock()

    def __deepcopy__(self, memo):  # Gradio copies a State's value for each browser
        return LiveTake()


def discard_take(hub: LiveHub | None, take: LiveTake) -> None:
    """The state's delete_callback: the tab was closed or reloaded mid-take. Gradio calls it on its
    event loop, so the discard (locks, deleting the take) is handed to the hub's threads."""
    session = take.session if isinstance(take, LiveTake) else None
    if hub is not None and session is not None:
        hub.discard_soon(session)


def mono_float(data: np.ndarray) -> np.ndarray:
    """Gradio's (n,) or (n, channels) integer or float samples -> (n,) float32 in [-1, 1]."""
    return downmix(to_float(np.asarray(data)), channel_axis=1)


def views(hub: LiveHub, session: LiveSession | None, lang: str) -> tuple:
    """(meter, chart, segments, status) of `session` (None: the empty views)."""
    if session is None:
        return live_view.meter_html(None, lang), live_view.chart_html([], (), CHART_SPAN_S, lang), "", ""
    latest = session.latest
    return (
        live_view.meter_html(latest, lang, session.sentiment),
        live_view.chart_html(session.history, session.labels, CHART_SPAN_S, lang),
        live_view.segments_html(session.runs(), lang),
        live_view.status_html(session.seconds, hub.max_seconds, session.hops, latest, session.limit_reached, lang),
    )


@dataclass(frozen=True)
class LiveForm(LabelledForm):
    """The tab's form: the meter's window, hop and smoothing, the final analysis's granularity, and
    the label set and sentiment (read when a take starts; they apply to its hops and its final
    analysis)."""

    window: float = 3.0
    hop: float = 0.5
    smoothing: str = "ewma"
    granularity: str = "frame"

    def fields(self) -> dict:
        return {"granularity": self.granularity or "utterance"}


def live_chunk(hub: LiveHub | None, load_error: str | None, chunk, take: LiveTake, form: LiveForm):
    """One microphone chunk `(rate, samples)`: feed it, queue the windows it completes, record the
    hops scored since the last call and return the views (meter, chart, segments, status), or
    gr.skip() for each when no hop was scored since."""
    lang = form.lang
    with guarded(hub, load_error, lang, "live meter"):
        with take.lock:
            session = take.session
            if chunk is None or (session is None and time.monotonic() - take.stopped_at < LATE_CHUNK_S):
                return views(hub, session, lang)
            rate, data = chunk
            x = mono_float(data)
            if session is None or session.ended:
                options = LiveOptions.from_fields({"window_s": form.window, "hop_s": form.hop, "smoothing": form.smoothing})
                fmt = StreamFormat(int(rate), "pcm_s16le", 1)
                take.form = form
                request = request_options(form)
                session = take.session = hub.open(options, fmt, idle_expiry_s=PAGE_IDLE_S, request=request)
                take.pending.clear()
            take.pending.extend(hub.feed(session, x))
            _collect(take.pending, session)
            # Gradio 6.31's recorder sends 0.1 s chunks whatever `stream_every` says: most calls
            # complete no hop, and redrawing nothing new would only load the browser.
            shown, take.shown = take.shown, (session.id, session.hops, session.limit_reached)
            return (gr.skip(),) * 4 if shown == take.shown else views(hub, session, lang)


def _collect(pending: deque, session: LiveSession) -> None:
    """Record the hops scored so far, in order (a window still in the model stops the walk)."""
    while pending and pending[0][1].done():
        window, future = pending.popleft()
        if not future.cancelled():
            session.record(window, future.result())


def live_stop(hub: LiveHub | None, load_error: str | None, take: LiveTake, form: LiveForm) -> dict:
    """Stop: the whole take analysed like an upload, in the form's granularity and the label set the
    take started with; returns result.json's content with download URLs."""
    lang = form.lang
    with guarded(hub, load_error, lang, "live take"):
        with take.lock:
            session, take.session = take.session, None
            take.stopped_at = time.monotonic()
            for _, future in take.pending:
                future.cancel()
            take.pending.clear()
        if session is None:
            raise EmotionAppError(t("live_no_take", lang), "no_audio")
        request = request_options(replace(take.form, granularity=form.granularity))
        try:
            take.analysis = hub.finish(session, request, lang=lang)
        finally:
            take.stopped_at = time.monotonic()  # chunks in flight may arrive while the take is analysed, and just after
        return take.analysis.response()


def draw_take(take, result: dict | None, lang: str) -> tuple:
    """(log, downloads) of the analysed take. The downloads are the files of the take this browser
    finished (kept server-side in its LiveTake), never paths named by the client-held JSON."""
    analysis = getattr(take, "analysis", None)
    if not result or analysis is None:
        return "", None
    return live_view.take_log(analysis.report, lang), [str(path) for path in analysis.files.values()]


def clear_take() -> tuple:
    """A new recording starts: the last take's log and downloads go."""
    return "", None


@dataclass
class LiveTab:
    """What the page shell needs: to redraw the tab in another language, and what to enable once
    the page's start-up events are done (`gated`, page._gate)."""

    hub: LiveHub | None
    outputs_dir: Path
    take: gr.State
    result_json: gr.JSON
    views: list  # meter, chart, segments, status, log, downloads
    gated: list = field(default_factory=list)  # enabled once the page's start-up events are done (page.py): the recorder

    @property
    def inputs(self) -> list:
        """The inputs of `redraw` after the language."""
        return [self.take, self.result_json]

    def redraw(self, lang: str, take, result) -> list:
        session = take.session if isinstance(take, LiveTake) else None
        return [*views(self.hub, session, lang), *draw_take(take, result, lang)]


def build(texts: Texts, engine, outputs_dir: Path, load_error: str | None, lang_state: gr.State, live: LiveHub | None = None):
    """Lay out the tab in the current gr.Tabs and wire its events; returns its LiveTab. `live`: the
    server's hub (one with the default limits is made when None and the model is loaded)."""
    hub = live if live is not None or engine is None else LiveHub(engine, outputs_dir)
    with texts(gr.Tab, label_key="tab_live", id="live"):
        c = _layout(texts)
        take = gr.State(LiveTake(), delete_callback=bind(discard_take, hub))
        result_json = gr.JSON(visible=False)
    views_out = c.outputs("meter", "chart", "segments", "status", "log", "downloads")
    tab = LiveTab(hub, outputs_dir, take, result_json, views_out, [c["mic"]])
    private = QUIET  # the meter is the progress
    c["take"], c["lang"] = take, lang_state
    mic, log_out = c["mic"], c.outputs("log", "downloads")
    mic.start_recording(clear_take, None, log_out, queue=False, **private)
    mic.stream(
        c.handler(live_chunk, hub, load_error, form=LiveForm, before=("mic", "take")),
        c.inputs(LiveForm, "mic", "take"),
        c.outputs("meter", "chart", "segments", "status"),
        stream_every=STREAM_EVERY_S,
        time_limit=int(hub.max_seconds) if hub else None,
        concurrency_limit=None,  # a take past --max-live-sessions is refused by the hub, with a message
        **private,
    )
    stop = c.handler(live_stop, hub, load_error, form=LiveForm, before=("take",), named=False)  # result.json's content
    mic.stop_recording(stop, c.inputs(LiveForm, "take"), result_json, **private).success(
        draw_take, [take, result_json, lang_state], log_out, **private
    )
    return tab


def _layout(texts: Texts) -> View:
    """The tab's components by name (LiveForm's fields among them)."""
    c = View()
    texts(gr.Markdown, value_key="live_hint")
    with gr.Row():
        with gr.Column(scale=1):
            # Not usable until the page's start-up events are done or failed (page._gate enables it):
            # a stream started while they were in flight never began under load (Gradio 6.31's
            # client sent no chunk: the meter stayed empty), 4 times in 4 with both cores busy.
            c["mic"] = texts(
                gr.Audio, label_key="live_mic", sources=["microphone"], streaming=True, type="numpy", elem_id="live-mic",
                remount=True, interactive=False,
            )  # fmt: skip
            with texts(gr.Accordion, label_key="live_options", open=False):
                c["window"] = texts(gr.Slider, 1.0, 10.0, value=3.0, step=0.5, label_key="live_window", elem_id="live-window")
                c["hop"] = texts(gr.Slider, 0.5, 5.0, value=0.5, step=0.5, label_key="live_hop", elem_id="live-hop")
                c["smoothing"] = texts(gr.Radio, label_key="live_smoothing", choice_keys=SMOOTHING_CHOICES, value="ewma")
                c["granularity"] = texts(gr.Radio, label_key="live_final", choice_keys=GRANULARITY_CHOICES, value="frame")
            c["labels"], c["sentiment"] = label_set_inputs(texts, "live")
            c["status"] = gr.HTML(elem_id="live-status")
        with gr.Column(scale=1):
            c["meter"] = gr.HTML(live_view.meter_html(None, texts.lang), elem_id="live-meter")
    c["chart"] = gr.HTML(elem_id="live-chart")
    c["segments"] = gr.HTML(elem_id="live-segments")
    with gr.Row():
        c["log"] = texts(gr.Textbox, label_key="log", lines=4, interactive=False, elem_id="live-log")
        c["downloads"] = download_list(texts, "live-downloads")
    return c
