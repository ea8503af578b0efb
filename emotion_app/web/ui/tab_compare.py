"""The page's Compare tab: two or more clips -> their emotions, score radar and embedding similarity.

The charts are PNG images with alt text that says what they show (the top scores of each clip, the
similarity of each pair). The button runs KeptTab's steps (common.py): `begin` (disabled, cleared),
`start_compare` (progress on the status card; an error drawn there) and `show_error` (the toast).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gradio as gr
import pandas as pd

from ...compare import Comparison, compare
from ...service import display_name
from ..i18n import short_error, t
from . import render
from .boundary import Form, KeptTab, View, finish
from .common import Texts, audio_upload, guarded
from .figures import image_html
from .progress import Reporter


@dataclass(frozen=True)
class CompareForm(Form):
    """The tab's form: the clips."""

    files: list | None = None


def run_compare(engine, load_error: str | None, form: CompareForm, progress=None) -> Comparison:
    """The clips compared (>= 2 files, of which >= 2 must succeed), with progress."""
    paths, lang = form.files, form.lang
    if not paths or len(paths) < 2:
        raise gr.Error(t("compare_need", lang))
    names = [display_name(Path(p).name) for p in paths]
    with guarded(engine, load_error, lang, "comparison"), Reporter(progress, lang) as report:
        report(0.05, "model")
        cmp = compare(engine, list(paths), names)
    if len(cmp.names) < 2:
        failures = "; ".join(f"{n}: {short_error(e, cmp.codes.get(n), lang)}" for n, e in cmp.errors.items())
        raise gr.Error(f"{t('compare_failed', lang)} {failures}")
    return cmp


def draw_compare(cmp: Comparison | None, lang: str) -> dict:
    """The status card, the table of clips with their emotion or error, the radar and similarity images."""
    from ...analysis import charts

    if cmp is None:
        hidden = gr.update(value=None, visible=False)
        return {"card": render.note_card(t("no_result_compare", lang)), "table": hidden, "radar": "", "similarity": ""}
    cols = [t(k, lang) for k in ("col_file", "col_emotion", "col_confidence", "col_error")]
    rows = [
        (n, render.label_text(e, lang), f"{p[e] * 100:.1f}%", "") for n, e, p in zip(cmp.names, cmp.emotions, cmp.probabilities)
    ]
    rows += [(n, "", "", short_error(err, cmp.codes.get(n), lang)) for n, err in cmp.errors.items()]
    named = list(zip(cmp.names, cmp.probabilities))
    radar_alt = "; ".join(
        f"{n}: "
        + ", ".join(f"{render.label_text(k, lang)} {v * 100:.0f}%" for k, v in sorted(p.items(), key=lambda kv: -kv[1])[:3])
        for n, p in named
    )
    pairs = [f"{a} – {b} {cmp.similarity[i, j]:.2f}" for i, a in enumerate(cmp.names) for j, b in enumerate(cmp.names) if i < j]
    radar = charts.png_bytes(charts.radar_chart(named, lang))
    sim = charts.png_bytes(charts.similarity_chart(cmp.names, cmp.similarity, lang))
    return {
        "card": "",
        "table": gr.update(value=pd.DataFrame(rows, columns=cols), visible=True),
        "radar": image_html(radar, t("radar_alt", lang, clips=radar_alt), t("radar", lang)),
        "similarity": image_html(sim, t("similarity_alt", lang, pairs="; ".join(pairs)), t("similarity", lang)),
    }


def start_compare(engine, load_error, form: CompareForm, progress=gr.Progress()) -> dict:
    """The page's button: the comparison kept and drawn (KeptTab's skeleton)."""
    return finish(partial(run_compare, engine, load_error, form, progress), draw_compare, form.lang)


def build(texts: Texts, engine, load_error: str | None, lang_state: gr.State) -> KeptTab:
    """Lay out the tab in the current gr.Tabs and wire its events."""
    with texts(gr.Tab, label_key="tab_compare", id="compare"):
        v = View(lang=lang_state, kept=gr.State(None))
        v["files"] = audio_upload(texts, "compare_files", "cmp-files", multiple=True, remount=True)
        v["start"] = texts(gr.Button, value_key="compare_start", variant="primary", elem_id="cmp-start")
        v["card"] = gr.HTML(render.note_card(t("no_result_compare", texts.lang)), elem_id="cmp-status")
        v["table"] = texts(
            gr.Dataframe, label_key="compare_table", interactive=False, visible=False, wrap=True, elem_id="cmp-table",
            column_widths=[170, 170, 90, 320],
        )  # fmt: skip
        with gr.Row(elem_classes="ea-stack"):
            v["radar"] = gr.HTML(elem_id="radar", min_width=300)
            v["similarity"] = gr.HTML(elem_id="similarity", min_width=300)
        tab = KeptTab(v, draw_compare, ("card", "table", "radar", "similarity"))
        tab.wire(v.handler(start_compare, engine, load_error, form=CompareForm), CompareForm, "files", concurrency_limit=1)
    return tab
