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
from ...service import analyze_batch
from ..i18n import short_error, t
from . import render
from .boundary import Form, KeptTab, View, finish, request_options
from .common import Texts, audio_upload, download_list, granularity_radio, guarded
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


@dataclass(frozen=True)
class BatchForm(Form):
    """The tab's form: the files (zips unpacked), granularity and segmentation."""

    files: list | None = None
    granularity: str = "utterance"
    segment: str = "none"

    def fields(self) -> dict:
        return {"granularity": self.granularity, "segment": self.segment}


def run_batch(engine, outputs_dir: Path, load_error: str | None, form: BatchForm, progress=None, memory=None) -> BatchRun:
    """Analyse every file (zips unpacked) into one output folder, within the server's `memory`
    budget (memory.MemoryBudget; None: none). No charts: a batch's folder holds tables."""
    if not form.files:
        raise gr.Error(t("batch_need", form.lang))
    with guarded(engine, load_error, form.lang, "batch"), Reporter(progress, form.lang) as report:
        request = request_options(form, charts=False)
        report(0.01, "files")
        step = partial(file_progress, report)
        rows, folder = analyze_batch(engine, list(form.files), request, outputs_dir=outputs_dir, progress=step, budget=memory)
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


def draw_batch(run: BatchRun | None, lang: str) -> dict:
    """The card (the batch's counts), table and downloads of a finished batch."""
    if run is None:
        return {
            "card": render.note_card(t("no_result_batch", lang)),
            "table": gr.update(value=None, visible=False),
            "downloads": None,
        }
    failed = sum(1 for r in run.rows if r["error"])
    status = t("batch_done", lang, ok=len(run.rows) - failed, failed=failed, total=len(run.rows)) + f" · {run.folder.name}"
    return {
        "card": f'<div class="ea-status">{status}</div>',
        "table": gr.update(value=batch_table(run.rows, lang), visible=True),
        "downloads": [str(run.folder / n) for n in DOWNLOADS],
    }


def start_batch(engine, outputs_dir, load_error, form: BatchForm, progress=gr.Progress(), *, memory=None) -> dict:
    """The page's button: the batch kept and drawn (KeptTab's skeleton)."""
    return finish(partial(run_batch, engine, outputs_dir, load_error, form, progress, memory), draw_batch, form.lang)


def build(texts: Texts, engine, outputs_dir: Path, load_error: str | None, lang_state: gr.State, memory=None) -> KeptTab:
    """Lay out the tab in the current gr.Tabs and wire its events (`memory`: the server's memory budget)."""
    with texts(gr.Tab, label_key="tab_batch", id="batch"):
        v = View(lang=lang_state, kept=gr.State(None))
        with gr.Row(elem_classes="ea-stack"):
            v["files"] = audio_upload(texts, "batch_files", "batch-files", multiple=True, zips=True, scale=2, remount=True)
            with gr.Column(scale=1, min_width=260):
                v["granularity"] = granularity_radio(texts)
                v["segment"] = texts(
                    gr.Radio, label_key="segmentation", choice_keys=SEGMENT_CHOICES, value="none", elem_id="batch-segment"
                )
                v["start"] = texts(gr.Button, value_key="batch_start", variant="primary", elem_id="batch-start")
        v["card"] = gr.HTML(render.note_card(t("no_result_batch", texts.lang)), elem_id="batch-status")
        v["table"] = texts(
            gr.Dataframe, label_key="batch_table", interactive=False, visible=False, wrap=True, elem_id="batch-table",
            column_widths=[170, 80, 160, 90, 280] + [100] * len(LABEL_KEYS),  # px: the error in view, scores to the right
        )  # fmt: skip
        v["downloads"] = download_list(texts, "batch-downloads")
        tab = KeptTab(v, draw_batch, ("card", "table", "downloads"))
        start = v.handler(start_batch, engine, outputs_dir, load_error, form=BatchForm, keywords={"memory": memory})
        tab.wire(start, BatchForm, "files", concurrency_limit=1)
    return tab
