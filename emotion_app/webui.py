"""The Gradio page. Callbacks only translate between components and package functions.

`predict` (api_name="predict") takes (file, granularity, extract_embedding, and optionally the
smoothing method, window, alpha, zero_phase, min_duration_s) and returns the result JSON; a
chained, private `draw` event draws the card, charts, log and downloads from it.
The page language lives in a gr.State, which Gradio's client API does not expose.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import gradio as gr
import pandas as pd

from . import render
from .compare import compare
from .constants import COLORS
from .i18n import t
from .service import analysis_options, analyze, display_name
from .smoothing import METHODS, WINDOW_RANGE, SmoothingOptions
from .webui_batch import build_batch_tab
from .webui_common import FILE_TYPES, guarded
from .webui_long import build_long_tab

LANG_CHOICES = [("English", "en"), ("中文", "zh")]


def example_path() -> str:
    return str(resources.files("emotion_app").joinpath("assets/example_speech.flac"))


def header_html(engine, load_error: str | None, lang: str) -> str:
    status = (
        f'<div class="ea-warning"><span class="ea-emo">❌</span> {t("model_error", lang, error=load_error)}</div>'
        if load_error
        else f'<div class="ea-note">{t("model_loading", lang, model=engine.options.model, device=engine.device)}</div>'
    )
    return f"<h1><span class='ea-emo'>🎙️</span> {t('title', lang)}</h1><p>{t('subtitle', lang)}</p>{status}"


def smoothing_choices(lang: str) -> list[tuple[str, str]]:
    return [(t(f"m_{m}", lang), m) for m in METHODS]


def translate(props: dict, lang: str) -> dict:
    """{property: text key or [(text key, value)]} -> the words for gr.update."""
    return {k: t(v, lang) if isinstance(v, str) else [(t(key, lang), val) for key, val in v] for k, v in props.items()}


def build_demo(engine, outputs_dir: Path, load_error: str | None = None, lang: str = "en") -> gr.Blocks:
    """The page for `engine` (None when the model failed to load: the page then says why)."""
    outputs_dir = Path(outputs_dir)
    default = SmoothingOptions()

    def predict(
        path,
        granularity,
        extract_embedding,
        method=default.method,
        window=default.window,
        alpha=default.alpha,
        zero_phase=default.zero_phase,
        min_duration_s=default.min_duration_s,
        lang_value="en",
        progress=gr.Progress(),
    ):
        lang_value = lang_value or "en"

        def call():
            options = analysis_options(
                method=method, window=window, alpha=alpha, zero_phase=zero_phase, min_duration_s=min_duration_s
            )
            progress(0.05, desc=t("progress_model", lang_value))
            name = Path(path).name if path else None
            analysis = analyze(
                engine, path, granularity or "utterance", bool(extract_embedding), outputs_dir=outputs_dir, name=name,
                options=options, lang=lang_value,
            )  # fmt: skip
            return analysis.response()

        return guarded(engine, load_error, lang_value, "prediction", call)

    def draw(result, lang_value, view="smoothed"):
        if not result:
            empty = f'<div class="ea-note">{t("no_result", lang_value)}</div>'
            hidden = gr.update(value=None, visible=False)
            return empty, "", hidden, render.dominant_band({}, lang_value), "", None, gr.update(visible=False), hidden, ""
        files = [str(outputs_dir / result["output_dir"] / name) for name in result.get("files", {})]
        frame = bool(result.get("frames"))
        return (
            render.emotion_card(result, lang_value),
            render.score_bars(result, lang_value),
            gr.update(value=render.timeline_table(result, lang_value, view), visible=frame, label=t("timeline", lang_value)),
            render.dominant_band(result, lang_value),
            render.processing_log(result, lang_value),
            files,
            gr.update(visible=frame),
            gr.update(value=render.segments_table(result, lang_value), visible=frame),
            render.summary_html(result, lang_value),
        )

    def redraw_timeline(result, lang_value, view):
        frame = bool(result and result.get("frames"))
        return gr.update(value=render.timeline_table(result, lang_value, view) if frame else None, visible=frame)

    def run_compare(paths, lang_value, progress=gr.Progress()):
        from . import charts

        lang_value = lang_value or "en"
        if not paths or len(paths) < 2:
            raise gr.Error(t("compare_need", lang_value))
        progress(0.1, desc=t("progress_model", lang_value))
        names = [display_name(Path(p).name) for p in paths]
        cmp = guarded(engine, load_error, lang_value, "comparison", lambda: compare(engine, list(paths), names))
        if len(cmp.names) < 2:
            raise gr.Error(t("compare_need", lang_value) + " " + "; ".join(f"{n}: {e}" for n, e in cmp.errors.items()))
        rows = [(n, render.label_text(e, lang_value), "") for n, e in zip(cmp.names, cmp.emotions)]
        rows += [(n, "", err) for n, err in cmp.errors.items()]
        table = pd.DataFrame(rows, columns=[t("log_file", lang_value), t("col_emotion", lang_value), "error"])
        radar = charts.radar_chart(list(zip(cmp.names, cmp.probabilities)), lang_value, t("radar", lang_value))
        sim = charts.similarity_chart(cmp.names, cmp.similarity, lang_value, t("similarity", lang_value))
        return table, radar, sim

    with gr.Blocks(title="emotion2vec+ · " + t("title", lang)) as demo:
        lang_state = gr.State(lang)
        with gr.Row():
            header = gr.HTML(header_html(engine, load_error, lang))
            lang_radio = gr.Radio(LANG_CHOICES, value=lang, label=t("language", lang), scale=0, min_width=200)
        with gr.Tabs():
            with gr.Tab(t("tab_analyze", lang), id="analyze") as tab_analyze:
                with gr.Row():
                    with gr.Column(scale=1):
                        file_in = gr.File(label=t("upload", lang), file_types=FILE_TYPES, type="filepath", elem_id="audio-file")
                        mic = gr.Audio(sources=["microphone"], type="filepath", format="wav", label=t("record", lang))
                        example_btn = gr.Button(t("example", lang), size="sm")
                        granularity = gr.Radio(
                            [(t("utterance", lang), "utterance"), (t("frame", lang), "frame")],
                            value="utterance",
                            label=t("granularity", lang),
                            elem_id="granularity",
                        )
                        embedding = gr.Checkbox(False, label=t("embedding", lang))
                        with gr.Accordion(t("smoothing", lang), open=True, visible=False, elem_id="smoothing") as smooth_box:
                            method = gr.Dropdown(
                                smoothing_choices(lang), value=default.method, label=t("method", lang), elem_id="method"
                            )
                            window = gr.Slider(*WINDOW_RANGE, value=default.window, step=2, label=t("window", lang))
                            alpha = gr.Slider(0.05, 1.0, value=default.alpha, step=0.05, label=t("alpha", lang))
                            zero_phase = gr.Checkbox(default.zero_phase, label=t("zero_phase", lang))
                            min_duration = gr.Slider(
                                0.0, 2.0, value=default.min_duration_s, step=0.02, label=t("min_duration", lang)
                            )
                        start = gr.Button(t("start", lang), variant="primary", elem_id="start")
                    with gr.Column(scale=1):
                        card = gr.HTML(f'<div class="ea-note">{t("no_result", lang)}</div>', elem_id="emotion-card")
                        scores = gr.HTML(elem_id="scores")
                band = gr.HTML(render.dominant_band({}, lang), elem_id="dominant-band")
                view = gr.Radio(
                    [(t("view_smoothed", lang), "smoothed"), (t("view_raw", lang), "raw")],
                    value="smoothed",
                    label=t("view", lang),
                    visible=False,
                    elem_id="view",
                )
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
                    segments = gr.Dataframe(label=t("segments", lang), visible=False, interactive=False, elem_id="segments")
                    summary = gr.HTML(elem_id="summary")
                with gr.Row():
                    log = gr.Textbox(label=t("log", lang), lines=9, interactive=False, elem_id="log")
                    downloads = gr.File(label=t("downloads", lang), file_count="multiple", interactive=False, elem_id="downloads")
                result_json = gr.JSON(label=t("json", lang), visible=False)
            with gr.Tab(t("tab_compare", lang), id="compare") as tab_compare:
                cmp_files = gr.File(
                    label=t("compare_files", lang),
                    file_types=FILE_TYPES,
                    file_count="multiple",
                    type="filepath",
                    elem_id="cmp-files",
                )
                cmp_btn = gr.Button(t("compare_start", lang), variant="primary", elem_id="cmp-start")
                cmp_table = gr.Dataframe(label=t("compare_table", lang), interactive=False, elem_id="cmp-table")
                with gr.Row():
                    radar = gr.Plot(label=t("radar", lang), elem_id="radar")
                    sim = gr.Plot(label=t("similarity", lang), elem_id="similarity")
            long_texts = build_long_tab(engine, outputs_dir, lang, lang_state, load_error, FILE_TYPES)
            batch_texts = build_batch_tab(engine, outputs_dir, lang, lang_state, load_error, FILE_TYPES)

        views = [card, scores, timeline, band, log, downloads, view, segments, summary]
        mic.stop_recording(lambda p: p, mic, file_in, api_visibility="private")
        example_btn.click(example_path, None, file_in, api_visibility="private")
        granularity.change(lambda g: gr.update(visible=g == "frame"), granularity, smooth_box, api_visibility="private")
        start.click(
            predict,
            [file_in, granularity, embedding, method, window, alpha, zero_phase, min_duration, lang_state],
            result_json,
            api_name="predict",
            concurrency_limit=2,
        ).success(draw, [result_json, lang_state, view], views, api_visibility="private")
        view.change(redraw_timeline, [result_json, lang_state, view], timeline, api_visibility="private")
        cmp_btn.click(
            run_compare, [cmp_files, lang_state], [cmp_table, radar, sim], api_visibility="private", concurrency_limit=1
        )

        # (component, {property: text key, or "choices": [(text key, value)]}), relabelled with the language
        texts = [
            (tab_analyze, {"label": "tab_analyze"}),
            (tab_compare, {"label": "tab_compare"}),
            (file_in, {"label": "upload"}),
            (mic, {"label": "record"}),
            (example_btn, {"value": "example"}),
            (granularity, {"label": "granularity", "choices": [("utterance", "utterance"), ("frame", "frame")]}),
            (embedding, {"label": "embedding"}),
            (smooth_box, {"label": "smoothing"}),
            (method, {"label": "method", "choices": [(f"m_{m}", m) for m in METHODS]}),
            (window, {"label": "window"}),
            (alpha, {"label": "alpha"}),
            (zero_phase, {"label": "zero_phase"}),
            (min_duration, {"label": "min_duration"}),
            (start, {"value": "start"}),
            (view, {"label": "view", "choices": [("view_smoothed", "smoothed"), ("view_raw", "raw")]}),
            (segments, {"label": "segments"}),
            (log, {"label": "log"}),
            (downloads, {"label": "downloads"}),
            (cmp_files, {"label": "compare_files"}),
            (cmp_btn, {"value": "compare_start"}),
            (cmp_table, {"label": "compare_table"}),
            (radar, {"label": "radar"}),
            (sim, {"label": "similarity"}),
            *long_texts,
            *batch_texts,
        ]

        def relabel(lang_value, result, view_value):
            words = [gr.update(**translate(props, lang_value)) for _, props in texts]
            return [lang_value, header_html(engine, load_error, lang_value), *words, *draw(result, lang_value, view_value)]

        lang_radio.change(
            relabel,
            [lang_radio, result_json, view],
            [lang_state, header, *(c for c, _ in texts), *views],
            api_visibility="private",
        )
    return demo
