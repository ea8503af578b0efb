"""The page's Analyze tab: one clip -> emotion card, 9 scores, frame timeline, segments, log, downloads.

`run_analysis` is the Gradio API's `predict` (api_name="predict"): (path, granularity,
extract_embedding, and optionally method, window, alpha, zero_phase, min_duration_s, labels (a list
of emotions: the label set), sentiment, model (a served model's name, `serve --models`; default the
base model)) -> result JSON. The model list shows only when the server serves several models.
It hangs on a hidden trigger; the page's Start button runs KeptTab's three steps (common.py)
instead: `begin` (the button disabled, the old result cleared), `start_analysis` (progress on the
card; an error shown where the result goes) and `show_error` (the same error as a toast), on the
tab's form (`AnalyzeForm`). The page keeps the last
`Analysis` in a gr.State, with its frame probabilities, so that a change of smoothing re-reads
the frames (`resmooth_views`) without running the model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from importlib import resources
from pathlib import Path

import gradio as gr

from ...analysis.options import AnalysisOptions
from ...analysis.smoothing import METHODS, WINDOW_RANGE, SmoothingOptions
from ...modelset import served_engine
from ...service import Analysis, analyze, open_input, resmooth
from ..i18n import t
from . import render
from .boundary import KeptTab, LabelledForm, View, cleared, finish, request_options
from .common import (  # fmt: skip
    PRIVATE,
    Texts,
    api_upload,
    audio_upload,
    bind,
    download_list,
    granularity_radio,
    guarded,
    label_set_inputs,
    model_dropdown,
    play_segment,
)
from .figures import timeline_html
from .heads_view import heads_html
from .progress import Pace, Reporter, declared_duration

DEFAULT = SmoothingOptions()
VIEW_CHOICES = [("view_smoothed", "smoothed"), ("view_raw", "raw")]
LONG_FILE_S = 180.0  # files longer than this get a pointer to the Long recording tab
SMOOTHING_NAMES = ("method", "window", "alpha", "zero_phase", "min_duration_s")
VIEWS = ("card", "scores", "band", "view", "timeline", "segments", "player", "summary", "log", "downloads")  # what draw() draws
API_INPUTS = ("api_file", "granularity", "embedding", *SMOOTHING_NAMES, "labels", "sentiment", "lang", "session_heads", "model")


def example_path() -> str:
    return str(resources.files("emotion_app").joinpath("assets/example_speech.flac"))


@dataclass(frozen=True)
class AnalyzeForm(LabelledForm):
    """The tab's form: the clip, granularity, embedding, the frame smoothing (read in frame mode
    only: the form always sends it), the heads trained in this session (Your labels tab) and the
    timeline's view (smoothed or raw)."""

    file: str | None = None
    granularity: str = "utterance"
    embedding: bool = False
    method: str = DEFAULT.method
    window: int = DEFAULT.window
    alpha: float = DEFAULT.alpha
    zero_phase: bool = DEFAULT.zero_phase
    min_duration_s: float = DEFAULT.min_duration_s
    session_heads: list | None = None  # folders of heads, applied beside the engine's own
    view: str = "smoothed"
    model: str | None = None  # a served model's name (modelset.py); None: the base model

    def smoothing(self) -> dict:
        return {name: getattr(self, name) for name in SMOOTHING_NAMES}

    def fields(self) -> dict:
        fields = {"granularity": self.granularity or "utterance", "extract_embedding": bool(self.embedding)}
        return fields | self.smoothing() if fields["granularity"] == "frame" else fields


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
    model=None,
    progress=gr.Progress(),
    *,
    memory=None,
    models=None,
) -> dict:
    """Analyse the uploaded file; returns result.json's content with download URLs (see Analysis.response).
    The parameters after `load_error` are the API's (an AnalyzeForm's fields); `lang` is the page's
    (a gr.State, not in the API), and so is `session_heads`; `memory`: the server's memory budget;
    `models`: the served models."""
    form = AnalyzeForm(
        lang=lang, labels=labels, sentiment=sentiment, file=path, granularity=granularity, embedding=extract_embedding,
        method=method, window=window, alpha=alpha, zero_phase=zero_phase, min_duration_s=min_duration_s,
        session_heads=session_heads, model=model,
    )  # fmt: skip
    return analyze_clip(engine, outputs_dir, load_error, form, progress, memory=memory, models=models).response()


def analyze_clip(
    engine, outputs_dir, load_error, form: AnalyzeForm, progress=None, pace: Pace | None = None, memory=None, models=None
) -> Analysis:
    """One clip through the service with progress (the time left from `pace` while the model runs),
    on the model the form names (`models`: the served models, modelset.py), within the server's
    `memory` budget (memory.MemoryBudget; None: none)."""
    with guarded(engine, load_error, form.lang, "prediction"), Reporter(progress, form.lang) as report:
        report(0.01, "decode")  # at once
        chosen = served_engine(engine, models, form.model)  # loaded on its first request
        if chosen is not engine:  # the session's heads read the base model's features only
            engine, form = chosen, replace(form, session_heads=None)
        request = request_options(form, engine)
        path = form.file
        source = open_input(engine, path, Path(path).name if path else None)  # opened once: its length, then its audio
        report.model_s = pace.estimate(source.declared_s) if pace else None
        analysis = analyze(engine, source, request, outputs_dir=outputs_dir, lang=form.lang, progress=report, budget=memory)
    if pace:
        pace.learn(analysis.report.duration_s, analysis.report.timings.get("total"))
    return analysis


def start_analysis(
    engine, outputs_dir, load_error, pace, form: AnalyzeForm, progress=gr.Progress(), *, memory=None, models=None
) -> dict:
    """The page's Start: the analysis kept and drawn (KeptTab's skeleton), on the model the form names."""
    run = partial(analyze_clip, engine, outputs_dir, load_error, form, progress, pace, memory, models)
    return finish(run, partial(draw, view=form.view, granularity=form.granularity), form.lang)


def draw(kept: Analysis | None, lang: str, view: str = "smoothed", granularity: str = "utterance") -> dict:
    """The views of a kept analysis: card, scores, band, view toggle, timeline, segments, segment
    player, summary, log, downloads."""
    hidden = gr.update(value=None, visible=False)
    if kept is None:
        return {
            "card": render.note_card(t("no_result", lang)), "scores": "", "band": "", "view": gr.update(visible=False),
            "timeline": "", "segments": hidden, "player": hidden, "summary": "", "log": "", "downloads": None,
        }  # fmt: skip
    report = kept.report
    frame = report.granularity == "frame"
    band = render.dominant_band(report, lang) if frame else ""
    if not frame and granularity != "frame":
        band = f'<div class="ea-note">{t("frame_only", lang)}</div>'
    return {
        "card": render.emotion_card(report, lang),
        "scores": render.score_bars(report, lang) + heads_html(report, lang),  # with each custom head's card
        "band": band,
        "view": gr.update(visible=frame),
        "timeline": timeline_html(report, lang, view),
        "segments": gr.update(value=render.segments_table(report, lang), visible=frame),
        "player": hidden,
        "summary": render.summary_html(report, lang),
        "log": render.processing_log(report, lang),
        "downloads": [str(p) for p in kept.files.values()],
    }


def new_file(path, lang: str) -> dict:
    """A new upload: the old result goes, and a long file gets a pointer to the Long recording tab."""
    duration = declared_duration(path)
    hint = ""
    if duration and duration > LONG_FILE_S:
        hint = f'<div class="ea-hint">{t("long_hint", lang, duration=render.clock(duration, 0))}</div>'
    return {**cleared(draw, lang), "hint": gr.update(value=hint, visible=bool(hint))}


def resmooth_views(engine, outputs_dir, load_error, kept, form: AnalyzeForm):
    """A change of smoothing: the kept frames read again (no model call) into a new output folder,
    and redrawn (the kept analysis and its views); nothing changes without a frame result or when
    the smoothing is the one the kept analysis already has."""
    if kept is None or kept.frames is None:
        return gr.skip()
    with guarded(engine, load_error, form.lang, "smoothing"):
        options = AnalysisOptions.from_fields(form.smoothing())
        if options.smoothing == kept.report.options.smoothing:  # a slider let go where it was: no new folder
            return gr.skip()  # and the views stay as drawn (the segment player too)
        kept = resmooth(kept, options, outputs_dir=outputs_dir, lang=form.lang)
    return {"kept": kept, **draw(kept, form.lang, form.view, form.granularity)}


def method_controls(method: str) -> list:
    """[window, alpha, zero_phase] shown where `method` reads them."""
    return [gr.update(visible=method != "none"), gr.update(visible=method == "ewma"), gr.update(visible=method == "ewma")]


def granularity_changed(granularity: str, kept, lang: str) -> dict:
    """The smoothing options (they apply to frames only) and the band, whose note follows the choice."""
    frame_result = kept is not None and kept.report.granularity == "frame"
    band = gr.skip() if frame_result or kept is None else draw(kept, lang, granularity=granularity)["band"]
    return {"smooth_box": gr.update(visible=granularity == "frame"), "band": band}


def redraw_timeline(kept, lang: str, view: str):
    """The timeline with the smoothed or the raw frame scores."""
    return timeline_html(kept.report, lang, view) if kept is not None else ""


def build(
    texts: Texts, engine, outputs_dir: Path, load_error: str | None, lang_state: gr.State, memory=None, models=None
) -> KeptTab:
    """Lay out the tab in the current gr.Tabs and wire its events (`memory`: the server's memory
    budget, which each analysis holds from; `models`: the served models, a list to choose from when
    there are several). Everything, states included, is made inside the gr.Tab: a component made
    directly in gr.Tabs shifts Gradio's tab indices (the tab bar then shows one tab twice)."""
    with texts(gr.Tab, label_key="tab_analyze", id="analyze"):
        v = View(lang=lang_state, kept=gr.State(None), session_heads=gr.State([]))
        _layout(texts, v, models)
        tab = KeptTab(v, draw, VIEWS, redrawn=("view", "granularity"))
        _wire(tab, engine, outputs_dir, load_error, memory, models)
    return tab


def _layout(texts: Texts, v: View, models=None) -> None:
    """The tab's components, named in `v`."""
    with gr.Row(elem_classes="ea-stack"):
        with gr.Column(scale=1, min_width=300):
            v["file"] = audio_upload(texts, "upload", "audio-file", remount=True)
            v["hint"] = gr.HTML(elem_id="long-hint", visible=False)
            v["mic"] = texts(
                gr.Audio, label_key="record", sources=["microphone"], type="filepath", format="wav", remount=True, elem_id="mic"
            )
            v["example"] = texts(gr.Button, value_key="example", size="sm")
            v["model"] = model_dropdown(texts, models, "model")
            v["granularity"] = granularity_radio(texts, elem_id="granularity")
            v["embedding"] = texts(gr.Checkbox, False, label_key="embedding")
            v["start"] = texts(gr.Button, value_key="start", variant="primary", elem_id="start")
            v["labels"], v["sentiment"] = label_set_inputs(texts, "analyze")
            smoothing_inputs(texts, v)
        with gr.Column(scale=1, min_width=300):
            v["card"] = gr.HTML(render.note_card(t("no_result", texts.lang)), elem_id="emotion-card")
            v["scores"] = gr.HTML(elem_id="scores")
    v["band"] = gr.HTML(elem_id="dominant-band")
    v["view"] = texts(gr.Radio, label_key="view", choice_keys=VIEW_CHOICES, value="smoothed", visible=False, elem_id="view")
    v["timeline"] = gr.HTML(elem_id="timeline")
    with gr.Row(elem_classes="ea-stack"):
        with gr.Column(scale=1, min_width=300):
            v["segments"] = texts(gr.Dataframe, label_key="segments", visible=False, interactive=False, elem_id="segments")
            v["player"] = texts(
                gr.Audio, label_key="segment_audio", type="numpy", interactive=False, autoplay=True, visible=False,
                elem_id="segment-audio",
            )  # fmt: skip
        v["summary"] = gr.HTML(elem_id="summary", min_width=300)
    with gr.Row(elem_classes="ea-stack"):
        v["log"] = texts(gr.Textbox, label_key="log", lines=9, interactive=False, elem_id="log", min_width=300)
        v["downloads"] = download_list(texts, "downloads")
    v["result_json"] = gr.JSON(visible=False)
    v["api"] = gr.Button(visible=False)  # the API's `predict` trigger
    v["api_file"] = api_upload()  # its file: any name (common.api_upload)


def _wire(tab: KeptTab, engine, outputs_dir: Path, load_error: str | None, memory=None, models=None) -> None:
    v = tab.view
    queue = {"concurrency_limit": 2, "concurrency_id": "analyze"}
    api = bind(run_analysis, engine, outputs_dir, load_error, memory=memory, models=models)
    v["api"].click(api, v.outputs(*API_INPUTS), v["result_json"], api_name="predict", **queue)
    pace = Pace(engine.device if engine is not None else "cpu")
    keywords = {"memory": memory, "models": models}
    start = v.handler(start_analysis, engine, outputs_dir, load_error, pace, form=AnalyzeForm, keywords=keywords)
    tab.wire(start, AnalyzeForm, None, **queue)
    v["file"].change(v.handler(new_file), v.outputs("file", "lang"), v.outputs("kept", *tab.names, "hint"), **PRIVATE)
    v["mic"].stop_recording(lambda p: p, v["mic"], v["file"], **PRIVATE)
    v["example"].click(example_path, None, v["file"], **PRIVATE)
    v["granularity"].change(
        v.handler(granularity_changed), v.outputs("granularity", "kept", "lang"), v.outputs("smooth_box", "band"), **PRIVATE
    )
    v["view"].change(redraw_timeline, v.outputs("kept", "lang", "view"), v["timeline"], **PRIVATE)
    v["segments"].select(play_segment, v.outputs("kept", "lang"), v["player"], **PRIVATE)
    v["method"].change(method_controls, v["method"], v.outputs("window", "alpha", "zero_phase"), **PRIVATE)
    again = v.handler(resmooth_views, engine, outputs_dir, load_error, form=AnalyzeForm, before=("kept",))
    method, window, alpha, zero_phase, min_duration = v.outputs(*SMOOTHING_NAMES)
    # One event for all five controls: a change made while a re-reading runs waits for it and then
    # runs once, with the latest values (always_last holds per event), so two never race to draw.
    # The method's `change`, not its `input`: Gradio's Dropdown dispatches `input` twice for one
    # pick (on the option, then on the blur that follows it), in one tick that always_last cannot
    # merge, and once on a blur without a pick; the second drawing hid the segment player again.
    triggers = [method.change, zero_phase.input, window.release, alpha.release, min_duration.release]
    gr.on(triggers, again, v.inputs(AnalyzeForm, "kept"), v.outputs("kept", *tab.names), show_progress="minimal",
          trigger_mode="always_last", **PRIVATE)  # fmt: skip


def smoothing_inputs(texts: Texts, v: View) -> None:
    """The frame-smoothing options in an accordion shown in frame mode ("smooth_box"), named in `v`
    as AnalyzeForm's fields: method, window, alpha, zero_phase, min_duration_s. alpha and
    zero-phase show for EWMA only."""
    with texts(gr.Accordion, label_key="smoothing", open=True, visible=False, elem_id="smoothing") as v["smooth_box"]:
        v["method"] = texts(
            gr.Dropdown, label_key="method", choice_keys=[(f"m_{m}", m) for m in METHODS], value=DEFAULT.method, elem_id="method"
        )
        v["window"] = texts(gr.Slider, *WINDOW_RANGE, value=DEFAULT.window, step=2, label_key="window", elem_id="window")
        ewma = DEFAULT.method == "ewma"
        v["alpha"] = texts(gr.Slider, 0.05, 1.0, value=DEFAULT.alpha, step=0.05, label_key="alpha", visible=ewma, elem_id="alpha")
        v["zero_phase"] = texts(gr.Checkbox, DEFAULT.zero_phase, label_key="zero_phase", visible=ewma, elem_id="zero-phase")
        v["min_duration_s"] = texts(
            gr.Slider, 0.0, 2.0, value=DEFAULT.min_duration_s, step=0.02, label_key="min_duration", elem_id="min-duration"
        )
