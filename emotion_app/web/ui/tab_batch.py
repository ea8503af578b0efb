"""The page's batch tab: many files or zips, progress over files, results table, downloads.

The table is for reading: durations in m:ss, scores in percent, emotions and errors in the page's
language, the error beside the file (wrapped, not cut). The CSV/JSONL downloads keep the raw values
and the full English messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gradio as gr
import pandas as pd

from ...constants import LABEL_BY_KEY, LABEL_KEYS
from ...request import RequestOptions
from ...service import analyze_batch
from ..i18n import short_error, t
from . import render
from .common import KeptTab, Texts, audio_upload, bind, busy, download_list, granularity_radio, guarded, ready, show_error
from .progress import Reporter

SEGMENT_CHOICES = [("seg_none", "none"), ("seg_vad", "vad"), ("seg_window", "window")]
DOWNLOADS = ("results.csv", "results.jsonl", "results.zip")


@dataclass
class BatchRun:
    """A finished batch: its table rows (tables.COLUMNS, plus `error_code`) and output folder."""

    rows: list[dict]
    folder: Path


def file_progress(report: Reporter, done: int, total: int) -> None:
    """The service's `progress(done, total)` over files: "Files 3/9 · about 20 s left"."""
    report(done / max(total, 1), f"files {done}/{total}")


def run_batch(engine, outputs_dir: Path, load_error: str | None, paths, granularity, segment, lang="en", progress=gr.Progress()):
    """Analyse every file (zips unpacked) into one output folder. No charts: a batch's folder holds tables."""
    lang = lang or "en"
    if not paths:
        raise gr.Error(t("batch_need", lang))
    with guarded(engine, load_error, lang, "batch"), Reporter(progress, lang) as report:
        request = RequestOptions.from_fields({"granularity": granularity, "segment": segment}, charts=False)
        report(0.01, "files")
        step = partial(file_progress, report)
        rows, folder = analyze_batch(engine, list(paths), request, outputs_dir=outputs_dir, progress=step)
    return BatchRun(rows, folder)


def batch_table(rows: list[dict], lang: str) -> pd.DataFrame:
    """The rows for reading: file, duration, emotion, confidence, error, then the 9 scores in percent."""
    cols = [t(k, lang) for k in ("col_file", "col_duration", "col_emotion", "col_confidence", "col_error")]
    out = []
    for r in rows:
        ok = not r["error"]
        emotion = render.label_text(r["emotion"], lang) if ok and r["emotion"] in LABEL_BY_KEY else (r["emotion"] or "")
        out.append(
            [
                r["file"],
                render.clock(r["duration_s"]) if r["duration_s"] != "" else "",
                emotion,
                f"{r['confidence'] * 100:.1f}%" if ok and r["confidence"] != "" else "",
                short_error(r["error"], r.get("error_code"), lang) if r["error"] else "",
                *(f"{r[k] * 100:.1f}%" if ok and r.get(k) != "" else "" for k in LABEL_KEYS),
            ]
        )
    return pd.DataFrame(out, columns=[*cols, *(render.label_short(k, lang) for k in LABEL_KEYS)])


def draw_batch(run: BatchRun | None, lang: str) -> list:
    """[status, table, downloads] of a finished batch."""
    if run is None:
        return [render.note_card(t("no_result_batch", lang)), gr.update(value=None, visible=False), None]
    failed = sum(1 for r in run.rows if r["error"])
    status = t("batch_done", lang, ok=len(run.rows) - failed, failed=failed, total=len(run.rows)) + f" · {run.folder.name}"
    table = gr.update(value=batch_table(run.rows, lang), visible=True)
    return [f'<div class="ea-status">{status}</div>', table, [str(run.folder / n) for n in DOWNLOADS]]


def start_batch(engine, outputs_dir, load_error, paths, granularity, segment, lang, progress=gr.Progress()) -> list:
    """The page's button: [kept run, *views, button, error]."""
    try:
        run = run_batch(engine, outputs_dir, load_error, paths, granularity, segment, lang, progress)
    except gr.Error as exc:
        return [None, render.error_card(exc.message, lang), gr.update(value=None, visible=False), None, ready(), exc.message]
    return [run, *draw_batch(run, lang), ready(), ""]


def begin(lang: str) -> list:
    return [busy(), None, render.working_card(lang), gr.update(value=None, visible=False), None]


def new_files(lang: str) -> list:
    return [None, *draw_batch(None, lang)]


def build(texts: Texts, engine, outputs_dir: Path, load_error: str | None, lang_state: gr.State) -> KeptTab:
    """Lay out the tab in the current gr.Tabs and wire its events."""
    with texts(gr.Tab, label_key="tab_batch", id="batch"):
        with gr.Row(elem_classes="ea-stack"):
            files_in = audio_upload(texts, "batch_files", "batch-files", multiple=True, zips=True, scale=2, remount=True)
            with gr.Column(scale=1, min_width=260):
                granularity = granularity_radio(texts)
                segment = texts(
                    gr.Radio, label_key="segmentation", choice_keys=SEGMENT_CHOICES, value="none", elem_id="batch-segment"
                )
                start = texts(gr.Button, value_key="batch_start", variant="primary", elem_id="batch-start")
        status = gr.HTML(render.note_card(t("no_result_batch", texts.lang)), elem_id="batch-status")
        table = texts(
            gr.Dataframe, label_key="batch_table", interactive=False, visible=False, wrap=True, elem_id="batch-table",
            column_widths=[170, 80, 160, 90, 280] + [100] * len(LABEL_KEYS),  # px: the error in view, scores to the right
        )  # fmt: skip
        downloads = download_list(texts, "batch-downloads")
        tab = KeptTab(gr.State(None), draw_batch, [status, table, downloads])
        private = {"api_visibility": "private"}
        error = gr.State("")
        start.click(begin, lang_state, [start, tab.kept, *tab.views], queue=False, **private).then(
            bind(start_batch, engine, outputs_dir, load_error), [files_in, granularity, segment, lang_state],
            [tab.kept, *tab.views, start, error], show_progress_on=status, concurrency_limit=1, **private,
        ).then(show_error, error, None, **private)  # fmt: skip
        files_in.change(new_files, lang_state, [tab.kept, *tab.views], **private)
    return tab
