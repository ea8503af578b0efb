"""The page's long-recording tab: segmentation, progress, segment timeline, table, downloads."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from . import render
from .i18n import t
from .segmenter import SegmentOptions
from .service import analyze_recording, segment_options
from .webui_common import guarded


def build_long_tab(engine, outputs_dir: Path, lang: str, lang_state, load_error, file_types) -> list:
    """Build the tab's components in the current Blocks; returns its relabel spec."""
    d = SegmentOptions()

    def run(path, mode, threshold, min_speech, min_silence, max_segment, window_s, hop_s, lang_value, progress=gr.Progress()):
        lang_value = lang_value or "en"

        def call():
            options = segment_options(
                mode, threshold=threshold, min_speech_s=min_speech, min_silence_s=min_silence, max_segment_s=max_segment,
                window_s=window_s, hop_s=hop_s,
            )  # fmt: skip
            name = Path(path).name if path else None
            analysis = analyze_recording(
                engine, path, options, outputs_dir=outputs_dir, name=name,
                progress=lambda f, stage: progress(f, desc=stage), lang=lang_value,
            )  # fmt: skip
            return analysis.response()

        return guarded(engine, load_error, lang_value, "recording analysis", call)

    def draw(result, lang_value):
        if not result:
            return "", "", gr.update(value=None, visible=False), "", "", None
        files = [str(outputs_dir / result["output_dir"] / name) for name in result.get("files", {})]
        return (
            render.emotion_card(result, lang_value),
            render.dominant_band(result, lang_value),
            gr.update(value=render.segments_table(result, lang_value), visible=bool(result["segments"])),
            render.summary_html(result, lang_value),
            render.processing_log(result, lang_value),
            files,
        )

    with gr.Tab(t("tab_long", lang), id="long") as tab:
        with gr.Row():
            with gr.Column(scale=1):
                file_in = gr.File(label=t("long_file", lang), file_types=file_types, type="filepath", elem_id="long-file")
                mode = gr.Radio(
                    [(t("seg_vad", lang), "vad"), (t("seg_window", lang), "window")],
                    value="vad",
                    label=t("segmentation", lang),
                    elem_id="long-mode",
                )
                with gr.Accordion(t("seg_options", lang), open=False) as box:
                    threshold = gr.Slider(0.05, 0.95, value=d.threshold, step=0.05, label=t("vad_threshold", lang))
                    min_speech = gr.Slider(0.0, 2.0, value=d.min_speech_s, step=0.05, label=t("min_speech", lang))
                    min_silence = gr.Slider(0.0, 3.0, value=d.min_silence_s, step=0.05, label=t("min_silence", lang))
                    max_segment = gr.Slider(5.0, 120.0, value=d.max_segment_s, step=1.0, label=t("max_segment", lang))
                    window_s = gr.Slider(1.0, 120.0, value=d.window_s, step=0.5, label=t("window_s", lang))
                    hop_s = gr.Slider(1.0, 120.0, value=d.hop_s, step=0.5, label=t("hop_s", lang))
                start = gr.Button(t("long_start", lang), variant="primary", elem_id="long-start")
            with gr.Column(scale=1):
                card = gr.HTML(elem_id="long-card")
                summary = gr.HTML(elem_id="long-summary")
        band = gr.HTML(elem_id="long-band")
        table = gr.Dataframe(label=t("segments", lang), visible=False, interactive=False, elem_id="long-segments")
        with gr.Row():
            log = gr.Textbox(label=t("log", lang), lines=8, interactive=False, elem_id="long-log")
            downloads = gr.File(label=t("downloads", lang), file_count="multiple", interactive=False, elem_id="long-downloads")
        result_json = gr.JSON(visible=False)
    start.click(
        run,
        [file_in, mode, threshold, min_speech, min_silence, max_segment, window_s, hop_s, lang_state],
        result_json,
        api_name="recording",
        concurrency_limit=1,
    ).success(draw, [result_json, lang_state], [card, band, table, summary, log, downloads], api_visibility="private")
    return [
        (tab, {"label": "tab_long"}),
        (file_in, {"label": "long_file"}),
        (mode, {"label": "segmentation", "choices": [("seg_vad", "vad"), ("seg_window", "window")]}),
        (box, {"label": "seg_options"}),
        (threshold, {"label": "vad_threshold"}),
        (min_speech, {"label": "min_speech"}),
        (min_silence, {"label": "min_silence"}),
        (max_segment, {"label": "max_segment"}),
        (window_s, {"label": "window_s"}),
        (hop_s, {"label": "hop_s"}),
        (start, {"value": "long_start"}),
        (table, {"label": "segments"}),
        (log, {"label": "log"}),
        (downloads, {"label": "downloads"}),
    ]
