"""Label sets (labelset.py): the softmax over the chosen classes, in every result, table, export,
path (engine, service, CLI, REST, batch, live WebSocket) and in `evaluate`'s protocol."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import requests
import torch
from audio_files import espeak, speechlike, write_audio
from test_cli import in_process

from emotion_app.analysis.build import build_report
from emotion_app.constants import LABEL_KEYS
from emotion_app.fields import OptionError
from emotion_app.labelset import LabelSet
from emotion_app.request import RequestOptions
from emotion_app.service import analyze

FOUR = ("angry", "happy", "neutral", "sad")


def test_parse_names_presets_and_errors():
    assert LabelSet.parse("sad, Angry,neutral,happy").keys == FOUR  # the model's order, case-blind
    assert LabelSet.parse(["happy", "sad"]).keys == ("happy", "sad")
    assert LabelSet.parse("iemocap4").keys == FOUR
    assert LabelSet.parse(None) is None and LabelSet.parse("") is None and LabelSet.parse("all") is None
    assert LabelSet.parse(",".join(LABEL_KEYS)) is None  # every label: no set
    with pytest.raises(OptionError, match=r"'happpy' is not a label of the model; choose from angry, disgusted, .*unknown") as e:
        LabelSet.parse("angry,happpy")
    assert e.value.code == "bad_labels"
    with pytest.raises(OptionError, match="at least two labels"):
        LabelSet.parse("happy")


def test_engine_gives_the_softmax_over_the_chosen_logits(tiny_engine):
    """Renormalising the 9 probabilities equals the softmax over the chosen classes' logits only
    (FunASR's masking of the other logits), for the utterance and for every frame."""
    x = speechlike(2.5, seed=4)
    full = tiny_engine.predict(x, sample_rate=16000, granularity="frame")
    got = tiny_engine.predict(x, sample_rate=16000, granularity="frame", labels="angry,happy,neutral,sad")
    with torch.inference_mode():
        out = tiny_engine.model(torch.from_numpy(x)[None], torch.tensor([len(x)]))
    index = [list(tiny_engine.labels).index(k) for k in FOUR]
    expected = torch.softmax(out.utterance_logits[0, index], -1).numpy()
    frames = torch.softmax(out.frame_logits[0][:, index], -1).numpy()
    assert got.labels == FOUR and got.label_set == FOUR and got.probabilities.shape == (4,)
    np.testing.assert_allclose(got.probabilities, expected, atol=2e-6)
    np.testing.assert_allclose(got.frame_probabilities, frames, atol=2e-6)
    assert not np.allclose(got.probabilities, full.probabilities[index], atol=1e-3)  # really renormalised
    d = build_report(got).to_json()
    assert d["label_set"] == list(FOUR) and list(d["scores"]) == list(FOUR) and set(d["labels"]) == set(FOUR)
    assert d["emotion"] in FOUR and {list(f["scores"]) == list(FOUR) for f in d["frames"]} == {True}
    assert "label_set" not in build_report(full).to_json()


def test_a_clip_and_a_recording_in_the_set_everywhere(tiny_engine, tmp_path):
    clip = write_audio(tmp_path / "clip.wav", speechlike(4.0, seed=2), 16000, "wav")
    request = RequestOptions.from_fields({"granularity": "frame", "labels": "iemocap4"})
    a = analyze(tiny_engine, str(clip), request, outputs_dir=tmp_path / "out")
    r = json.loads((a.folder / "result.json").read_text(encoding="utf-8"))
    assert r["label_set"] == list(FOUR) and list(r["scores"]) == list(FOUR)
    assert set(r["summary"]["share"]) <= set(FOUR) and {s["emotion"] for s in r["segments"]} <= set(FOUR)
    header = (a.folder / "frames.csv").read_text(encoding="utf-8").splitlines()[0]
    assert all(k in header for k in FOUR) and "surprised" not in header and "disgusted" not in header
    assert (a.folder / "timeline.png").stat().st_size > 1000 and (a.folder / "scores.png").exists()
    assert a.report.labels == FOUR and set(a.report.probabilities) == set(FOUR)

    pause = np.zeros(8000, np.float32)
    talk = np.concatenate([pause, espeak("Good morning everyone."), pause, espeak("See you tomorrow.", 1), pause])
    path = write_audio(tmp_path / "talk.wav", talk, 16000, "wav")
    rec = analyze(tiny_engine, str(path), RequestOptions.from_fields({"segment": "vad", "labels": "happy,sad"}),
                  outputs_dir=tmp_path / "out")  # fmt: skip
    r = json.loads((rec.folder / "result.json").read_text(encoding="utf-8"))
    assert r["label_set"] == ["happy", "sad"] and len(r["segments"]) >= 2
    assert all(list(s["scores"]) == ["happy", "sad"] and abs(sum(s["probabilities"].values()) - 1) < 1e-5 for s in r["segments"])
    assert set(r["summary"]["share"]) == {"happy", "sad"} and r["emotion"] in ("happy", "sad")


def test_batch_tables_cli_and_resume(tiny_dir, tmp_path):
    files = [write_audio(tmp_path / f"c{i}.wav", speechlike(1.5 + i, seed=i), 16000, "wav") for i in range(2)]
    out = tmp_path / "batch"
    cmd = ["batch", *map(str, files), "--out", str(out), "--model", str(tiny_dir)]
    proc = in_process(*cmd, "--labels", "iemocap4", "--sentiment")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text(encoding="utf-8"))))
    assert list(rows[0]) == ["file", "duration_s", "emotion", "confidence", *FOUR, "sentiment", "sentiment_score",
                             "heads", "speakers", "error"]  # fmt: skip
    assert all(r["emotion"] in FOUR and r["sentiment"] in ("positive", "negative", "neutral") for r in rows)
    assert all(-1 <= float(r["sentiment_score"]) <= 1 for r in rows)
    again = in_process(*cmd, "--labels", "happy,sad")  # other columns
    assert again.returncode == 2 and "has other columns" in again.stderr and "--overwrite" in again.stderr

    predict = ["predict", str(files[0]), "--model", str(tiny_dir)]
    one = in_process(*predict, "--labels", "angry,sad", "--json")
    assert one.returncode == 0, one.stderr
    r = json.loads(one.stdout)
    assert r["label_set"] == ["angry", "sad"] and list(r["scores"]) == ["angry", "sad"]
    bad = in_process(*predict, "--labels", "angry,joy")
    assert bad.returncode == 2 and "'joy' is not a label of the model; choose from angry, disgusted" in bad.stderr


def test_rest_labels_and_the_error_in_the_page_language(web, tmp_path):
    path = write_audio(tmp_path / "c.wav", speechlike(2.0, seed=5), 16000, "wav")
    with open(path, "rb") as f:
        r = requests.post(f"{web.url}/api/predict", files={"audio": f}, data={"labels": "angry,happy,neutral,sad"}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["label_set"] == list(FOUR) and list(body["scores"]) == list(FOUR)
    with open(path, "rb") as f:
        r = requests.post(f"{web.url}/api/predict", files={"audio": f}, data={"labels": "angry,calm", "lang": "zh"}, timeout=60)
    assert r.status_code == 422 and r.json()["code"] == "bad_labels"  # an OptionError, as every bad option
    assert "标签集无效" in r.json()["error"] and "'calm'" in r.json()["error"]  # Chinese, with the name that was wrong
    health = requests.get(f"{web.url}/api/health", timeout=10).json()
    assert health["label_sets"]["iemocap4"] == list(FOUR) and health["sentiment_mapping"]["happy"] == "positive"


def test_live_hops_in_the_set_with_sentiment(web):
    from test_stream import hops, open_ws, pcm16, read_all, send_audio, start

    with open_ws(web) as ws:
        ready = start(ws, window_s=2.0, hop_s=1.0, analysis={"labels": "iemocap4", "sentiment": True})
        assert ready["event"] == "ready" and ready["labels"] == list(FOUR)
        send_audio(ws, pcm16(4.0))
        messages, _ = read_all(ws)
    got = hops(messages)
    assert len(got) >= 2
    for hop in got:
        assert list(hop["scores"]) == list(FOUR) and hop["emotion"] in FOUR and hop["smoothed"]["emotion"] in FOUR
        assert hop["sentiment"]["label"] in ("positive", "negative", "neutral") and "sentiment" in hop["smoothed"]
    final = next(m for m in messages if m["event"] == "result")
    assert final["result"]["label_set"] == list(FOUR) and "sentiment" in final["result"]


def test_evaluate_reports_the_4_class_protocol(tiny_engine, tmp_path):
    from labelled_sets import say

    from emotion_app.heads.dataset import read_dataset
    from emotion_app.heads.evaluate import evaluate_dataset

    rows = []
    for k in range(2):  # two takes of each label, at other rates (identical audio is scored once)
        for label, rate in [("ang", 260), ("hap", 170), ("exc", 220), ("neu", 140), ("sad", 90), ("fru", 200)]:
            rows.append(f"{say(tmp_path / f'{label}{k}.wav', 'where is the station', 'en', rate + 15 * k)},{label}")
    (tmp_path / "set.csv").write_text("path,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    ev = evaluate_dataset(
        tiny_engine, read_dataset(tmp_path / "set.csv"), label_map="ang=angry,hap=happy,exc=happy,neu=neutral,sad=sad",
        labels="iemocap4",
    )  # fmt: skip
    r = ev.report
    assert r["head_labels"] == list(FOUR) and r["n"] == 10 and r["unmapped"] == {"fru": 2}
    assert r["protocol"] == (
        "4-class (angry, happy, neutral, sad); data labels mapped: ang -> angry; exc, hap -> happy; neu -> neutral; "
        "softmax over these classes only; left out: fru (2); 10 files scored"
    )
    assert {p["predicted"] for p in r["predictions"]} <= set(FOUR) and "protocol: 4-class" in ev.summary()
