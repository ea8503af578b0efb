"""The page's "My results": the output folders of the user logged in on the page, newest first,
with their download links (the same keyed links as the APIs'). Without a login (no --auth or
--users) nothing is listed: results made without one are nobody's. Never anyone else's: the list is read for the
request's user (common.owned sets it from Gradio's login), by outputs.list_results.
"""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from ...outputs import OWNER, list_results
from ..i18n import t
from .common import PRIVATE, Texts, bind

SHOWN = 50  # the newest ones; GET /api/results lists more


def results_html(found: list[dict], lang: str) -> str:
    """An HTML table of `list_results`' entries: time, file, emotion, download links."""
    if not found:
        return f"<p class='ea-note'>{html.escape(t('my_results_none', lang))}</p>"
    head = "".join(f"<th>{html.escape(t(k, lang))}</th>" for k in ("col_time", "col_file", "col_emotion", "downloads"))
    rows = []
    for entry in found:
        links = " · ".join(
            f"<a href='{html.escape(url)}' target='_blank' rel='noreferrer'>{html.escape(name)}</a>"
            for name, url in entry["files"].items()
        )
        cells = (entry["created"].replace("T", " ")[:19], entry.get("file") or entry["folder"], entry.get("emotion") or "")
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + f"<td>{links}</td></tr>")
    return f"<table class='ea-results'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def my_results(outputs_dir: Path, lang: str) -> str:
    """In a worker thread (a Gradio event): the list of this request's user (`common.owned`)."""
    user = OWNER.get()
    if user is None:
        return f"<p class='ea-note'>{html.escape(t('my_results_no_login', lang))}</p>"
    return results_html(list_results(outputs_dir, user, limit=SHOWN), lang)


def build(texts: Texts, outputs_dir: Path, lang_state: gr.State) -> None:
    """The accordion under the tabs: read when opened and on Refresh."""
    with texts(gr.Accordion, label_key="my_results", open=False, elem_id="my-results") as box:
        refresh = texts(gr.Button, value_key="refresh", size="sm", elem_id="my-results-refresh")
        listing = gr.HTML(elem_id="my-results-list")
    show = bind(my_results, outputs_dir)
    box.expand(show, lang_state, listing, **PRIVATE)
    refresh.click(show, lang_state, listing, **PRIVATE)
