"""The page's long-recording tab: segmentation, progress, segment timeline, table, player, downloads.

`run_recording` is the Gradio API's `recording` (api_name="recording"): (path, mode, threshold,
min_speech, min_silence, max_segment, window_s, hop_s) -> result JSON, on a hidden trigger. The
page's button runs `begin` (disabled, cleared), `start_recording` (progress with the segments done
and the time left on the card; an error drawn where the result goes) and `show_error` (the toast).
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ...audio.segmenter import SegmentOptions
from ...request import RequestOptions
from ...service import Analysis, analyze, rename_speakers
from ..i18n import t
from . import render
from .common import (
    KeptTab,
    Texts,
    audio_upload,
    bind,
    busy,
    download_list,
    guarded,
    label_set_fields,
    label_set_inputs,
    play_segment,
    ready,
    show_error,
)
from .conversation_view import conversation_html
from .progress import Reporter

MODE_CHOICES = [("seg_vad", "vad"), ("seg_window", "window")]
SPEAKER_CHOICES = [("spk_none", "none"), ("spk_channels", "channels"), ("spk_auto", "auto"), ("spk_2", "2"), ("spk_3", "3"),
                   ("spk_4", "4")]  # fmt: skip
TURN_TYPES = [".rttm", ".vtt", ".srt", ".json"]


def run_recording(
    engine,
    outputs_dir: Path,
    load_error: str | None,
    path,
    mode,
    threshold,
    min_speech,
    min_silence,
    max_segment,
    window_s,
    hop_s,
    lang="en",
    speakers="none",
    names="",
    turns=None,
    labels=None,
    sentiment=False,
    progress=gr.Progress(),
) -> dict:
    """Segment and analyse a long recording; returns result.json's content with download URLs.
    Only the options of the chosen mode are sent (the form always has both sets). `speakers`
    (none, channels, auto, a number) and `names`, or a `turns` file (RTTM, WebVTT, SRT, whisper JSON):
    who speaks in each segment, and the conversation's readings; `labels` (a label set) and `sentiment`."""
    options = (threshold, min_speech, min_silence, max_segment, window_s, hop_s)
    who = (speakers, names, turns)
    extra = label_set_fields(labels, sentiment)
    return analyze_recording(engine, outputs_dir, load_error, path, mode, options, lang, progress, who, extra).response()


def analyze_recording(
    engine, outputs_dir, load_error, path, mode, options, lang, progress, who=("none", "", None), extra=None
) -> Analysis:
    """One recording through the service, with progress (segments done, time left); `extra`: more
    request fields (the label set and sentiment)."""
    lang = lang or "en"
    threshold, min_speech, min_silence, max_segment, window_s, hop_s = options
    speakers, names, turns = who
    with guarded(engine, load_error, lang, "recording analysis"), Reporter(progress, lang) as report:
        report(0.01, "start")  # at once: the first stage reports once the VAD model is loaded
        if turns:  # the turns are the segments: no segmentation options
            fields = {"turns": turns, "names": names}
        elif mode == "vad":
            fields = dict(segment="vad", threshold=threshold, min_speech_s=min_speech, min_silence_s=min_silence)
            fields["max_segment_s"] = max_segment
        else:
            fields = {"segment": mode, "window_s": window_s, "hop_s": hop_s}
        if not turns and (speakers or "none") != "none":
            fields |= {"speakers": speakers, "names": names}
        name = Path(path).name if path else None
        request = RequestOptions.from_fields(fields | (extra or {}))
        return analyze(engine, path, request, outputs_dir=outputs_dir, name=name, lang=lang, progress=report)


def start_recording(
    engine, outputs_dir, load_error, path, mode, threshold, min_speech, min_silence, max_segment, window_s, hop_s, lang,
    speakers="none", names="", turns=None, labels=None, sentiment=False, progress=gr.Progress(),
) -> list:  # fmt: skip
    """The page's button: [kept analysis, *views, button, error]."""
    options = (threshold, min_speech, min_silence, max_segment, window_s, hop_s)
    who, extra = (speakers, names, turns), label_set_fields(labels, sentiment)
    try:
        kept = analyze_recording(engine, outputs_dir, load_error, path, mode, options, lang, progress, who, extra)
    except gr.Error as exc:
        return [None, render.error_card(exc.message, lang), *cleared()[1:], ready(), exc.message]
    return [kept, *draw_recording(kept, lang), ready(), ""]


def rename(engine, outputs_dir, load_error, kept, names, lang) -> list:
    """The names typed after the analysis: the conversation re-read with them into a new output
    folder (no model call). [kept, *views]."""
    if kept is None or kept.report.conversation is None:
        return [gr.skip()] * (1 + len(cleared()))
    with guarded(engine, load_error, lang, "renaming speakers"):
        kept = rename_speakers(kept, names, outputs_dir=outputs_dir, lang=lang)
    return [kept, *draw_recording(kept, lang)]


def cleared(note: str = "") -> list:
    hidden = gr.update(value=None, visible=False)
    return [note, "", hidden, hidden, "", "", None]


def begin(lang: str) -> list:
    """[button, kept, *views] the moment the button is pressed."""
    return [busy(), None, render.working_card(lang), *cleared()[1:]]


def new_file(lang: str) -> list:
    """[kept, *views] after a new upload: the old result goes."""
    return [None, *cleared(render.note_card(t("no_result_long", lang)))]


def draw_recording(kept: Analysis | None, lang: str) -> list:
    """[card, band, segments table, segment player, summary, log, downloads] of a kept recording."""
    if kept is None:
        return cleared(render.note_card(t("no_result_long", lang)))
    report = kept.report
    return [
        render.emotion_card(report, lang),
        render.dominant_band(report, lang) + conversation_html(report, lang),  # a conversation: its lanes
        gr.update(value=render.segments_table(report, lang), visible=bool(report.segments)),
        gr.update(value=None, visible=False),
        render.summary_html(report, lang),
        render.processing_log(report, lang),
        [str(p) for p in kept.files.values()],
    ]


def build(texts: Texts, engine, outputs_dir: Path, load_error: str | None, lang_state: gr.State) -> KeptTab:
    """Lay out the tab in the current gr.Tabs and wire its events."""
    d = SegmentOptions()
    with texts(gr.Tab, label_key="tab_long", id="long"):
        with gr.Row(elem_classes="ea-stack"):
            with gr.Column(scale=1, min_width=300):
                file_in = audio_upload(texts, "long_file", "long-file", remount=True)
                mode = texts(gr.Radio, label_key="segmentation", choice_keys=MODE_CHOICES, value="vad", elem_id="long-mode")
                speakers = texts(
                    gr.Dropdown, label_key="speakers", choice_keys=SPEAKER_CHOICES, value="none", elem_id="long-speakers"
                )
                with gr.Row():
                    names = texts(gr.Textbox, label_key="speaker_names", value="", elem_id="long-names", scale=3)
                    rename_button = texts(gr.Button, value_key="rename_speakers", elem_id="long-rename", scale=1, size="sm")
                turns = texts(
                    gr.File, label_key="turns_file", file_types=TURN_TYPES, type="filepath", elem_id="long-turns", remount=True
                )
                start = texts(gr.Button, value_key="long_start", variant="primary", elem_id="long-start")
                label_set = label_set_inputs(texts, "long")
                with texts(gr.Accordion, label_key="seg_options", open=False):
                    options = [
                        texts(gr.Slider, 0.05, 0.95, value=d.threshold, step=0.05, label_key="vad_threshold"),
                        texts(gr.Slider, 0.0, 2.0, value=d.min_speech_s, step=0.05, label_key="min_speech"),
                        texts(gr.Slider, 0.0, 3.0, value=d.min_silence_s, step=0.05, label_key="min_silence"),
                        texts(gr.Slider, 5.0, 120.0, value=d.max_segment_s, step=1.0, label_key="max_segment"),
                        texts(gr.Slider, 1.0, 120.0, value=d.window_s, step=0.5, label_key="window_s"),
                        texts(gr.Slider, 1.0, 120.0, value=d.hop_s, step=0.5, label_key="hop_s"),
                    ]
            with gr.Column(scale=1, min_width=300):
                card = gr.HTML(render.note_card(t("no_result_long", texts.lang)), elem_id="long-card")
                summary = gr.HTML(elem_id="long-summary")
        band = gr.HTML(elem_id="long-band")
        table = texts(gr.Dataframe, label_key="segments", visible=False, interactive=False, elem_id="long-segments")
        player = texts(
            gr.Audio, label_key="segment_audio", type="numpy", interactive=False, autoplay=True, visible=False,
            elem_id="long-segment-audio",
        )  # fmt: skip
        with gr.Row(elem_classes="ea-stack"):
            log = texts(gr.Textbox, label_key="log", lines=8, interactive=False, elem_id="long-log", min_width=300)
            downloads = download_list(texts, "long-downloads")
        result_json = gr.JSON(visible=False)
        api = gr.Button(visible=False)  # the API's `recording` trigger
        tab = KeptTab(gr.State(None), draw_recording, [card, band, table, player, summary, log, downloads])
        private = {"api_visibility": "private"}
        form = [file_in, mode, *options]
        who = [speakers, names, turns, *label_set]
        api.click(
            bind(run_recording, engine, outputs_dir, load_error), [*form, lang_state, *who], result_json,
            api_name="recording", concurrency_limit=1, concurrency_id="recording",
        )  # fmt: skip
        error = gr.State("")
        start.click(begin, lang_state, [start, tab.kept, *tab.views], queue=False, **private).then(
            bind(start_recording, engine, outputs_dir, load_error), [*form, lang_state, *who],
            [tab.kept, *tab.views, start, error], show_progress_on=card, concurrency_limit=1, concurrency_id="recording",
            **private,
        ).then(show_error, error, None, **private)  # fmt: skip
        rename_button.click(
            bind(rename, engine, outputs_dir, load_error), [tab.kept, names, lang_state], [tab.kept, *tab.views], **private
        )
        file_in.change(new_file, lang_state, [tab.kept, *tab.views], **private)
        table.select(play_segment, [tab.kept, lang_state], player, **private)
    return tab
