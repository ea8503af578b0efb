"""The page's long-recording tab: segmentation, progress, segment timeline, table, downloads."""

from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr

from . import render
from .errors import EmotionAppError
from .i18n import error_message, t
from .outputs import download_urls
from .segmenter import SegmentOptions
from .service import analyze_recording

logger = logging.getLogger(__name__)


def build_long_tab(engine, outputs_dir: Path, lang: str, lang_state, load_error, file_types) -> list:
    """Build the tab's components in the current Blocks; returns its relabel spec."""
    d = SegmentOptions()

    def run(path, mode, threshold, min_speech, min_silence, max_segment, window_s, hop_s, lang_value, progress=gr.Progress()):
        lang_value = lang_value or "en"
        if engine is None:
            raise gr.Error(t("model_error", lang_value, error=load_error))
        try:
            options = SegmentOptions(mode, threshold, min_speech, min_silence, max_segment, window_s=window_s, hop_s=hop_s)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
        try:
            analysis = analyze_recording(
                engine,
                path,
                options,
                outputs_dir=outputs_dir,
                name=Path(path).name if path else None,
                progress=lambda f, stage: progress(f, desc=stage),
                lang=lang_value,
            )
        except EmotionAppError as exc:
            raise gr.Error(error_message(exc, lang_value)) from None
        except Exception:
            logger.exception("recording analysis failed")
            raise gr.Error("Internal error; the server log has the details.") from None
        return {**analysis.result, "files": download_urls(analysis.folder.name, analysis.files)}

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
