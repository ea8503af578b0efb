"""The Gradio page: header, language switch and the tabs (one module each), relabelled as one.

Every translatable component is created through one `Texts` registry, so the language switch
relabels all of them, and each tab with a result redraws it in the new language. The page language
lives in a gr.State, which Gradio's client API does not expose; the API's endpoints are the Analyze
tab's `predict` and the long tab's `recording`.

Gradio's own texts (upload area, recorder, toasts, footer) and `<html lang>` follow Gradio's
frontend locale, which the switch sets too (`LOCALE_JS`: Gradio 6.31 exports `changeLocale` from
its core module but reads the locale only when a component mounts, so the components that show
such texts are hidden and shown again; see Texts `remount`).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import gradio as gr

from ..i18n import GRADIO_LOCALES, t
from . import my_results, tab_analyze, tab_batch, tab_compare, tab_labels, tab_live, tab_long
from .common import QUIET, Texts, bind, model_list

LANG_CHOICES = [("English", "en"), ("中文", "zh")]

# Sets Gradio's frontend locale for the page language (its first argument) and waits until the
# locale's texts are loaded (Gradio then sets <html lang>); returns [lang, "changed" or ""].
# The core module's URL carries a build hash, so it is found among the page's loaded scripts.
LOCALE_JS = r"""
async (lang) => {
  const want = LOCALES[lang] || "en";
  if (document.documentElement.lang === want) return [lang, ""];
  const url = performance.getEntriesByType("resource").map((e) => e.name)
    .find((n) => /\/assets\/core-[\w-]+\.js([?#]|$)/.test(n));
  try {
    if (url) {
      const core = await import(url);
      core.changeLocale(want);
      for (let i = 0; i < 60 && document.documentElement.lang !== want; i++) await new Promise((r) => setTimeout(r, 50));
    }
  } catch (e) {  // Gradio's own texts stay in its language; the page's words still switch
    console.warn("emotion_app: Gradio's locale not changed:", e);
    return [lang, ""];
  }
  document.documentElement.lang = want;
  return [lang, "changed"];
}
""".replace("LOCALES", json.dumps(GRADIO_LOCALES))


def stylesheet() -> str:
    """The page's CSS (style.css beside this module), for `gr.mount_gradio_app(css=...)`."""
    return resources.files(__package__).joinpath("style.css").read_text(encoding="utf-8")


def header_html(engine, load_error: str | None, lang: str) -> str:
    status = (
        f'<div class="ea-warning"><span class="ea-emo">❌</span> {t("model_error", lang, error=load_error)}</div>'
        if load_error
        else f'<div class="ea-note">{t("model_loading", lang, model=engine.model_info["id"], device=engine.device)}</div>'
    )
    return (
        f"<div class='ea-head'><h1><span class='ea-emo'>🎙️</span> {t('title', lang)}</h1>"
        f"<p class='ea-sub'>{t('subtitle', lang)}</p>{status}</div>"
    )


def relabel(texts: Texts, engine, load_error: str | None, tabs: list, lang: str, *values) -> list:
    """The page in `lang`: the language state, the header, every registered component's words (the
    remounted ones hidden; `texts.shown()` shows them again), and each tab's result redrawn from its
    kept values (`values`: each tab's `inputs`, in order). Outputs: lang_state, header,
    *texts.components, *each tab's views."""
    out = [lang, header_html(engine, load_error, lang), *texts.updates(lang, hide=True)]
    for tab in tabs:
        n = len(tab.inputs)
        out += tab.redraw(lang, *values[:n])
        values = values[n:]
    return out


def remount_hidden(texts: Texts, lang: str, changed: str) -> list:
    """At page load, after LOCALE_JS: the remounted components hidden when the locale changed."""
    return [gr.update(visible=False) if changed else gr.skip() for _ in texts.remounted]


def enabled(components: list) -> dict:
    """At page load, last: the tabs' gated components made usable (LiveTab.gated)."""
    return {c: gr.update(interactive=True) for c in components}


def build_demo(
    engine, outputs_dir: Path, load_error: str | None = None, lang: str = "en", live=None, memory=None, models=None
) -> gr.Blocks:
    """The page for `engine` (None when the model failed to load: the page then says why); `live`:
    the server's live hub (emotion_app.live.LiveHub), shared with /api/stream; `memory`: the
    server's memory budget (memory.MemoryBudget), which the Analyze, Long recording and Batch tabs
    hold from as the REST API does; `models`: the served models (modelset.ModelSet), chosen from on
    the Analyze tab."""
    outputs_dir = Path(outputs_dir)
    texts = Texts(lang)
    with gr.Blocks(title="emotion2vec+ · " + t("title", lang)) as demo:
        lang_state = gr.State(lang)
        with gr.Row(elem_classes="ea-header"):
            header = gr.HTML(header_html(engine, load_error, lang), min_width=240)
            # "Language / 语言" in both languages: not relabelled
            lang_radio = gr.Radio(LANG_CHOICES, value=lang, label=t("language", lang), scale=0, min_width=180, elem_id="lang")
        with gr.Tabs(overflow_behavior="wrap"):  # every tab reachable on a phone, no "..." menu
            analyze = tab_analyze.build(texts, engine, outputs_dir, load_error, lang_state, memory, models)
            compare = tab_compare.build(texts, engine, load_error, lang_state)
            long = tab_long.build(texts, engine, outputs_dir, load_error, lang_state, memory)
            batch = tab_batch.build(texts, engine, outputs_dir, load_error, lang_state, memory)
            tab_labels.build(
                texts, engine, outputs_dir, load_error, lang_state, analyze.view["session_heads"], models, analyze.view["model"]
            )
            live_tab = tab_live.build(texts, engine, outputs_dir, load_error, lang_state, live)
        my_results.build(texts, outputs_dir, lang_state)
        tabs = [analyze, compare, long, batch, live_tab]
        start = _wire_language(demo, texts, engine, load_error, tabs, lang_radio, lang_state, header)
        if models is not None:  # the models served now: a fine-tune the page ran since the server started
            start.append(start[-1].then(bind(model_list, models), None, analyze.view["model"], **QUIET))
        _gate(start, [c for tab in tabs for c in getattr(tab, "gated", [])])
    return demo


def _gate(start: list, gated: list) -> None:
    """`gated` made usable once the page's start-up events (`start`, one chain) are done, or one of
    them failed (a recorder kept back for good would be worse than the race it avoids)."""
    if not gated:
        return
    start[-1].then(bind(enabled, gated), None, gated, **QUIET)
    for step in start:
        step.failure(bind(enabled, gated), None, gated, **QUIET)


def _wire_language(demo, texts: Texts, engine, load_error, tabs: list, lang_radio, lang_state, header) -> list:
    """The language switch: Gradio's locale (LOCALE_JS), then every word and result, then the
    remounted components shown again; and at load, Gradio's locale set to the page's language.
    Returns the load's chain of events, in order."""
    private = {"api_visibility": "private"}
    views = [v for tab in tabs for v in tab.views]
    kept = [i for tab in tabs for i in tab.inputs]
    lang_radio.change(None, lang_radio, None, js=LOCALE_JS, **private).then(
        bind(relabel, texts, engine, load_error, tabs), [lang_radio, *kept], [lang_state, header, *texts.components, *views],
        **QUIET,
    ).then(texts.shown, None, texts.remounted, **QUIET)  # fmt: skip
    changed = gr.Textbox(visible=False)  # LOCALE_JS's answer at load
    first = demo.load(bind(remount_hidden, texts), [lang_radio, changed], texts.remounted, js=LOCALE_JS, **QUIET)
    return [first, first.then(texts.shown, None, texts.remounted, **QUIET)]
