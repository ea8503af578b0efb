"""The Gradio page. Callbacks only translate between components and package functions.

`predict` (api_name="predict") takes (file, granularity, extract_embedding) and returns the
result JSON; a chained, private `render` event draws the card, charts, log and downloads from it.
The page language lives in a gr.State, which Gradio's client API does not expose.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

import gradio as gr

from . import render
from .errors import EmotionAppError
from .i18n import error_message, t
from .outputs import download_urls
from .service import analyze

logger = logging.getLogger(__name__)

LANG_CHOICES = [("English", "en"), ("中文", "zh")]
FILE_TYPES = ["audio", "video", ".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus", ".webm", ".aiff", ".mp4", ".mkv", ".mov"]


def example_path() -> str:
    return str(resources.files("emotion_app").joinpath("assets/example_speech.flac"))


def header_html(engine, load_error: str | None, lang: str) -> str:
    status = (
        f'<div class="ea-warning"><span class="ea-emo">❌</span> {t("model_error", lang, error=load_error)}</div>'
        if load_error
        else f'<div class="ea-note">{t("model_loading", lang, model=engine.options.model, device=engine.device)}</div>'
    )
    return f"<h1><span class='ea-emo'>🎙️</span> {t('title', lang)}</h1><p>{t('subtitle', lang)}</p>{status}"


def build_demo(engine, outputs_dir: Path, load_error: str | None = None, lang: str = "en") -> gr.Blocks:
    """The page for `engine` (None when the model failed to load: the page then says why)."""
    outputs_dir = Path(outputs_dir)

    def predict(path, granularity, extract_embedding, lang_value, progress=gr.Progress()):
        lang_value = lang_value or "en"
        if engine is None:
            raise gr.Error(t("model_error", lang_value, error=load_error))
        try:
            progress(0.05, desc=t("progress_model", lang_value))
            analysis = analyze(
                engine,
                path,
                granularity or "utterance",
                bool(extract_embedding),
                outputs_dir=outputs_dir,
                name=Path(path).name if path else None,
            )
        except EmotionAppError as exc:
            raise gr.Error(error_message(exc, lang_value)) from None
        except Exception:
            logger.exception("prediction failed")
            raise gr.Error("Internal error; the server log has the details.") from None
        return {**analysis.result, "files": download_urls(analysis.folder.name, analysis.files)}

    def draw(result, lang_value):
        if not result:
            empty = f'<div class="ea-note">{t("no_result", lang_value)}</div>'
            return empty, "", gr.update(value=None, visible=False), render.dominant_band({}, lang_value), "", None
        files = [str(outputs_dir / result["output_dir"] / name) for name in result.get("files", {})]
        return (
            render.emotion_card(result, lang_value),
            render.score_bars(result, lang_value),
            gr.update(value=render.timeline_table(result, lang_value), visible=bool(result.get("frames"))),
            render.dominant_band(result, lang_value),
            render.processing_log(result, lang_value),
            files,
        )

    def relabel(lang_value, result):
        updates = [
            lang_value,
            header_html(engine, load_error, lang_value),
            gr.update(label=t("upload", lang_value)),
            gr.update(label=t("record", lang_value)),
            gr.update(value=t("example", lang_value)),
            gr.update(
                label=t("granularity", lang_value),
                choices=[(t("utterance", lang_value), "utterance"), (t("frame", lang_value), "frame")],
            ),
            gr.update(label=t("embedding", lang_value)),
            gr.update(value=t("start", lang_value)),
            gr.update(label=t("timeline", lang_value)),
            gr.update(label=t("log", lang_value)),
            gr.update(label=t("downloads", lang_value)),
        ]
        return updates + list(draw(result, lang_value))

    with gr.Blocks(title="emotion2vec+ · " + t("title", lang)) as demo:
        lang_state = gr.State(lang)
        with gr.Row():
            header = gr.HTML(header_html(engine, load_error, lang))
            lang_radio = gr.Radio(LANG_CHOICES, value=lang, label=t("language", lang), scale=0, min_width=200)
        with gr.Row():
            with gr.Column(scale=1):
                file_in = gr.File(label=t("upload", lang), file_types=FILE_TYPES, type="filepath", elem_id="audio-file")
                mic = gr.Audio(sources=["microphone"], type="filepath", format="wav", label=t("record", lang))
                example_btn = gr.Button(t("example", lang), size="sm")
                granularity = gr.Radio(
                    [(t("utterance", lang), "utterance"), (t("frame", lang), "frame")],
                    value="utterance",
                    label=t("granularity", lang),
                    elem_id="granularity",
                )
                embedding = gr.Checkbox(False, label=t("embedding", lang))
                start = gr.Button(t("start", lang), variant="primary", elem_id="start")
            with gr.Column(scale=1):
                card = gr.HTML(f'<div class="ea-note">{t("no_result", lang)}</div>', elem_id="emotion-card")
                scores = gr.HTML(elem_id="scores")
        band = gr.HTML(render.dominant_band({}, lang), elem_id="dominant-band")
        timeline = gr.LinePlot(
            None,
            x="time",
            y="probability",
            color="emotion",
            label=t("timeline", lang),
            y_lim=[0, 1],
            color_map={render.label_text(k, lo): c for k, c in render.COLORS.items() for lo in ("en", "zh")},
            colors_in_legend=[],  # Vega's legend garbles emoji labels; the band's legend names the colours
            height=260,
            visible=False,
        )
        with gr.Row():
            log = gr.Textbox(label=t("log", lang), lines=9, interactive=False, elem_id="log")
            downloads = gr.File(label=t("downloads", lang), file_count="multiple", interactive=False, elem_id="downloads")
        result_json = gr.JSON(label=t("json", lang), visible=False)

        views = [card, scores, timeline, band, log, downloads]
        mic.stop_recording(lambda p: p, mic, file_in, api_visibility="private")
        example_btn.click(example_path, None, file_in, api_visibility="private")
        start.click(
            predict,
            [file_in, granularity, embedding, lang_state],
            result_json,
            api_name="predict",
            concurrency_limit=2,
        ).success(draw, [result_json, lang_state], views, api_visibility="private")
        lang_radio.change(
            relabel,
            [lang_radio, result_json],
            [lang_state, header, file_in, mic, example_btn, granularity, embedding, start, timeline, log, downloads, *views],
            api_visibility="private",
        )
    return demo
