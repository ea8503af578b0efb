"""Your own labels on the web: REST `head=NAME`, and the page's "Your labels" tab (callbacks called
directly) feeding the Analyze tab."""

from __future__ import annotations

import zipfile

import gradio as gr
import pytest
from labelled_sets import write_set

from emotion_app import Engine
from emotion_app.heads.dataset import read_dataset
from emotion_app.heads.report import write_folder
from emotion_app.heads.train import train_head
from emotion_app.web.ui import tab_analyze, tab_labels
from emotion_app.web.ui.heads_view import heads_html
from emotion_app.web.ui.tab_analyze import AnalyzeForm
from emotion_app.web.ui.tab_labels import LabelsForm


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    return write_set(tmp_path_factory.mktemp("labelled"))


@pytest.fixture(scope="module")
def head_dir(sets, tiny_engine, tmp_path_factory):
    run = train_head(tiny_engine, read_dataset(sets.csv), name="speed", names="slow=慢:🐢")
    return write_folder(tmp_path_factory.mktemp("heads") / "speed", run.files(), "head.safetensors")


@pytest.fixture(scope="module")
def api(tiny_dir, head_dir, tmp_path_factory):
    """The REST routes (no page) on an engine with the head loaded."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from emotion_app.web.api.rest import add_rest_routes
    from emotion_app.web.server import AppSettings

    app = FastAPI()
    engine = Engine(model=str(tiny_dir), heads=[head_dir])
    add_rest_routes(app, engine, AppSettings(outputs_dir=tmp_path_factory.mktemp("outputs")))
    with TestClient(app) as client:
        yield client


def test_rest_head_selects_the_loaded_heads(api, sets):
    wav = (sets.folder / "fast" / "00.wav").read_bytes()
    assert api.get("/api/health").json()["heads"] == {"speed": ["fast", "slow"]}
    every = api.post("/api/predict", files={"audio": ("a.wav", wav)}).json()
    assert set(every["heads"]) == {"speed"} and every["heads"]["speed"]["emotion"] in ("slow", "fast")
    named = api.post("/api/predict", files={"audio": ("a.wav", wav)}, data={"head": "speed", "granularity": "frame"}).json()
    assert len(named["heads"]["speed"]["frames"]) == named["num_frames"]
    assert "heads" not in api.post("/api/predict", files={"audio": ("a.wav", wav)}, data={"head": "none"}).json()
    r = api.post("/api/predict", files={"audio": ("a.wav", wav)}, data={"head": "tone"})
    assert r.status_code == 422 and r.json()["code"] == "bad_option" and "loaded heads: speed" in r.json()["error"]


def test_labels_tab_trains_a_head_that_the_analyze_tab_uses(tiny_engine, sets, tmp_path):
    out = tmp_path / "outputs"
    counts, status = tab_labels.check_data([str(sets.zip)], "en")
    assert list(counts.iloc[:, 1]) == [8, 6, 8] and "22 files, 3 labels" in status
    form = LabelsForm(data=[str(sets.zip)], name="rate / 语速", kind="logreg", names="slow=慢:🐢", session_heads=[], lang="zh")
    trained = tab_labels.train_labels(tiny_engine, out, None, form)
    status, metrics, confusion = trained["status"], trained["metrics"], trained["confusion"]
    files, heads = trained["downloads"], trained["session_heads"]
    folder = out / "heads" / "rate_语速"  # the name made safe for a folder
    assert heads == [str(folder)] and "rate" in status and "交叉验证" in metrics and confusion.endswith("confusion.png")
    assert {p.rsplit("/", 1)[-1] for p in files} >= {"head.safetensors", "labels.json", "metrics.json", "card.md"}
    form = LabelsForm(data=[str(sets.zip)], name="rate_语速", kind="mlp", session_heads=heads)
    heads = tab_labels.train_labels(tiny_engine, out, None, form)["session_heads"]
    assert heads == [str(folder), str(out / "heads" / "rate_语速_2")]  # a second head of that name: never overwritten

    clip = str(sets.folder / "slow" / "03.wav")
    result = tab_analyze.run_analysis(tiny_engine, out, None, clip, "utterance", False, lang="en", session_heads=heads)
    assert set(result["heads"]) == {"rate_语速", "rate_语速_2"} and result["heads"]["rate_语速"]["labels"]["slow"]["zh"] == "慢"
    assert "heads" not in tab_analyze.run_analysis(tiny_engine, out, None, clip, "utterance", False, lang="en")
    kept = tab_analyze.analyze_clip(tiny_engine, out, None, AnalyzeForm(file=clip, session_heads=heads), gr.Progress())
    shown = heads_html(kept.report, "zh")  # the page draws from the typed report
    assert shown.count('class="ea-head"') == 2 and "慢 slow" in shown and shown.count('class="ea-head-row"') == 6  # 3 labels each


def test_labels_tab_evaluates_the_9_class_head(tiny_engine, sets, tmp_path):
    out = tmp_path / "outputs"
    form = LabelsForm(data=[str(sets.zip)], label_map="slow=sad, fast=happy, mid=neutral")
    evaluated = tab_labels.evaluate_labels(tiny_engine, out, None, form)
    status, metrics, confusion, files = (evaluated[k] for k in ("status", "metrics", "confusion", "downloads"))
    assert "22 files" in status and "WA" in metrics and confusion.endswith("confusion.png")
    assert {p.rsplit("/", 1)[-1] for p in files} == {
        "confusion.csv",
        "confusion.png",
        "errors.csv",
        "metrics.json",
        "predictions.csv",
    }


def test_labels_tab_bad_uploads_say_what_to_fix(tiny_engine, sets, tmp_path):
    with pytest.raises(gr.Error, match="Upload a zip"):
        tab_labels.check_data([], "en")
    nested = tmp_path / "nested.zip"
    with zipfile.ZipFile(nested, "w") as zf:
        zf.writestr("slow/deeper/a.wav", (sets.folder / "slow" / "00.wav").read_bytes())
        zf.writestr("fast/b.wav", b"x")
    with pytest.raises(gr.Error, match="folders inside label folders"):
        tab_labels.check_data([str(nested)], "en")
    with pytest.raises(gr.Error, match="带标签的数据无法使用"):
        tab_labels.train_labels(tiny_engine, tmp_path / "out", None, LabelsForm(data=[str(nested)], name="x", lang="zh"))
    few = tmp_path / "few.zip"
    with zipfile.ZipFile(few, "w") as zf:
        for i in range(3):
            zf.write(sets.folder / "slow" / f"{i:02d}.wav", f"slow/{i}.wav")
            zf.write(sets.folder / "fast" / f"{i:02d}.wav", f"fast/{i}.wav")
    with pytest.raises(gr.Error, match="at least 5 files per label"):
        tab_labels.train_labels(tiny_engine, tmp_path / "out", None, LabelsForm(data=[str(few)], name="x"))
    assert not any((tmp_path / "out" / "heads").iterdir())  # nothing half-written
    table = tmp_path / "set.csv"
    table.write_text("path,label\nslow_00.wav,slow\n")
    with pytest.raises(gr.Error, match="paths that do not exist"):
        tab_labels.check_data([str(table)], "en")


def test_labels_tab_takes_a_table_with_its_files(sets, tmp_path):
    wavs = []
    lines = ["path,label,speaker"]
    for label in ("slow", "fast"):
        for i in range(5):
            path = tmp_path / f"{label}_{i}.wav"
            path.write_bytes((sets.folder / label / f"{i:02d}.wav").read_bytes())
            wavs.append(str(path))
            lines.append(f"clips/{path.name},{label},s{i % 2}")
    table = tmp_path / "set.csv"
    table.write_text("\n".join(lines) + "\n")
    counts, status = tab_labels.check_data([str(table), *wavs], "en")
    assert list(counts.iloc[:, 1]) == [5, 5] and "2 speakers" in status
