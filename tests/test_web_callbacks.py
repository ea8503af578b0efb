"""The page's callbacks called directly (no browser, no server) with a tiny random engine, and the
registry that relabels the page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import pytest
from audio_files import speechlike, write_audio

from emotion_app.constants import LABEL_BY_KEY, LABEL_KEYS
from emotion_app.web.i18n import EN, ZH
from emotion_app.web.ui import page, tab_analyze, tab_batch, tab_compare, tab_long
from emotion_app.web.ui.boundary import begin
from emotion_app.web.ui.common import Texts, download_list, granularity_radio, show_error
from emotion_app.web.ui.tab_analyze import AnalyzeForm
from emotion_app.web.ui.tab_batch import BatchForm
from emotion_app.web.ui.tab_compare import CompareForm
from emotion_app.web.ui.tab_long import LongForm

CHINESE = re.compile(r"[\u4e00-\u9fff]")
SMOOTHING = {"method": "moving_average", "window": 11, "alpha": 0.2, "zero_phase": True, "min_duration_s": 0.2}


@pytest.fixture
def clip(tmp_path) -> Path:
    return write_audio(tmp_path / "speech.wav", speechlike(2.0, seed=3), 16000, "wav")


@pytest.fixture
def bad_file(tmp_path) -> Path:
    path = tmp_path / "broken.mp3"
    path.write_bytes(b"ID3 this is not really an mp3" * 20)
    return path


@pytest.fixture
def out(tmp_path) -> Path:
    return tmp_path / "outputs"


def folders(out: Path) -> list[str]:
    """The output folders written (not the outputs folder's own hidden files)."""
    return sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) if out.exists() else []


def test_run_analysis_returns_the_result_and_writes_its_files(tiny_engine, out, clip):
    result = tab_analyze.run_analysis(tiny_engine, out, None, str(clip), "utterance", False, lang="en")
    expected = tiny_engine.predict(clip)
    assert result["emotion"] in LABEL_KEYS and result["emotion"] == expected.emotion
    assert result["file"] == "speech.wav" and result["granularity"] == "utterance"
    assert folders(out) == [result["output_dir"]]
    paths = sorted((out / result["output_dir"]).iterdir())
    assert [p.name for p in paths] == ["processed_audio.wav", "result.json", "scores.png"]


def test_draw_shows_the_card_scores_timeline_and_downloads(tiny_engine, out, clip):
    form = AnalyzeForm(file=str(clip), granularity="frame", embedding=True, method="majority", window=5, lang="zh")
    kept = tab_analyze.analyze_clip(tiny_engine, out, None, form)
    result = kept.result
    assert result["smoothing"]["method"] == "majority" and result["smoothing"]["window"] == 5
    assert kept.frames.shape == (result["num_frames"], len(LABEL_KEYS))  # kept for re-smoothing
    drawn = tab_analyze.draw(kept, "zh", "smoothed")
    card, scores, band, view, timeline, segments, player, summary, log, downloads = (drawn[k] for k in tab_analyze.VIEWS)
    label = LABEL_BY_KEY[result["emotion"]]
    assert result["emotion"] in card and label.zh in card and "置信度" in card
    assert scores.count('class="ea-row"') == 9
    assert timeline.count("<polyline") >= 1 and 'role="img"' in timeline and "逐帧得分" in timeline
    assert band.count('class="ea-seg"') == len(result["segments"]) and 'aria-label="随时间变化的主要情感: 0:00.0' in band
    assert "文件: speech.wav" in log and result["output_dir"] in log
    assert {Path(p).name for p in downloads} >= {"result.json", "embedding.npy", "frames.csv", "segments.vtt"}
    assert all(Path(p).is_file() for p in downloads)
    assert view["visible"] and segments["visible"] and len(segments["value"]) == len(result["segments"])
    assert list(segments["value"].columns) == ["开始", "结束", "情感", "置信度"] and segments["value"].iloc[0, 0] == "0:00.0"
    assert player["visible"] is False and "时间占比" in summary and "(帧多数投票)" in summary
    assert tab_analyze.redraw_timeline(kept, "en", "raw") != tab_analyze.redraw_timeline(kept, "en", "smoothed")


def test_draw_without_a_result_says_what_to_do():
    card, scores, band, view, timeline, *_, downloads = tab_analyze.draw(None, "zh").values()
    assert "请上传或录制音频" in card and downloads is None and view["visible"] is False and timeline == ""


def test_an_utterance_result_points_to_frame_granularity_only_while_utterance_is_chosen(tiny_engine, out, clip):
    kept = tab_analyze.analyze_clip(tiny_engine, out, None, AnalyzeForm(file=str(clip)))
    assert "Choose frame granularity" in tab_analyze.draw(kept, "en", granularity="utterance")["band"]
    assert tab_analyze.draw(kept, "en", granularity="frame")["band"] == ""
    box, band = tab_analyze.granularity_changed("frame", kept, "en").values()
    assert box["visible"] and band == ""


def test_smoothing_changes_rerender_without_a_model_call(tiny_engine, out, clip, monkeypatch):
    kept = tab_analyze.analyze_clip(tiny_engine, out, None, AnalyzeForm(file=str(clip), granularity="frame", **SMOOTHING))
    calls = []
    monkeypatch.setattr(tiny_engine, "run_chunks", lambda *a, **k: calls.append(a) or pytest.fail("model called"))
    ewma = AnalyzeForm(granularity="frame", method="ewma", window=11, alpha=0.5, zero_phase=False, min_duration_s=0.0)
    views = tab_analyze.resmooth_views(tiny_engine, out, None, kept, ewma)
    again = views["kept"]
    assert calls == [] and again.result["smoothing"]["method"] == "ewma" and again.result["smoothing"]["alpha"] == 0.5
    assert again.folder != kept.folder and (again.folder / "processed_audio.wav").is_file()
    assert json.loads((again.folder / "result.json").read_text())["smoothing"]["zero_phase"] is False
    assert again.result["probabilities"] == kept.result["probabilities"]
    assert views["timeline"] != tab_analyze.draw(kept, "en")["timeline"]
    assert tab_analyze.resmooth_views(tiny_engine, out, None, None, ewma) == gr.skip()
    written = folders(out)
    assert tab_analyze.resmooth_views(tiny_engine, out, None, again, ewma) == gr.skip()  # the same smoothing: nothing to redo
    assert folders(out) == written
    assert [u["visible"] for u in tab_analyze.method_controls("ewma")] == [True, True, True]
    assert [u["visible"] for u in tab_analyze.method_controls("majority")] == [True, False, False]
    assert [u["visible"] for u in tab_analyze.method_controls("none")] == [False, False, False]


def test_a_new_file_clears_the_result_and_a_long_one_points_to_the_long_tab(tmp_path):
    long = write_audio(tmp_path / "call.wav", np.zeros(16000 * 200, np.float32), 16000, "wav")
    cleared = tab_analyze.new_file(str(long), "en")
    assert cleared["kept"] is None and "Upload or record" in cleared["card"] and cleared["downloads"] is None
    hint = cleared["hint"]
    assert hint["visible"] and "3:20 long" in hint["value"] and "Long recording" in hint["value"]
    assert tab_analyze.new_file(str(tmp_path / "missing.wav"), "en")["hint"]["visible"] is False


def test_start_shows_an_error_where_the_result_goes(tiny_engine, out, bad_file):
    begun = begin(tab_analyze.draw, "en")
    assert begun["start"]["interactive"] is False and begun["kept"] is None and 'aria-busy="true"' in begun["card"]
    assert set(begun) == {"start", "kept", *tab_analyze.VIEWS}
    shown = tab_analyze.start_analysis(tiny_engine, out, None, None, AnalyzeForm(file=str(bad_file), lang="zh"))
    kept, card, downloads, button, error = (shown[k] for k in ("kept", "card", "downloads", "start", "error"))
    assert kept is None and 'role="alert"' in card and "无法解码" in card and downloads is None
    assert button["interactive"] is True and error.startswith("无法解码")
    with pytest.raises(gr.Error, match="无法解码"):
        show_error(error)
    show_error("")  # no error: no toast


@pytest.mark.parametrize("lang, words", [("en", "not an audio or video file"), ("zh", "无法解码")])
def test_bad_file_is_a_gr_error_in_the_page_language_and_writes_nothing(tiny_engine, out, bad_file, lang, words):
    with pytest.raises(gr.Error) as err:
        tab_analyze.run_analysis(tiny_engine, out, None, str(bad_file), "utterance", False, lang=lang)
    assert words in err.value.message and "broken.mp3" in err.value.message
    if lang == "zh":
        assert err.value.message.startswith("无法解码")
    assert folders(out) == []


def test_missing_model_and_bad_option_are_gr_errors(tiny_engine, out, clip):
    with pytest.raises(gr.Error, match="模型无法加载：weights missing"):
        tab_analyze.run_analysis(None, out, "weights missing", str(clip), "utterance", False, lang="zh")
    with pytest.raises(gr.Error, match="odd number of frames"):
        tab_analyze.run_analysis(tiny_engine, out, None, str(clip), "frame", False, "majority", 4)
    assert folders(out) == []


def test_compare_two_clips(tiny_engine, tmp_path, clip, bad_file):
    other = write_audio(tmp_path / "other.flac", speechlike(1.5, seed=8), 16000, "flac")
    cmp = tab_compare.run_compare(tiny_engine, None, CompareForm(files=[str(clip), str(other), str(bad_file)], lang="zh"))
    status, table, radar, sim = tab_compare.draw_compare(cmp, "zh").values()
    table = table["value"]
    assert isinstance(table, pd.DataFrame) and list(table.columns) == ["文件", "情感", "置信度", "错误"]
    assert list(table["文件"]) == ["speech.wav", "other.flac", "broken.mp3"] and list(table["错误"])[:2] == ["", ""]
    assert table["错误"].iloc[2].startswith("无法解码") and "not an audio" not in table["错误"].iloc[2]  # Chinese only
    for path, shown in zip((clip, other), table["情感"]):
        assert LABEL_BY_KEY[tiny_engine.predict(path).emotion].zh in shown
    assert '<img src="data:image/png;base64,' in radar and 'alt="雷达图' in radar and "speech.wav" in radar
    assert 'alt="各音频特征向量的余弦相似度：speech.wav – other.flac ' in sim
    with pytest.raises(gr.Error, match="请至少上传两个文件"):
        tab_compare.run_compare(tiny_engine, None, CompareForm(files=[str(clip)], lang="zh"))
    shown = tab_compare.start_compare(tiny_engine, None, CompareForm(files=[str(clip), str(bad_file)]))
    kept, card, button, error = (shown[k] for k in ("kept", "card", "start", "error"))
    assert kept is None and "Fewer than two files could be analysed: broken.mp3: broken.mp3: not an audio" in card
    assert button["interactive"] and error


def test_long_recording_in_windows(tiny_engine, out, tmp_path):
    path = write_audio(tmp_path / "talk.wav", speechlike(3.0, seed=4), 16000, "wav")
    result = tab_long.run_recording(tiny_engine, out, None, str(path), "window", 0.5, 0.25, 0.3, 30.0, 1.0, 1.0, "en")
    assert result["granularity"] == "segments" and len(result["segments"]) == 3
    assert {s["emotion"] for s in result["segments"]} <= set(LABEL_KEYS)
    form = LongForm(file=str(path), mode="window", window_s=1.0, hop_s=1.0)
    shown = tab_long.start_recording(tiny_engine, out, None, form)
    kept, band, table, summary, downloads, error = (shown[k] for k in ("kept", "band", "table", "summary", "downloads", "error"))
    assert band.count('class="ea-seg"') == 3 and table["visible"] and "Speech" in summary and error == ""
    assert list(table["value"].iloc[1, :2]) == ["0:01.0", "0:02.0"]
    assert {Path(p).name for p in downloads} >= {"segments.csv", "segments.vtt"} and all(Path(p).is_file() for p in downloads)
    played = tab_long.play_segment(kept, "en", gr.SelectData(None, {"index": [1, 0], "value": "0:01.0"}))
    rate, samples = played["value"]
    assert rate == 16000 and len(samples) == 16000 and played["visible"]


def test_batch_with_a_bad_file(tiny_engine, out, clip, bad_file):
    run = tab_batch.run_batch(tiny_engine, out, None, BatchForm(files=[str(clip), str(bad_file)]))
    status, table, downloads = tab_batch.draw_batch(run, "en").values()
    assert len(table["value"]) == 2 and "1 done, 1 failed, 2 files" in status
    row = table["value"].iloc[0]
    assert row["duration"] == "0:02.0" and row["confidence"].endswith("%") and row["😠 angry"].endswith("%")
    assert table["value"]["error"].iloc[1].startswith("broken.mp3: not an audio or video file")
    assert [Path(p).name for p in downloads] == ["results.csv", "results.jsonl", "results.zip"]
    assert all(Path(p).is_file() for p in downloads)
    zh = tab_batch.draw_batch(run, "zh")["table"]["value"]
    assert list(zh.columns[:5]) == ["文件", "时长", "情感", "置信度", "错误"] and "😠 生气" in zh.columns
    assert zh["错误"].iloc[1].startswith("无法解码") and "not an audio" not in zh["错误"].iloc[1]
    with pytest.raises(gr.Error, match="请至少上传一个文件"):
        tab_batch.run_batch(tiny_engine, out, None, BatchForm(files=[], lang="zh"))


def test_registry_creates_components_in_the_language_and_relabels_them():
    with gr.Blocks():
        texts = Texts("zh")
        start = texts(gr.Button, value_key="start", variant="primary")
        granularity = granularity_radio(texts)
        downloads = download_list(texts, "x-downloads")
    assert len(texts) == 3 and texts.components == [start, granularity, downloads]
    assert start.value == "开始识别" and granularity.label == "粒度" and downloads.label == "下载"
    assert downloads.file_count == "multiple" and downloads.elem_id == "x-downloads"
    words = texts.updates("en")
    assert words[0]["value"] == "Start recognition"
    assert words[1]["label"] == "Granularity"
    assert words[1]["choices"] == [("utterance", "utterance"), ("frame (50 per second)", "frame")]
    assert words[2] == {"__type__": "update", "label": "Downloads"}


def page_event(demo: gr.Blocks, name: str):
    return next(f for f in demo.fns.values() if f.name == name)


def test_language_switch_relabels_every_labelled_component(tiny_engine, out, monkeypatch):
    made = []
    monkeypatch.setattr(page, "Texts", lambda lang: made.append(Texts(lang)) or made[-1])
    demo = page.build_demo(tiny_engine, out)
    event = page_event(demo, "relabel")
    texts = made[0]
    registered = event.outputs[2 : 2 + len(texts)]
    views = len(event.outputs) - 2 - len(texts)  # each tab's result, redrawn
    assert registered == texts.components and len(registered) >= 44 and views >= 10 + 4 + 7 + 3
    assert len({id(c) for c in registered}) == len(registered)
    # every component that shows a label or a button text, in every tab, is relabelled (the language
    # switch says "Language / 语言" in both languages; hidden API triggers show nothing)
    shown = [b for b in demo.blocks.values() if getattr(b, "label", None) or (isinstance(b, gr.Button) and b.visible)]
    assert {getattr(b, "label", None) for b in shown if all(b is not c for c in registered)} == {"Language / 语言"}
    kept = [None] * (len(event.inputs) - 1)
    zh = event.fn("zh", *kept)
    assert zh[0] == "zh" and "语音情感识别" in zh[1]
    for update in zh[2:-views]:
        words = [update.get("label"), update.get("value"), *(c[0] for c in update.get("choices", []))]
        assert any(w and CHINESE.search(w) for w in words), update
    assert all(CHINESE.search(v) for v in zh[-views:] if isinstance(v, str) and v)  # the placeholders
    hidden = [u for c, u in zip(registered, zh[2:-views]) if u.get("visible") is False]
    assert len(hidden) == 7  # the uploads (a turns file's too) and the recorder, remounted so that Gradio's own texts follow
    en = event.fn("en", *kept)
    for component, update in zip(registered, en[2:-views]):  # back to the words the page was built with
        assert update.get("label", getattr(component, "label", None)) == getattr(component, "label", None)
        if "value" in update:
            assert update["value"] == component.value


def test_every_string_has_both_languages_and_chinese_is_chinese():
    assert set(EN) == set(ZH)
    same = {k for k in EN if EN[k] == ZH[k]}
    assert same <= {"language"}, same  # "Language / 语言" says both
    latin = re.compile(r"[A-Za-z][\w.+]*")  # words, file names, "emotion2vec+"
    allowed = {"emotion2vec", "emotion2vec+", "Language", "embedding.npy", "EWMA", "alpha", "VAD", "MLP", "Hz"}  # names, units
    allowed |= {"zip", "CSV", "JSONL", "RTTM", "WebVTT", "SRT", "whisper", "JSON"}  # formats
    syntax = re.compile(r"\{[a-z_]+\}|`[^`]*`|\w+=[^,，\s]*")  # placeholders, code, examples such as ang=angry
    for key, text in ZH.items():
        words = set(latin.findall(syntax.sub("", text))) - allowed
        assert not words, (key, text)


def test_gradio_api_signatures(tiny_engine, out):
    demo = page.build_demo(tiny_engine, out)
    api = demo.get_api_info()["named_endpoints"]
    assert sorted(api) == ["/predict", "/recording"]
    params = [(p["parameter_name"], p["parameter_default"]) for p in api["/predict"]["parameters"]]
    assert params == [
        ("path", None),
        ("granularity", "utterance"),
        ("extract_embedding", False),
        ("method", "moving_average"),
        ("window", 11),
        ("alpha", 0.2),
        ("zero_phase", True),
        ("min_duration_s", 0.2),
        ("labels", []),
        ("sentiment", False),
        ("model", None),  # a served model's name (build_app's page: the base model's by default)
    ]
    assert [p["parameter_name"] for p in api["/recording"]["parameters"]] == [
        "path", "mode", "threshold", "min_speech", "min_silence", "max_segment", "window_s", "hop_s",
        "speakers", "names", "turns", "labels", "sentiment",
    ]  # fmt: skip
    for name in ("run_analysis", "start_analysis", "start_recording", "start_compare", "start_batch"):
        assert page_event(demo, name).tracks_progress, name


def test_a_form_event_through_gradio_reads_the_form_and_answers_by_component(tiny_engine, out):
    """Gradio's own call of a tab's Start: the set of inputs read into the form (its language among
    them), the callback's names answered as {component: update}, each in its place."""
    import asyncio

    from gradio.state_holder import SessionState

    demo = page.build_demo(tiny_engine, out)
    event = page_event(demo, "start_batch")
    assert event.inputs_as_dict and len(event.inputs) == 4  # files, granularity, segment, lang
    state = SessionState(demo)
    for component in event.inputs:
        if isinstance(component, gr.State):
            state[component._id] = "zh"  # the page's language: a State's value comes from the session
    values = [getattr(c, "value", None) for c in event.inputs]
    answer = asyncio.run(demo.process_api(block_fn=event, inputs=values, state=state))
    drawn = dict(zip((getattr(c, "elem_id", None) for c in event.outputs), answer["data"]))
    assert "请至少上传一个文件" in drawn["batch-status"] and 'role="alert"' in drawn["batch-status"]
    assert drawn["batch-start"]["interactive"] is True and drawn["batch-table"]["visible"] is False


def test_smoothing_fields_are_read_in_frame_mode_only(tiny_engine, out, clip):
    # the form always sends the smoothing inputs; in utterance mode they are hidden and ignored
    result = tab_analyze.run_analysis(tiny_engine, out, None, str(clip), "utterance", False, "majority", 4)
    assert result["granularity"] == "utterance" and "frames" not in result


def test_stylesheet_is_read_from_the_package():
    css = page.stylesheet()
    assert css == (Path(page.__file__).parent / "style.css").read_text(encoding="utf-8")
    assert ".ea-card {" in css and ".ea-emo {" in css


def test_progress_names_the_stage_counts_and_estimates_the_time_left(monkeypatch):
    from emotion_app.web.ui import progress as progress_module
    from emotion_app.web.ui.progress import Pace, Reporter

    shown, now = [], [100.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: now[0])
    report = Reporter(lambda fraction, desc: shown.append((fraction, desc)), "zh")
    report(0.01, "start")
    now[0] += 10
    report(0.5, "segments 3/12")
    assert shown == [(0.01, "正在开始"), (0.5, "片段 3/12 · 预计还需 10 秒")]
    report(1.5, "files 2/2")
    assert shown[-1] == (1.0, "文件 2/2")  # clamped; nothing left to estimate
    pace = Pace("cpu")
    assert pace.estimate(100) == pytest.approx(30) and pace.estimate(None) is None
    pace.learn(100, 10)
    assert pace.estimate(100) == pytest.approx(20)  # halfway to what this server showed


def test_a_label_set_and_sentiment_on_the_page(tiny_engine, out, clip, tmp_path):
    """The page's label set (any order ticked) and sentiment switch: 4 score rows in the model's
    order renormalised, the card's sentiment line in the page's language, the same numbers as the engine."""
    form = AnalyzeForm(file=str(clip), **SMOOTHING, labels=["sad", "neutral", "angry", "happy"], sentiment=True, lang="zh")
    shown = tab_analyze.start_analysis(tiny_engine, out, None, None, form)
    card, scores, error = shown["card"], shown["scores"], shown["error"]
    result = shown["kept"].result
    expected = tiny_engine.predict(clip, labels="angry,happy,neutral,sad")
    assert error == "" and result["label_set"] == ["angry", "happy", "neutral", "sad"] and result["emotion"] == expected.emotion
    assert list(result["scores"]) == result["label_set"] and sum(result["scores"].values()) == pytest.approx(1, abs=0.01)
    assert (
        scores.count('class="ea-row"') == 4
        and "情感倾向" in card
        and result["sentiment"]["label"] in ("positive", "negative", "neutral")
    )
    long = tmp_path / "talk.wav"
    write_audio(long, speechlike(3.0, seed=4), 16000, "wav")
    form = LongForm(file=str(long), mode="window", window_s=1.0, hop_s=1.0, labels=["happy", "sad"], sentiment=True)
    shown = tab_long.start_recording(tiny_engine, out, None, form)
    card, segments = shown["card"], shown["kept"].result["segments"]
    assert {s["emotion"] for s in segments} <= {"happy", "sad"} and all(set(s["scores"]) == {"happy", "sad"} for s in segments)
    assert all("sentiment" in s for s in segments) and "Sentiment" in card


def test_resmoothing_keeps_the_label_set_and_sentiment(tiny_engine, out, clip):
    form = AnalyzeForm(file=str(clip), granularity="frame", **SMOOTHING, labels=["happy", "neutral", "sad"], sentiment=True)
    kept = tab_analyze.analyze_clip(tiny_engine, out, None, form)
    majority = AnalyzeForm(granularity="frame", method="majority", window=5)  # the set is the kept analysis's
    again = tab_analyze.resmooth_views(tiny_engine, out, None, kept, majority)["kept"]
    first, second = kept.result, again.result
    assert second["smoothing"]["method"] == "majority" and second["output_dir"] != first["output_dir"]
    assert second["label_set"] == ["happy", "neutral", "sad"] and second["sentiment"] == first["sentiment"]
    assert second["segments"] and all(s["sentiment"]["label"] in ("positive", "negative", "neutral") for s in second["segments"])
