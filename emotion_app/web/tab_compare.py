"""The page's Compare tab: two or more clips -> their emotions, score radar and embedding similarity."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from ..analysis.compare import compare
from ..service import display_name
from . import render
from .common import Texts, audio_upload, bind, guarded
from .i18n import t


def run_compare(engine, load_error: str | None, paths, lang="en", progress=gr.Progress()):
    """(table of clips with their emotion or error, radar figure, similarity figure) for >= 2 files."""
    from ..analysis import charts

    lang = lang or "en"
    if not paths or len(paths) < 2:
        raise gr.Error(t("compare_need", lang))
    progress(0.1, desc=t("progress_model", lang))
    names = [display_name(Path(p).name) for p in paths]
    with guarded(engine, load_error, lang, "comparison"):
        cmp = compare(engine, list(paths), names)
    if len(cmp.names) < 2:
        raise gr.Error(t("compare_need", lang) + " " + "; ".join(f"{n}: {e}" for n, e in cmp.errors.items()))
    rows = [(n, render.label_text(e, lang), "") for n, e in zip(cmp.names, cmp.emotions)]
    rows += [(n, "", err) for n, err in cmp.errors.items()]
    table = pd.DataFrame(rows, columns=[t("log_file", lang), t("col_emotion", lang), "error"])
    radar = charts.radar_chart(list(zip(cmp.names, cmp.probabilities)), lang, t("radar", lang))
    sim = charts.similarity_chart(cmp.names, cmp.similarity, lang, t("similarity", lang))
    return table, radar, sim


def build(texts: Texts, engine, load_error: str | None, lang_state: gr.State) -> None:
    """Lay out the tab in the current gr.Tabs and wire its events."""
    with texts(gr.Tab, label_key="tab_compare", id="compare"):
        files_in = audio_upload(texts, "compare_files", "cmp-files", multiple=True)
        start = texts(gr.Button, value_key="compare_start", variant="primary", elem_id="cmp-start")
        table = texts(gr.Dataframe, label_key="compare_table", interactive=False, elem_id="cmp-table")
        with gr.Row():
            radar = texts(gr.Plot, label_key="radar", elem_id="radar")
            sim = texts(gr.Plot, label_key="similarity", elem_id="similarity")
    start.click(
        bind(run_compare, engine, load_error),
        [files_in, lang_state],
        [table, radar, sim],
        api_visibility="private",
        concurrency_limit=1,
    )
