"""The page's callbacks called directly (no browser, no server) with a tiny random engine, and the
registry that relabels the page."""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest
from audio_files import speechlike, write_audio

from emotion_app.constants import LABEL_BY_KEY, LABEL_KEYS
from emotion_app.web import page, tab_analyze, tab_batch, tab_compare, tab_long
from emotion_app.web.common import Texts, download_list, download_paths, granularity_radio

CHINESE = re.compile(r"[\u4e00-\u9fff]")


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
    paths = download_paths(out, result)
    assert sorted(Path(p).name for p in paths) == ["processed_audio.wav", "result.json", "scores.png"]
    assert all(Path(p).is_file() for p in paths)


def test_draw_shows_the_card_scores_timeline_and_downloads(tiny_engine, out, clip):
    result = tab_analyze.run_analysis(tiny_engine, out, None, str(clip), "frame", True, "majority", 5, lang="zh")
    assert result["smoothing"]["method"] == "majority" and result["smoothing"]["window"] == 5
    card, scores, timeline, band, log, downloads, view, segments, summary = tab_analyze.draw(out, result, "zh", "smoothed")
    label = LABEL_BY_KEY[result["emotion"]]
    assert result["emotion"] in card and label.zh in card and "置信度" in card
    assert scores.count('class="ea-row"') == 9
    assert timeline["visible"] and len(timeline["value"]) == 9 * result["num_frames"]
    assert band.count('class="ea-seg"') == len(result["segments"])
    assert "文件: speech.wav" in log and result["output_dir"] in log
    assert {Path(p).name for p in downloads} >= {"result.json", "embedding.npy", "frames.csv", "segments.vtt"}
    assert all(Path(p).is_file() for p in downloads)
    assert view["visible"] and segments["visible"] and len(segments["value"]) == len(result["segments"])
    assert "时间占比" in summary
    raw = tab_analyze.redraw_timeline(result, "en", "raw")
    assert raw["visible"] and not raw["value"].equals(timeline["value"])


def test_draw_without_a_result_says_what_to_do(out):
    card, *_, downloads, view, segments, summary = tab_analyze.draw(out, None, "zh")
    assert "请上传或录制音频" in card and downloads is None and view["visible"] is False


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


def test_compare_two_clips(tiny_engine, tmp_path, clip):
    other = write_audio(tmp_path / "other.flac", speechlike(1.5, seed=8), 16000, "flac")
    table, radar, sim = tab_compare.run_compare(tiny_engine, None, [str(clip), str(other)], "zh")
    assert isinstance(table, pd.DataFrame) and list(table.columns) == ["文件", "情感", "error"]
    assert list(table["文件"]) == ["speech.wav", "other.flac"] and list(table["error"]) == ["", ""]
    for path, shown in zip((clip, other), table["情感"]):
        assert LABEL_BY_KEY[tiny_engine.predict(path).emotion].zh in shown
    assert radar is not None and sim is not None
    with pytest.raises(gr.Error, match="请至少上传两个文件"):
        tab_compare.run_compare(tiny_engine, None, [str(clip)], "zh")


def test_long_recording_in_windows(tiny_engine, out, tmp_path):
    path = write_audio(tmp_path / "talk.wav", speechlike(3.0, seed=4), 16000, "wav")
    result = tab_long.run_recording(tiny_engine, out, None, str(path), "window", 0.5, 0.25, 0.3, 30.0, 1.0, 1.0, "en")
    assert result["granularity"] == "segments" and len(result["segments"]) == 3
    assert {s["emotion"] for s in result["segments"]} <= set(LABEL_KEYS)
    card, band, table, summary, log, downloads = tab_long.draw_recording(out, result, "en")
    assert band.count('class="ea-seg"') == 3 and table["visible"] and "Speech" in summary
    assert {Path(p).name for p in downloads} >= {"segments.csv", "segments.vtt"} and all(Path(p).is_file() for p in downloads)


def test_batch_with_a_bad_file(tiny_engine, out, clip, bad_file):
    table, status, downloads = tab_batch.run_batch(tiny_engine, out, None, [str(clip), str(bad_file)], "utterance", "none")
    assert len(table) == 2 and status.startswith("1 done, 1 failed, 2 files")
    assert [Path(p).name for p in downloads] == ["results.csv", "results.jsonl", "results.zip"]
    assert all(Path(p).is_file() for p in downloads)
    with pytest.raises(gr.Error, match="请至少上传一个文件"):
        tab_batch.run_batch(tiny_engine, out, None, [], "utterance", "none", "zh")


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


def test_language_switch_relabels_every_labelled_component(tiny_engine, out):
    demo = page.build_demo(tiny_engine, out)
    event = page_event(demo, "relabel")
    views = 9  # the Analyze tab's result, redrawn
    registered = event.outputs[2:-views]
    assert len(registered) == 44  # analyze 17, compare 6, long 14, batch 7
    assert len({id(c) for c in registered}) == len(registered)
    # every component that shows a label or a button text is relabelled, except the three below
    unregistered = {"Language / 语言", "result.json", "Per-frame scores over time (s)"}
    shown = [b for b in demo.blocks.values() if getattr(b, "label", None) or isinstance(b, gr.Button)]
    assert {getattr(b, "label", None) for b in shown if all(b is not c for c in registered)} == unregistered
    zh = event.fn("zh", None, "smoothed")
    assert zh[0] == "zh" and "语音情感识别" in zh[1]
    for update in zh[2:-views]:
        words = [update.get("label"), update.get("value"), *(c[0] for c in update.get("choices", []))]
        assert any(w and CHINESE.search(w) for w in words), update
    en = event.fn("en", None, "smoothed")
    for component, update in zip(registered, en[2:-views]):  # back to the words the page was built with
        assert update.get("label", getattr(component, "label", None)) == getattr(component, "label", None)
        if "value" in update:
            assert update["value"] == component.value


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
    ]
    assert [p["parameter_name"] for p in api["/recording"]["parameters"]] == [
        "path", "mode", "threshold", "min_speech", "min_silence", "max_segment", "window_s", "hop_s"
    ]  # fmt: skip
    assert page_event(demo, "run_analysis").tracks_progress and page_event(demo, "run_batch").tracks_progress


def test_smoothing_fields_are_read_in_frame_mode_only(tiny_engine, out, clip):
    # the form always sends the smoothing inputs; in utterance mode they are hidden and ignored
    result = tab_analyze.run_analysis(tiny_engine, out, None, str(clip), "utterance", False, "majority", 4)
    assert result["granularity"] == "utterance" and "frames" not in result


def test_stylesheet_is_read_from_the_package():
    css = page.stylesheet()
    assert css == (Path(page.__file__).parent / "style.css").read_text(encoding="utf-8")
    assert ".ea-card {" in css and ".ea-emo {" in css
