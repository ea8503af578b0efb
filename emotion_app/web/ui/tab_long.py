"""The page's long-recording tab: segmentation, progress, segment timeline, table, player, downloads.

`run_recording` is the Gradio API's `recording` (api_name="recording"): (path, mode, threshold,
min_speech, min_silence, max_segment, window_s, hop_s, ...) -> result JSON, on a hidden trigger.
The page's button runs KeptTab's steps (common.py): `begin` (disabled, cleared), `start_recording`
(progress with the segments done and the time left on the card; an error drawn where the result
goes) and `show_error` (the toast), on the tab's form (`LongForm`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gradio as gr

from ...audio.segmenter import SegmentOptions
from ...service import Analysis, analyze, rename_speakers
from ..i18n import t
from . import render
from .boundary import KeptTab, LabelledForm, View, finish, request_options
from .common import PRIVATE, Texts, api_upload, audio_upload, bind, download_list, guarded, label_set_inputs, play_segment
from .conversation_view import conversation_html
from .progress import Reporter

MODE_CHOICES = [("seg_vad", "vad"), ("seg_window", "window")]
SPEAKER_CHOICES = [("spk_none", "none"), ("spk_channels", "channels"), ("spk_auto", "auto"), ("spk_2", "2"), ("spk_3", "3"),
                   ("spk_4", "4")]  # fmt: skip
TURN_TYPES = [".rttm", ".vtt", ".srt", ".json"]
SEGMENT = SegmentOptions()  # the sliders' defaults
API_INPUTS = ("api_file", "mode", "threshold", "min_speech", "min_silence", "max_segment", "window_s", "hop_s", "lang",
              "speakers", "names", "api_turns", "labels", "sentiment")  # fmt: skip  # run_recording's parameters


@dataclass(frozen=True)
class LongForm(LabelledForm):
    """The tab's form. Only the options of the chosen mode are asked for (the form always has both
    sets); a `turns` file (RTTM, WebVTT, SRT, whisper JSON) gives the segments and their speakers
    instead; `speakers` (none, channels, auto, a number) and `names`: who speaks in each segment."""

    file: str | None = None
    mode: str = "vad"
    threshold: float = SEGMENT.threshold
    min_speech: float = SEGMENT.min_speech_s
    min_silence: float = SEGMENT.min_silence_s
    max_segment: float = SEGMENT.max_segment_s
    window_s: float = SEGMENT.window_s
    hop_s: float = SEGMENT.hop_s
    speakers: str = "none"
    names: str = ""
    turns: str | None = None

    def fields(self) -> dict:
        if self.turns:  # the turns are the segments: no segmentation options
            return {"turns": self.turns, "names": self.names}
        if self.mode == "vad":
            fields = {"segment": "vad", "threshold": self.threshold, "min_speech_s": self.min_speech}
            fields |= {"min_silence_s": self.min_silence, "max_segment_s": self.max_segment}
        else:
            fields = {"segment": self.mode, "window_s": self.window_s, "hop_s": self.hop_s}
        if (self.speakers or "none") != "none":
            fields |= {"speakers": self.speakers, "names": self.names}
        return fields


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
    *,
    memory=None,
) -> dict:
    """Segment and analyse a long recording; returns result.json's content with download URLs. The
    parameters are the API's (a LongForm's fields; `lang` is the page's); `memory`: the server's
    memory budget."""
    form = LongForm(
        lang=lang, labels=labels, sentiment=sentiment, file=path, mode=mode, threshold=threshold, min_speech=min_speech,
        min_silence=min_silence, max_segment=max_segment, window_s=window_s, hop_s=hop_s, speakers=speakers, names=names,
        turns=turns,
    )  # fmt: skip
    return analyze_recording(engine, outputs_dir, load_error, form, progress, memory).response()


def analyze_recording(engine, outputs_dir, load_error, form: LongForm, progress=None, memory=None) -> Analysis:
    """One recording through the service, with progress (segments done, time left), within the
    server's `memory` budget (memory.MemoryBudget; None: none)."""
    with guarded(engine, load_error, form.lang, "recording analysis"), Reporter(progress, form.lang) as report:
        report(0.01, "start")  # at once: the first stage reports once the VAD model is loaded
        request = request_options(form)
        name = Path(form.file).name if form.file else None
        return analyze(
            engine, form.file, request, outputs_dir=outputs_dir, name=name, lang=form.lang, progress=report, budget=memory
        )


def start_recording(engine, outputs_dir, load_error, form: LongForm, progress=gr.Progress(), *, memory=None) -> dict:
    """The page's button: the analysis kept and drawn (KeptTab's skeleton)."""
    run = partial(analyze_recording, engine, outputs_dir, load_error, form, progress, memory)
    return finish(run, draw_recording, form.lang)


def rename(engine, outputs_dir, load_error, kept, names, lang):
    """The names typed after the analysis: the conversation re-read with them into a new output
    folder (no model call): the kept analysis and its views."""
    if kept is None or kept.report.conversation is None:
        return gr.skip()
    with guarded(engine, load_error, lang, "renaming speakers"):
        kept = rename_speakers(kept, names, outputs_dir=outputs_dir, lang=lang)
    return {"kept": kept, **draw_recording(kept, lang)}


def draw_recording(kept: Analysis | None, lang: str) -> dict:
    """The card, band (and a conversation's lanes), segments table, segment player, summary, log and
    downloads of a kept recording."""
    hidden = gr.update(value=None, visible=False)
    if kept is None:
        note = render.note_card(t("no_result_long", lang))
        return {"card": note, "band": "", "table": hidden, "player": hidden, "summary": "", "log": "", "downloads": None}
    report = kept.report
    return {
        "card": render.emotion_card(report, lang),
        "band": render.dominant_band(report, lang) + conversation_html(report, lang),  # a conversation: its lanes
        "table": gr.update(value=render.segments_table(report, lang), visible=bool(report.segments)),
        "player": hidden,
        "summary": render.summary_html(report, lang),
        "log": render.processing_log(report, lang),
        "downloads": [str(p) for p in kept.files.values()],
    }


def build(texts: Texts, engine, outputs_dir: Path, load_error: str | None, lang_state: gr.State, memory=None) -> KeptTab:
    """Lay out the tab in the current gr.Tabs and wire its events (`memory`: the server's memory budget)."""
    d = SEGMENT
    with texts(gr.Tab, label_key="tab_long", id="long"):
        v = View(lang=lang_state, kept=gr.State(None))
        with gr.Row(elem_classes="ea-stack"):
            with gr.Column(scale=1, min_width=300):
                v["file"] = audio_upload(texts, "long_file", "long-file", remount=True)
                v["mode"] = texts(gr.Radio, label_key="segmentation", choice_keys=MODE_CHOICES, value="vad", elem_id="long-mode")
                v["speakers"] = texts(
                    gr.Dropdown, label_key="speakers", choice_keys=SPEAKER_CHOICES, value="none", elem_id="long-speakers"
                )
                with gr.Row():
                    v["names"] = texts(gr.Textbox, label_key="speaker_names", value="", elem_id="long-names", scale=3)
                    v["rename"] = texts(gr.Button, value_key="rename_speakers", elem_id="long-rename", scale=1, size="sm")
                v["turns"] = texts(
                    gr.File, label_key="turns_file", file_types=TURN_TYPES, type="filepath", elem_id="long-turns", remount=True
                )
                v["start"] = texts(gr.Button, value_key="long_start", variant="primary", elem_id="long-start")
                v["labels"], v["sentiment"] = label_set_inputs(texts, "long")
                with texts(gr.Accordion, label_key="seg_options", open=False):
                    v["threshold"] = texts(gr.Slider, 0.05, 0.95, value=d.threshold, step=0.05, label_key="vad_threshold")
                    v["min_speech"] = texts(gr.Slider, 0.0, 2.0, value=d.min_speech_s, step=0.05, label_key="min_speech")
                    v["min_silence"] = texts(gr.Slider, 0.0, 3.0, value=d.min_silence_s, step=0.05, label_key="min_silence")
                    v["max_segment"] = texts(gr.Slider, 5.0, 120.0, value=d.max_segment_s, step=1.0, label_key="max_segment")
                    v["window_s"] = texts(gr.Slider, 1.0, 120.0, value=d.window_s, step=0.5, label_key="window_s")
                    v["hop_s"] = texts(gr.Slider, 1.0, 120.0, value=d.hop_s, step=0.5, label_key="hop_s")
            with gr.Column(scale=1, min_width=300):
                v["card"] = gr.HTML(render.note_card(t("no_result_long", texts.lang)), elem_id="long-card")
                v["summary"] = gr.HTML(elem_id="long-summary")
        v["band"] = gr.HTML(elem_id="long-band")
        v["table"] = texts(gr.Dataframe, label_key="segments", visible=False, interactive=False, elem_id="long-segments")
        v["player"] = texts(
            gr.Audio, label_key="segment_audio", type="numpy", interactive=False, autoplay=True, visible=False,
            elem_id="long-segment-audio",
        )  # fmt: skip
        with gr.Row(elem_classes="ea-stack"):
            v["log"] = texts(gr.Textbox, label_key="log", lines=8, interactive=False, elem_id="long-log", min_width=300)
            v["downloads"] = download_list(texts, "long-downloads")
        result_json = gr.JSON(visible=False)
        api = gr.Button(visible=False)  # the API's `recording` trigger
        v["api_file"], v["api_turns"] = api_upload(), api_upload()  # its files: any name (common.api_upload)
        api_in = v.outputs(*API_INPUTS)
        queue = {"concurrency_limit": 1, "concurrency_id": "recording"}
        api_fn = bind(run_recording, engine, outputs_dir, load_error, memory=memory)
        api.click(api_fn, api_in, result_json, api_name="recording", **queue)
        tab = KeptTab(v, draw_recording, ("card", "band", "table", "player", "summary", "log", "downloads"))
        start = v.handler(start_recording, engine, outputs_dir, load_error, form=LongForm, keywords={"memory": memory})
        tab.wire(start, LongForm, "file", **queue)
        v["rename"].click(
            v.handler(rename, engine, outputs_dir, load_error), v.outputs("kept", "names", "lang"), v.outputs("kept", *tab.names),
            **PRIVATE,
        )  # fmt: skip
        v["table"].select(play_segment, v.outputs("kept", "lang"), v["player"], **PRIVATE)
    return tab
