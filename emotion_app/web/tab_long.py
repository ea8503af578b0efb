"""The page's long-recording tab: segmentation, progress, segment timeline, table, downloads.

`run_recording` is the Gradio API's `recording` (api_name="recording"): (path, mode, threshold,
min_speech, min_silence, max_segment, window_s, hop_s) -> result JSON; a chained, private event
draws it.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import gradio as gr

from ..options import RequestOptions
from ..recordings.segmenter import SegmentOptions
from ..service import analyze
from . import render
from .common import Texts, audio_upload, bind, download_list, download_paths, guarded, stage_progress

MODE_CHOICES = [("seg_vad", "vad"), ("seg_window", "window")]


def run_recording(
    engine,
    outputs_dir: Path,
    load_error: str | None,
    path,
    mode,
    threshold,
    min_speech,
    min_silence,
    max_segment,
    window_s,
    hop_s,
    lang="en",
    progress=gr.Progress(),
) -> dict:
    """Segment and analyse a long recording; returns result.json's content with download URLs.
    Only the options of the chosen mode are sent (the form always has both sets)."""
    lang = lang or "en"
    with guarded(engine, load_error, lang, "recording analysis"):
        if mode == "vad":
            fields = dict(threshold=threshold, min_speech_s=min_speech, min_silence_s=min_silence, max_segment_s=max_segment)
        else:
            fields = dict(window_s=window_s, hop_s=hop_s)
        name = Path(path).name if path else None
        analysis = analyze(
            engine, path, RequestOptions.from_fields({"segment": mode, **fields}), outputs_dir=outputs_dir, name=name,
            lang=lang, progress=partial(stage_progress, progress, lang),
        )  # fmt: skip
        return analysis.response()


def draw_recording(outputs_dir: Path, result: dict | None, lang: str) -> tuple:
    """(card, band, segments table, summary, log, downloads) of a recording's result."""
    if not result:
        return "", "", gr.update(value=None, visible=False), "", "", None
    return (
        render.emotion_card(result, lang),
        render.dominant_band(result, lang),
        gr.update(value=render.segments_table(result, lang), visible=bool(result["segments"])),
        render.summary_html(result, lang),
        render.processing_log(result, lang),
        download_paths(outputs_dir, result),
    )


def build(texts: Texts, engine, outputs_dir: Path, load_error: str | None, lang_state: gr.State) -> None:
    """Lay out the tab in the current gr.Tabs and wire its events."""
    d = SegmentOptions()
    with texts(gr.Tab, label_key="tab_long", id="long"):
        with gr.Row():
            with gr.Column(scale=1):
                file_in = audio_upload(texts, "long_file", "long-file")
                mode = texts(gr.Radio, label_key="segmentation", choice_keys=MODE_CHOICES, value="vad", elem_id="long-mode")
                with texts(gr.Accordion, label_key="seg_options", open=False):
                    options = [
                        texts(gr.Slider, 0.05, 0.95, value=d.threshold, step=0.05, label_key="vad_threshold"),
                        texts(gr.Slider, 0.0, 2.0, value=d.min_speech_s, step=0.05, label_key="min_speech"),
                        texts(gr.Slider, 0.0, 3.0, value=d.min_silence_s, step=0.05, label_key="min_silence"),
                        texts(gr.Slider, 5.0, 120.0, value=d.max_segment_s, step=1.0, label_key="max_segment"),
                        texts(gr.Slider, 1.0, 120.0, value=d.window_s, step=0.5, label_key="window_s"),
                        texts(gr.Slider, 1.0, 120.0, value=d.hop_s, step=0.5, label_key="hop_s"),
                    ]
                start = texts(gr.Button, value_key="long_start", variant="primary", elem_id="long-start")
            with gr.Column(scale=1):
                card = gr.HTML(elem_id="long-card")
                summary = gr.HTML(elem_id="long-summary")
        band = gr.HTML(elem_id="long-band")
        table = texts(gr.Dataframe, label_key="segments", visible=False, interactive=False, elem_id="long-segments")
        with gr.Row():
            log = texts(gr.Textbox, label_key="log", lines=8, interactive=False, elem_id="long-log")
            downloads = download_list(texts, "long-downloads")
        result_json = gr.JSON(visible=False)
    start.click(
        bind(run_recording, engine, outputs_dir, load_error),
        [file_in, mode, *options, lang_state],
        result_json,
        api_name="recording",
        concurrency_limit=1,
    ).success(
        bind(draw_recording, outputs_dir),
        [result_json, lang_state],
        [card, band, table, summary, log, downloads],
        api_visibility="private",
    )
