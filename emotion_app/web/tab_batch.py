"""The page's batch tab: many files or zips, progress over files, results table, downloads."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import gradio as gr
import pandas as pd

from ..options import RequestOptions
from ..service import analyze_batch
from .common import Texts, audio_upload, bind, download_list, granularity_radio, guarded
from .i18n import t

SEGMENT_CHOICES = [("seg_none", "none"), ("seg_vad", "vad"), ("seg_window", "window")]
DOWNLOADS = ("results.csv", "results.jsonl", "results.zip")


def file_progress(progress, lang: str, done: int, total: int) -> None:
    """The service's `progress(done, total)` over files, shown on a gr.Progress."""
    progress((done, total), desc=t("progress_files", lang), unit="files")


def run_batch(engine, outputs_dir: Path, load_error: str | None, paths, granularity, segment, lang="en", progress=gr.Progress()):
    """Analyse every file (zips unpacked) into one output folder: (results table, status line, downloads).
    No charts: a batch's folder holds tables."""
    lang = lang or "en"
    if not paths:
        raise gr.Error(t("batch_need", lang))
    with guarded(engine, load_error, lang, "batch"):
        request = RequestOptions.from_fields({"granularity": granularity, "segment": segment}, charts=False)
        step = partial(file_progress, progress, lang)
        rows, folder = analyze_batch(engine, list(paths), request, outputs_dir=outputs_dir, progress=step)
    failed = sum(1 for r in rows if r["error"])
    status = t("batch_done", lang, ok=len(rows) - failed, failed=failed, total=len(rows)) + f" · {folder.name}"
    return pd.DataFrame(rows), status, [str(folder / n) for n in DOWNLOADS]


def build(texts: Texts, engine, outputs_dir: Path, load_error: str | None, lang_state: gr.State) -> None:
    """Lay out the tab in the current gr.Tabs and wire its events."""
    with texts(gr.Tab, label_key="tab_batch", id="batch"):
        with gr.Row():
            files_in = audio_upload(texts, "batch_files", "batch-files", multiple=True, zips=True, scale=2)
            with gr.Column(scale=1):
                granularity = granularity_radio(texts)
                segment = texts(
                    gr.Radio, label_key="segmentation", choice_keys=SEGMENT_CHOICES, value="none", elem_id="batch-segment"
                )
                start = texts(gr.Button, value_key="batch_start", variant="primary", elem_id="batch-start")
        status = gr.Markdown(elem_id="batch-status")
        table = texts(gr.Dataframe, label_key="batch_table", interactive=False, elem_id="batch-table")
        downloads = download_list(texts, "batch-downloads")
    start.click(
        bind(run_batch, engine, outputs_dir, load_error),
        [files_in, granularity, segment, lang_state],
        [table, status, downloads],
        api_visibility="private",
        concurrency_limit=1,
    )
