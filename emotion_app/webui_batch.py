"""The page's batch tab: many files or zips, progress over files, results table, downloads."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from .batch import BatchOptions, collect_inputs, input_names
from .i18n import t
from .segmenter import SegmentOptions
from .service import analyze_batch
from .timeline import AnalysisOptions
from .webui_common import guarded

SEGMENT_CHOICES = [("seg_none", "none"), ("seg_vad", "vad"), ("seg_window", "window")]


def build_batch_tab(engine, outputs_dir: Path, lang: str, lang_state, load_error, file_types) -> list:
    """Build the tab's components in the current Blocks; returns its relabel spec."""

    def run(paths, granularity, segment, lang_value, progress=gr.Progress()):
        lang_value = lang_value or "en"
        if not paths:
            raise gr.Error(t("batch_need", lang_value))

        def call(tmp: str):
            files = collect_inputs(paths, extract_dir=Path(tmp))
            names = input_names(files, Path(tmp))
            done = [0]

            def step(n):
                done[0] += n
                progress((done[0], len(files)), desc=t("progress_files", lang_value), unit="files")

            seg = None if segment == "none" else SegmentOptions(segment)
            options = BatchOptions(granularity, seg, AnalysisOptions(charts=False))
            return analyze_batch(engine, files, options, outputs_dir=outputs_dir, names=names, progress=step)

        with tempfile.TemporaryDirectory(prefix="emotion_app_zip_") as tmp:
            rows, folder = guarded(engine, load_error, lang_value, "batch", lambda: call(tmp))
        failed = sum(1 for r in rows if r["error"])
        status = t("batch_done", lang_value, ok=len(rows) - failed, failed=failed, total=len(rows)) + f" · {folder.name}"
        downloads = [str(folder / n) for n in ("results.csv", "results.jsonl", "results.zip")]
        return pd.DataFrame(rows), status, downloads

    with gr.Tab(t("tab_batch", lang), id="batch") as tab:
        with gr.Row():
            files_in = gr.File(
                label=t("batch_files", lang),
                file_types=[*file_types, ".zip"],
                file_count="multiple",
                type="filepath",
                elem_id="batch-files",
                scale=2,
            )
            with gr.Column(scale=1):
                granularity = gr.Radio(
                    [(t("utterance", lang), "utterance"), (t("frame", lang), "frame")],
                    value="utterance",
                    label=t("granularity", lang),
                )
                segment = gr.Radio(
                    [(t(k, lang), v) for k, v in SEGMENT_CHOICES],
                    value="none",
                    label=t("segmentation", lang),
                    elem_id="batch-segment",
                )
                start = gr.Button(t("batch_start", lang), variant="primary", elem_id="batch-start")
        status = gr.Markdown(elem_id="batch-status")
        table = gr.Dataframe(label=t("batch_table", lang), interactive=False, elem_id="batch-table")
        downloads = gr.File(label=t("downloads", lang), file_count="multiple", interactive=False, elem_id="batch-downloads")
    start.click(
        run,
        [files_in, granularity, segment, lang_state],
        [table, status, downloads],
        api_visibility="private",
        concurrency_limit=1,
    )
    return [
        (tab, {"label": "tab_batch"}),
        (files_in, {"label": "batch_files"}),
        (granularity, {"label": "granularity", "choices": [("utterance", "utterance"), ("frame", "frame")]}),
        (segment, {"label": "segmentation", "choices": SEGMENT_CHOICES}),
        (start, {"value": "batch_start"}),
        (table, {"label": "batch_table"}),
        (downloads, {"label": "downloads"}),
    ]
