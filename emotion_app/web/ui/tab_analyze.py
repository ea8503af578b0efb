"""The page's Analyze tab: one clip -> emotion card, 9 scores, frame timeline, segments, log, downloads.

`run_analysis` is the Gradio API's `predict` (api_name="predict"): (path, granularity,
extract_embedding, and optionally method, window, alpha, zero_phase, min_duration_s, labels (a list
of emotions: the label set), sentiment) -> result JSON.
It hangs on a hidden trigger; the page's Start button runs three steps instead: `begin` (the
button disabled, the old result cleared), `start_analysis` (progress on the card; an error shown
where the result goes) and `show_error` (the same error as a toast). The page keeps the last
`Analysis` in a gr.State, with its frame probabilities, so that a change of smoothing re-reads
the frames (`resmooth_views`) without running the model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import gradio as gr

from ...analysis.options import AnalysisOptions
from ...analysis.smoothing import METHODS, WINDOW_RANGE, SmoothingOptions
from ...model.head import Head
from ...request import RequestOptions
from ...service import Analysis, analyze, open_input, resmooth
from ..i18n import t
from . import render
from .common import (
    Texts,
    audio_upload,
    bind,
    busy,
    download_list,
    granularity_radio,
    guarded,
    label_set_fields,
    label_set_inputs,
    play_segment,
    ready,
    show_error,
)  # fmt: skip
from .figures import timeline_html
from .heads_view import heads_html
from .progress import Pace, Reporter, declared_duration

DEFAULT = SmoothingOptions()
VIEW_CHOICES = [("view_smoothed", "smoothed"), ("view_raw", "raw")]
LONG_FILE_S = 180.0  # files longer than this get a pointer to the Long recording tab
SMOOTHING_NAMES = ("method", "window", "alpha", "zero_phase", "min_duration_s")


def example_path() -> str:
    return str(resources.files("emotion_app").joinpath("assets/example_speech.flac"))


def run_analysis(
    engine,
    outputs_dir: Path,
    load_error: str | None,
    path,
    granularity,
    extract_embedding,
    method=DEFAULT.method,
    window=DEFAULT.window,
    alpha=DEFAULT.alpha,
    zero_phase=DEFAULT.zero_phase,
    min_duration_s=DEFAULT.min_duration_s,
    labels=None,
    sentiment=False,
    lang="en",
    session_heads=None,
    progress=gr.Progress(),
) -> dict:
    """Analyse the uploaded file; returns result.json's content with download URLs (see Analysis.response).
    The parameters after `load_error` are the API's; `lang` is the page's (a gr.State, not in the API),
    and so is `session_heads`: the folders of the heads trained in this session (Your labels tab),
    applied beside the engine's own. The smoothing fields are read in frame mode only (the form always
    sends them)."""
    smoothing = (method, window, alpha, zero_phase, min_duration_s)
    analysis = analyze_clip(
        engine, outputs_dir, load_error, path, granularity, extract_embedding, smoothing, lang, session_heads, progress,
        extra=label_set_fields(labels, sentiment),
    )  # fmt: skip
    return analysis.response()


def analyze_clip(
    engine, outputs_dir, load_error, path, granularity, extract_embedding, smoothing, lang, session_heads, progress, pace=None,
    extra=None,
) -> Analysis:  # fmt: skip
    """One clip through the service with progress (the time left from `pace` while the model runs);
    `extra`: more request fields (the label set and sentiment)."""
    lang = lang or "en"
    with guarded(engine, load_error, lang, "prediction"), Reporter(progress, lang) as report:
        report(0.01, "decode")  # at once
        fields = {"granularity": granularity or "utterance", "extract_embedding": bool(extract_embedding)}
        if fields["granularity"] == "frame":
            fields |= dict(zip(SMOOTHING_NAMES, smoothing))
        request = RequestOptions.from_fields(fields | (extra or {}))
        if session_heads:
            request = replace(request, heads=(*engine.heads, *(Head.load(p) for p in session_heads)))
        source = open_input(engine, path, Path(path).name if path else None)  # opened once: its length, then its audio
        report.model_s = pace.estimate(source.declared_s) if pace else None
        analysis = analyze(engine, source, request, outputs_dir=outputs_dir, lang=lang, progress=report)
    if pace:
        pace.learn(analysis.report.duration_s, analysis.report.timings.get("total"))
    return analysis


def start_analysis(
    engine, outputs_dir, load_error, pace, path, granularity, extract_embedding, method, window, alpha, zero_phase,
    min_duration_s, labels, sentiment, lang, session_heads, view, progress=gr.Progress(),
) -> list:  # fmt: skip
    """The page's Start: [kept analysis, *views, start button, error]. An error is drawn where the
    result goes (no earlier result stays beside it) and returned for the toast."""
    smoothing = (method, window, alpha, zero_phase, min_duration_s)
    try:
        kept = analyze_clip(
            engine, outputs_dir, load_error, path, granularity, extract_embedding, smoothing, lang, session_heads, progress, pace,
            label_set_fields(labels, sentiment),
        )  # fmt: skip
    except gr.Error as exc:
        return [None, *failed(exc.message, lang), ready(), exc.message]
    return [kept, *draw(kept, lang, view, granularity), ready(), ""]


def begin(lang: str) -> list:
    """[start button, kept, *views] the moment Start is pressed: disabled, cleared, "working"."""
    return [busy(), None, render.working_card(lang), *cleared()[1:]]


def cleared(note: str = "") -> list:
    """The views with no result: `note` on the card."""
    hidden = gr.update(value=None, visible=False)
    return [note, "", "", gr.update(visible=False), "", hidden, hidden, "", "", None]


def failed(message: str, lang: str) -> list:
    return [render.error_card(message, lang), *cleared()[1:]]


def draw(kept: Analysis | None, lang: str, view: str = "smoothed", granularity: str = "utterance") -> list:
    """The views of a kept analysis, in the order of AnalyzeTab.views: card, scores, band, view
    toggle, timeline, segments, segment player, summary, log, downloads."""
    if kept is None:
        return cleared(render.note_card(t("no_result", lang)))
    report = kept.report
    frame = report.granularity == "frame"
    band = render.dominant_band(report, lang) if frame else ""
    if not frame and granularity != "frame":
        band = f'<div class="ea-note">{t("frame_only", lang)}</div>'
    return [
        render.emotion_card(report, lang),
        render.score_bars(report, lang) + heads_html(report, lang),  # with each custom head's card
        band,
        gr.update(visible=frame),
        timeline_html(report, lang, view),
        gr.update(value=render.segments_table(report, lang), visible=frame),
        gr.update(value=None, visible=False),
        render.summary_html(report, lang),
        render.processing_log(report, lang),
        [str(p) for p in kept.files.values()],
    ]


def new_file(path, lang: str) -> list:
    """A new upload: [kept, *views, hint]: the old result goes, and a long file gets a pointer to
    the Long recording tab."""
    duration = declared_duration(path)
    hint = ""
    if duration and duration > LONG_FILE_S:
        hint = f'<div class="ea-hint">{t("long_hint", lang, duration=render.clock(duration, 0))}</div>'
    return [None, *cleared(render.note_card(t("no_result", lang))), gr.update(value=hint, visible=bool(hint))]


def resmooth_views(
    engine, outputs_dir, load_error, kept, method, window, alpha, zero_phase, min_duration_s, lang, view, granularity
):
    """A change of smoothing: the kept frames read again (no model call) into a new output folder,
    and redrawn. [kept, *views]; nothing changes without a frame result."""
    if kept is None or kept.frames is None:
        return [gr.skip()] * (1 + len(cleared()))
    with guarded(engine, load_error, lang, "smoothing"):
        fields = dict(zip(SMOOTHING_NAMES, (method, window, alpha, zero_phase, min_duration_s)))
        options = AnalysisOptions.from_fields(fields)
        kept = resmooth(kept, options, outputs_dir=outputs_dir, lang=lang)
    return [kept, *draw(kept, lang, view, granularity)]


def method_controls(method: str) -> list:
    """[window, alpha, zero_phase] shown where `method` reads them."""
    return [gr.update(visible=method != "none"), gr.update(visible=method == "ewma"), gr.update(visible=method == "ewma")]


def granularity_changed(granularity: str, kept, lang: str) -> list:
    """[smoothing options, band]: smoothing applies to frames only; the band's note follows the choice."""
    frame_result = kept is not None and kept.report.granularity == "frame"
    band = gr.skip() if frame_result or kept is None else draw(kept, lang, granularity=granularity)[2]
    return [gr.update(visible=granularity == "frame"), band]


def redraw_timeline(kept, lang: str, view: str):
    """The timeline with the smoothed or the raw frame scores."""
    return timeline_html(kept.report, lang, view) if kept is not None else ""


@dataclass
class AnalyzeTab:
    """What the page shell needs to redraw the tab in another language."""

    result_json: gr.JSON  # the API's output
    kept: gr.State  # the page's last Analysis
    view: gr.Radio
    granularity: gr.Radio
    views: list  # the outputs of draw(), in its order
    heads_state: gr.State | None = None  # folders of the heads trained in this session (tab_labels.py)

    @property
    def inputs(self) -> list:
        """The inputs of `redraw` after the language."""
        return [self.kept, self.view, self.granularity]

    @staticmethod
    def redraw(lang: str, kept, view: str, granularity: str) -> list:
        return draw(kept, lang, view, granularity)


def build(texts: Texts, engine, outputs_dir: Path, load_error: str | None, lang_state: gr.State) -> AnalyzeTab:
    """Lay out the tab in the current gr.Tabs and wire its events. Everything, states included, is
    made inside the gr.Tab: a component made directly in gr.Tabs shifts Gradio's tab indices (the
    tab bar then shows one tab twice)."""
    with texts(gr.Tab, label_key="tab_analyze", id="analyze"):
        c = _layout(texts)
        kept, heads_state = gr.State(None), gr.State([])
        tab = AnalyzeTab(c["result_json"], kept, c["view"], c["granularity"], c["views"], heads_state)
        _wire(c, tab, engine, outputs_dir, load_error, lang_state)
    return tab


def _layout(texts: Texts) -> dict:
    """The tab's components by name; "views" lists the outputs of draw()."""
    lang, c = texts.lang, {}
    with gr.Row(elem_classes="ea-stack"):
        with gr.Column(scale=1, min_width=300):
            c["file_in"] = audio_upload(texts, "upload", "audio-file", remount=True)
            c["hint"] = gr.HTML(elem_id="long-hint", visible=False)
            c["mic"] = texts(
                gr.Audio, label_key="record", sources=["microphone"], type="filepath", format="wav", remount=True, elem_id="mic"
            )
            c["example"] = texts(gr.Button, value_key="example", size="sm")
            c["granularity"] = granularity_radio(texts, elem_id="granularity")
            c["embedding"] = texts(gr.Checkbox, False, label_key="embedding")
            c["start"] = texts(gr.Button, value_key="start", variant="primary", elem_id="start")
            c["label_set"] = label_set_inputs(texts, "analyze")
            c["smooth_box"], c["smoothing"] = smoothing_inputs(texts)
        with gr.Column(scale=1, min_width=300):
            card = gr.HTML(render.note_card(t("no_result", lang)), elem_id="emotion-card")
            scores = gr.HTML(elem_id="scores")
    band = gr.HTML(elem_id="dominant-band")
    c["view"] = texts(gr.Radio, label_key="view", choice_keys=VIEW_CHOICES, value="smoothed", visible=False, elem_id="view")
    timeline = gr.HTML(elem_id="timeline")
    with gr.Row(elem_classes="ea-stack"):
        with gr.Column(scale=1, min_width=300):
            segments = texts(gr.Dataframe, label_key="segments", visible=False, interactive=False, elem_id="segments")
            player = texts(
                gr.Audio, label_key="segment_audio", type="numpy", interactive=False, autoplay=True, visible=False,
                elem_id="segment-audio",
            )  # fmt: skip
        summary = gr.HTML(elem_id="summary", min_width=300)
    with gr.Row(elem_classes="ea-stack"):
        log = texts(gr.Textbox, label_key="log", lines=9, interactive=False, elem_id="log", min_width=300)
        downloads = download_list(texts, "downloads")
    c["result_json"] = gr.JSON(visible=False)
    c["api"] = gr.Button(visible=False)  # the API's `predict` trigger
    c["views"] = [card, scores, band, c["view"], timeline, segments, player, summary, log, downloads]
    return c


def _wire(c: dict, tab: AnalyzeTab, engine, outputs_dir: Path, load_error: str | None, lang_state: gr.State) -> None:
    private = {"api_visibility": "private"}
    kept, views, start = tab.kept, tab.views, c["start"]
    form = [c["file_in"], c["granularity"], c["embedding"], *c["smoothing"], *c["label_set"], lang_state, tab.heads_state]
    c["api"].click(
        bind(run_analysis, engine, outputs_dir, load_error), form, tab.result_json, api_name="predict",
        concurrency_limit=2, concurrency_id="analyze",
    )  # fmt: skip
    error = gr.State("")
    pace = Pace(engine.device if engine is not None else "cpu")
    c["start"].click(begin, lang_state, [start, kept, *views], queue=False, **private).then(
        bind(start_analysis, engine, outputs_dir, load_error, pace), [*form, tab.view], [kept, *views, start, error],
        show_progress_on=views[0], concurrency_limit=2, concurrency_id="analyze", **private,
    ).then(show_error, error, None, **private)  # fmt: skip
    c["file_in"].change(new_file, [c["file_in"], lang_state], [kept, *views, c["hint"]], **private)
    c["mic"].stop_recording(lambda p: p, c["mic"], c["file_in"], **private)
    c["example"].click(example_path, None, c["file_in"], **private)
    c["granularity"].change(granularity_changed, [c["granularity"], kept, lang_state], [c["smooth_box"], views[2]], **private)
    tab.view.change(redraw_timeline, [kept, lang_state, tab.view], views[4], **private)
    views[5].select(play_segment, [kept, lang_state], views[6], **private)
    method, window, alpha, zero_phase, min_duration = c["smoothing"]
    method.change(method_controls, method, [window, alpha, zero_phase], **private)
    again = bind(resmooth_views, engine, outputs_dir, load_error)
    again_in = [kept, *c["smoothing"], lang_state, tab.view, c["granularity"]]
    for event in (method.input, zero_phase.input, window.release, alpha.release, min_duration.release):
        event(again, again_in, [kept, *views], show_progress="minimal", trigger_mode="always_last", **private)


def smoothing_inputs(texts: Texts) -> tuple[gr.Accordion, list]:
    """The frame-smoothing options in an accordion shown in frame mode: (accordion, [method, window,
    alpha, zero_phase, min_duration]). alpha and zero-phase show for EWMA only."""
    with texts(gr.Accordion, label_key="smoothing", open=True, visible=False, elem_id="smoothing") as box:
        method = texts(
            gr.Dropdown, label_key="method", choice_keys=[(f"m_{m}", m) for m in METHODS], value=DEFAULT.method, elem_id="method"
        )
        window = texts(gr.Slider, *WINDOW_RANGE, value=DEFAULT.window, step=2, label_key="window", elem_id="window")
        ewma = DEFAULT.method == "ewma"
        alpha = texts(gr.Slider, 0.05, 1.0, value=DEFAULT.alpha, step=0.05, label_key="alpha", visible=ewma, elem_id="alpha")
        zero_phase = texts(gr.Checkbox, DEFAULT.zero_phase, label_key="zero_phase", visible=ewma, elem_id="zero-phase")
        min_duration = texts(
            gr.Slider, 0.0, 2.0, value=DEFAULT.min_duration_s, step=0.02, label_key="min_duration", elem_id="min-duration"
        )
    return box, [method, window, alpha, zero_phase, min_duration]
