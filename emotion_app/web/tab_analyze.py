"""The page's Analyze tab: one clip -> emotion card, 9 scores, frame timeline, segments, log, downloads.

`run_analysis` is the Gradio API's `predict` (api_name="predict"): (path, granularity,
extract_embedding, and optionally method, window, alpha, zero_phase, min_duration_s) -> result JSON.
A chained, private `draw` event draws the card, charts, log and downloads from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path

import gradio as gr

from ..analysis.smoothing import METHODS, WINDOW_RANGE, SmoothingOptions
from ..constants import COLORS
from ..options import RequestOptions
from ..service import analyze
from . import render
from .common import Texts, audio_upload, bind, download_list, download_paths, granularity_radio, guarded, stage_progress
from .i18n import t

DEFAULT = SmoothingOptions()
VIEW_CHOICES = [("view_smoothed", "smoothed"), ("view_raw", "raw")]


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
    lang="en",
    progress=gr.Progress(),
) -> dict:
    """Analyse the uploaded file; returns result.json's content with download URLs (see Analysis.response).
    The parameters after `load_error` are the API's; `lang` is the page's (a gr.State, not in the API).
    The smoothing fields are read in frame mode only (the form always sends them)."""
    lang = lang or "en"
    with guarded(engine, load_error, lang, "prediction"):
        fields = {"granularity": granularity or "utterance", "extract_embedding": bool(extract_embedding)}
        if fields["granularity"] == "frame":
            fields |= dict(method=method, window=window, alpha=alpha, zero_phase=zero_phase, min_duration_s=min_duration_s)
        name = Path(path).name if path else None
        analysis = analyze(
            engine, path, RequestOptions.from_fields(fields), outputs_dir=outputs_dir, name=name, lang=lang,
            progress=partial(stage_progress, progress, lang),
        )  # fmt: skip
        return analysis.response()


def draw(outputs_dir: Path, result: dict | None, lang: str, view: str = "smoothed") -> tuple:
    """The views of a result, in the order of AnalyzeTab.views: card, scores, timeline, band, log,
    downloads, view toggle, segments, summary."""
    if not result:
        empty = f'<div class="ea-note">{t("no_result", lang)}</div>'
        hidden = gr.update(value=None, visible=False)
        return empty, "", hidden, render.dominant_band({}, lang), "", None, gr.update(visible=False), hidden, ""
    frame = bool(result.get("frames"))
    return (
        render.emotion_card(result, lang),
        render.score_bars(result, lang),
        gr.update(value=render.timeline_table(result, lang, view), visible=frame, label=t("timeline", lang)),
        render.dominant_band(result, lang),
        render.processing_log(result, lang),
        download_paths(outputs_dir, result),
        gr.update(visible=frame),
        gr.update(value=render.segments_table(result, lang), visible=frame),
        render.summary_html(result, lang),
    )


def redraw_timeline(result: dict | None, lang: str, view: str):
    """The timeline with the smoothed or the raw frame scores."""
    frame = bool(result and result.get("frames"))
    return gr.update(value=render.timeline_table(result, lang, view) if frame else None, visible=frame)


def smoothing_visibility(granularity: str):
    """Smoothing applies to frames only."""
    return gr.update(visible=granularity == "frame")


@dataclass
class AnalyzeTab:
    """What the page shell needs to redraw the tab in another language."""

    result_json: gr.JSON
    view: gr.Radio
    views: list  # the outputs of draw(), in its order


def build(texts: Texts, engine, outputs_dir: Path, load_error: str | None, lang_state: gr.State) -> AnalyzeTab:
    """Lay out the tab in the current gr.Tabs and wire its events."""
    lang = texts.lang
    with texts(gr.Tab, label_key="tab_analyze", id="analyze"):
        with gr.Row():
            with gr.Column(scale=1):
                file_in = audio_upload(texts, "upload", "audio-file")
                mic = texts(gr.Audio, label_key="record", sources=["microphone"], type="filepath", format="wav")
                example_btn = texts(gr.Button, value_key="example", size="sm")
                granularity = granularity_radio(texts, elem_id="granularity")
                embedding = texts(gr.Checkbox, False, label_key="embedding")
                smooth_box, smoothing = smoothing_inputs(texts)
                start = texts(gr.Button, value_key="start", variant="primary", elem_id="start")
            with gr.Column(scale=1):
                card = gr.HTML(f'<div class="ea-note">{t("no_result", lang)}</div>', elem_id="emotion-card")
                scores = gr.HTML(elem_id="scores")
        band = gr.HTML(render.dominant_band({}, lang), elem_id="dominant-band")
        view = texts(gr.Radio, label_key="view", choice_keys=VIEW_CHOICES, value="smoothed", visible=False, elem_id="view")
        timeline = gr.LinePlot(
            None,
            x="time",
            y="probability",
            color="emotion",
            label=t("timeline", lang),
            y_lim=[0, 1],
            color_map={render.label_text(k, lo): c for k, c in COLORS.items() for lo in ("en", "zh")},
            colors_in_legend=[],  # Vega's legend garbles emoji labels; the band's legend names the colours
            height=260,
            visible=False,
        )
        with gr.Row():
            segments = texts(gr.Dataframe, label_key="segments", visible=False, interactive=False, elem_id="segments")
            summary = gr.HTML(elem_id="summary")
        with gr.Row():
            log = texts(gr.Textbox, label_key="log", lines=9, interactive=False, elem_id="log")
            downloads = download_list(texts, "downloads")
        result_json = gr.JSON(label=t("json", lang), visible=False)

    tab = AnalyzeTab(result_json, view, [card, scores, timeline, band, log, downloads, view, segments, summary])
    inputs = [file_in, granularity, embedding, *smoothing, lang_state]
    mic.stop_recording(lambda p: p, mic, file_in, api_visibility="private")
    example_btn.click(example_path, None, file_in, api_visibility="private")
    granularity.change(smoothing_visibility, granularity, smooth_box, api_visibility="private")
    start.click(
        bind(run_analysis, engine, outputs_dir, load_error), inputs, result_json, api_name="predict", concurrency_limit=2
    ).success(bind(draw, outputs_dir), [result_json, lang_state, view], tab.views, api_visibility="private")
    view.change(redraw_timeline, [result_json, lang_state, view], timeline, api_visibility="private")
    return tab


def smoothing_inputs(texts: Texts) -> tuple[gr.Accordion, list]:
    """The frame-smoothing options in an accordion shown in frame mode: (accordion, [method, window,
    alpha, zero_phase, min_duration])."""
    with texts(gr.Accordion, label_key="smoothing", open=True, visible=False, elem_id="smoothing") as box:
        method = texts(
            gr.Dropdown, label_key="method", choice_keys=[(f"m_{m}", m) for m in METHODS], value=DEFAULT.method, elem_id="method"
        )
        window = texts(gr.Slider, *WINDOW_RANGE, value=DEFAULT.window, step=2, label_key="window")
        alpha = texts(gr.Slider, 0.05, 1.0, value=DEFAULT.alpha, step=0.05, label_key="alpha")
        zero_phase = texts(gr.Checkbox, DEFAULT.zero_phase, label_key="zero_phase")
        min_duration = texts(gr.Slider, 0.0, 2.0, value=DEFAULT.min_duration_s, step=0.02, label_key="min_duration")
    return box, [method, window, alpha, zero_phase, min_duration]
