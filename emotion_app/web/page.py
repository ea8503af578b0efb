"""The Gradio page: header, language switch and the tabs (one module each), relabelled as one.

Every translatable component is created through one `Texts` registry, so the language switch
relabels all of them. The page language lives in a gr.State, which Gradio's client API does not
expose; the API's endpoints are the Analyze tab's `predict` and the long tab's `recording`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import gradio as gr

from . import tab_analyze, tab_batch, tab_compare, tab_long
from .common import Texts, bind
from .i18n import t

LANG_CHOICES = [("English", "en"), ("中文", "zh")]


def stylesheet() -> str:
    """The page's CSS (style.css beside this module), for `launch(css=...)`."""
    return resources.files(__package__).joinpath("style.css").read_text(encoding="utf-8")


def header_html(engine, load_error: str | None, lang: str) -> str:
    status = (
        f'<div class="ea-warning"><span class="ea-emo">❌</span> {t("model_error", lang, error=load_error)}</div>'
        if load_error
        else f'<div class="ea-note">{t("model_loading", lang, model=engine.options.model, device=engine.device)}</div>'
    )
    return f"<h1><span class='ea-emo'>🎙️</span> {t('title', lang)}</h1><p>{t('subtitle', lang)}</p>{status}"


def relabel(texts: Texts, engine, outputs_dir: Path, load_error: str | None, lang: str, result: dict | None, view: str) -> list:
    """The page in `lang`: the language state, the header, every registered component's words, and
    the Analyze tab's result redrawn (outputs: lang_state, header, *texts.components, *AnalyzeTab.views)."""
    return [
        lang,
        header_html(engine, load_error, lang),
        *texts.updates(lang),
        *tab_analyze.draw(outputs_dir, result, lang, view),
    ]


def build_demo(engine, outputs_dir: Path, load_error: str | None = None, lang: str = "en") -> gr.Blocks:
    """The page for `engine` (None when the model failed to load: the page then says why)."""
    outputs_dir = Path(outputs_dir)
    texts = Texts(lang)
    with gr.Blocks(title="emotion2vec+ · " + t("title", lang)) as demo:
        lang_state = gr.State(lang)
        with gr.Row():
            header = gr.HTML(header_html(engine, load_error, lang))
            # "Language / 语言" in both languages: not relabelled
            lang_radio = gr.Radio(LANG_CHOICES, value=lang, label=t("language", lang), scale=0, min_width=200)
        with gr.Tabs():
            analyze = tab_analyze.build(texts, engine, outputs_dir, load_error, lang_state)
            tab_compare.build(texts, engine, load_error, lang_state)
            tab_long.build(texts, engine, outputs_dir, load_error, lang_state)
            tab_batch.build(texts, engine, outputs_dir, load_error, lang_state)
        lang_radio.change(
            bind(relabel, texts, engine, outputs_dir, load_error),
            [lang_radio, analyze.result_json, analyze.view],
            [lang_state, header, *texts.components, *analyze.views],
            api_visibility="private",
        )
    return demo
