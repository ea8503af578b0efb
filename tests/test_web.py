"""The running app: Gradio API via gradio_client, REST via httpx, result.json against the engine."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import soundfile as sf
from audio_files import SUFFIX, sine, speechlike, write_audio, write_video

from emotion_app.constants import LABEL_KEYS


def folders(web) -> set[str]:
    return {p.name for p in web.outputs.iterdir()}


def check_folder(web, result: dict, embedding: bool) -> None:
    folder = web.outputs / result["output_dir"]
    names = sorted(p.name for p in folder.iterdir())
    expected = ["result.json", "processed_audio.wav", "scores.png"] + (["embedding.npy"] if embedding else [])
    if result["granularity"] == "frame":
        expected += ["frames.csv", "segments.csv", "segments.json", "segments.vtt", "timeline.png"]
    assert names == sorted(expected)
    saved = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    assert saved == {k: v for k, v in result.items() if k != "files"}
    audio, rate = sf.read(folder / "processed_audio.wav")
    assert rate == 16000 and audio.ndim == 1 and abs(len(audio) / 16000 - result["duration_s"]) < 1e-3


def test_gradio_client_predict_matches_the_engine(web, tmp_path):
    from gradio_client import Client, handle_file

    path = write_audio(tmp_path / "speech.wav", speechlike(3.0, 22050, seed=5), 22050, "wav")
    result = Client(web.url + "/", verbose=False).predict(handle_file(str(path)), "utterance", False, api_name="/predict")
    expected = web.engine.predict(path)
    assert result["emotion"] == expected.emotion and result["file"] == "speech.wav"
    assert list(result["scores"]) == list(LABEL_KEYS)
    np.testing.assert_allclose([result["probabilities"][k] for k in LABEL_KEYS], expected.probabilities, rtol=0, atol=1e-6)
    assert result["scores"] == {k: round(float(p), 3) for k, p in zip(LABEL_KEYS, expected.probabilities)}
    assert abs(sum(result["probabilities"].values()) - 1) < 1e-5
    assert result["confidence"] == round(expected.confidence, 4) and result["label_zh"] == expected.label.zh
    assert result["granularity"] == "utterance" and "frames" not in result
    assert result["duration_s"] == 3.0 and result["audio"]["sample_rate"] == 22050 and result["audio"]["resampled"]
    assert result["model"]["device"] == "cpu" and result["timestamp"].startswith(result["output_dir"][8:12])
    check_folder(web, result, embedding=False)


def test_gradio_client_frame_mode_with_embedding(web, tmp_path):
    from gradio_client import Client, handle_file

    path = write_audio(tmp_path / "clip.flac", speechlike(2.0), 16000, "flac")
    result = Client(web.url + "/", verbose=False).predict(handle_file(str(path)), "frame", True, api_name="/predict")
    assert result["granularity"] == "frame" and len(result["frames"]) == 99 == result["num_frames"]
    first = result["frames"][0]
    assert (
        first["start"] == 0.0
        and first["end"] == 0.02
        and first["emotion"] in LABEL_KEYS
        and set(first["scores"]) == set(LABEL_KEYS)
    )
    check_folder(web, result, embedding=True)
    emb = np.load(web.outputs / result["output_dir"] / "embedding.npy")
    assert emb.shape == (99, 32)


@pytest.mark.parametrize("fmt", ["wav", "mp3", "m4a", "flac", "ogg", "opus", "webm", "aiff", "mp4"])
def test_rest_predicts_every_format(web, tmp_path, fmt):
    rate = 48000 if fmt in ("opus", "webm") else 44100
    path = tmp_path / f"in.{SUFFIX.get(fmt, fmt)}"
    if fmt == "mp4":
        write_video(path, sine(1.5, rate, freq=200), rate, "mp4", seconds=1.5)
    else:
        write_audio(path, speechlike(1.5, rate), rate, fmt)
    with open(path, "rb") as f:
        r = httpx.post(web.url + "/api/predict", files={"audio": (path.name, f)}, data={"granularity": "utterance"}, timeout=60)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["file"] == path.name and abs(result["duration_s"] - 1.5) < 0.06
    check_folder(web, result, embedding=False)
    prefix, key, name = result["files"]["result.json"].rsplit("/", 2)
    assert prefix == f"/api/outputs/{result['output_dir']}" and name == "result.json" and len(key) >= 22  # >= 128 bits
    got = httpx.get(web.url + result["files"]["result.json"])
    assert got.status_code == 200 and got.json()["emotion"] == result["emotion"]


def bad_cases(tmp_path) -> dict:
    import struct

    wav = write_audio(tmp_path / "x.wav", sine(1.0, 16000), 16000, "wav").read_bytes()
    at = wav.index(b"data") + 4
    flac = write_audio(tmp_path / "t.flac", sine(20.0, 16000), 16000, "flac").read_bytes()
    f32 = bytearray(write_audio(tmp_path / "f.wav", sine(1.0, 16000), 16000, "wav_f32").read_bytes())
    f32[-400:-396] = struct.pack("<f", float("nan"))
    long = write_audio(tmp_path / "long.flac", np.zeros(16000 * 70, np.float32) + 1e-3, 16000, "flac").read_bytes()
    return {
        "empty": (b"", "empty"),
        "not_audio": (b"%PDF-1.4 not audio\n" * 40, "not_audio"),
        "no_audio_track": (write_video(tmp_path / "n.mp4", None, 16000).read_bytes(), "no_audio_track"),
        "header_claims_gigabytes": (wav[:at] + struct.pack("<I", 0x7FFFFF00) + wav[at + 4 :], "truncated"),
        "truncated": (flac[: len(flac) // 3], "truncated|corrupt"),
        "nan": (bytes(f32), "not_finite"),
        "zero_rate": (wav[:24] + struct.pack("<I", 0) + wav[28:], "bad_rate"),
        "too_long": (long, "too_long"),
        "too_short": (write_audio(tmp_path / "s.wav", sine(100 / 16000, 16000), 16000, "wav").read_bytes(), "too_short"),
    }


@pytest.mark.parametrize(
    "case",
    ["empty", "not_audio", "no_audio_track", "header_claims_gigabytes", "truncated", "nan", "zero_rate", "too_long", "too_short"],
)
def test_rest_bad_input_is_a_4xx_and_writes_nothing(web, tmp_path, case):
    data, code = bad_cases(tmp_path)[case]
    before = folders(web)
    r = httpx.post(web.url + "/api/predict", files={"audio": ("bad.wav", data)}, timeout=60)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] in code.split("|") and body["error"] and "Traceback" not in body["error"]
    assert folders(web) == before  # nothing half-written, no temp folder left
    assert httpx.get(web.url + "/api/health").json()["status"] == "ok"  # still serving


def test_rest_request_errors(web, tmp_path):
    wav = write_audio(tmp_path / "x.wav", speechlike(1.0), 16000, "wav").read_bytes()
    before = folders(web)
    r = httpx.post(web.url + "/api/predict", data={"granularity": "utterance"}, files={"other": ("x.wav", wav)})
    assert r.status_code == 400 and r.json()["code"] == "no_audio"
    r = httpx.post(web.url + "/api/predict", files={"audio": ("x.wav", wav)}, data={"granularity": "word"})
    assert r.status_code == 422 and "granularity" in r.json()["error"]
    r = httpx.post(web.url + "/api/predict", files={"audio": ("big.wav", b"\0" * (3 * 1024 * 1024))})
    assert r.status_code == 413 and r.json()["code"] == "too_large" and "2 MB" in r.json()["error"]
    r = httpx.post(web.url + "/api/predict", files={"audio": ("x.wav", b"junk" * 50)}, headers={"accept-language": "zh-CN,zh"})
    assert r.status_code == 400 and r.json()["error"].startswith("无法解码")
    assert folders(web) == before


def test_uploaded_name_never_decides_a_path(web, tmp_path):
    wav = write_audio(tmp_path / "x.wav", speechlike(1.0), 16000, "wav").read_bytes()
    r = httpx.post(web.url + "/api/predict", files={"audio": ("../../../etc/evil\x1b[31m.wav", wav)})
    assert r.status_code == 200
    result = r.json()
    assert result["file"] == "evil[31m.wav" or "/" not in result["file"]
    assert (web.outputs / result["output_dir"]).parent == web.outputs
    assert not list(tmp_path.parent.glob("**/evil*"))


def test_downloads_only_from_output_folders(web):
    assert httpx.get(web.url + "/api/outputs/../../etc/passwd").status_code == 404
    paths = (
        "/api/outputs/outputs_20260101_000000/result.json",  # the old, keyless form
        "/api/outputs/outputs_20260101_000000/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/result.json",
        "/api/outputs/x/y/z",
    )
    for path in paths:
        r = httpx.get(web.url + path)
        assert r.status_code == 404 and r.json() == {"error": "Not Found", "code": "not_found"}, path


def test_health(web):
    body = httpx.get(web.url + "/api/health").json()
    assert body["status"] == "ok" and body["model"]["device"] == "cpu" and body["labels"] == list(LABEL_KEYS)


def test_sixteen_concurrent_requests_get_sixteen_complete_folders(web, tmp_path):
    clips = [write_audio(tmp_path / f"c{i}.wav", speechlike(1.0 + i * 0.1, seed=i), 16000, "wav").read_bytes() for i in range(16)]
    before = folders(web)

    def post(i):
        return httpx.post(web.url + "/api/predict", files={"audio": (f"c{i}.wav", clips[i])}, timeout=120)

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(post, range(16)))
    assert [r.status_code for r in responses] == [200] * 16
    results = [r.json() for r in responses]
    assert len({r["output_dir"] for r in results}) == 16
    assert folders(web) - before == {r["output_dir"] for r in results}
    for i, result in enumerate(results):
        assert result["file"] == f"c{i}.wav" and abs(result["duration_s"] - (1.0 + i * 0.1)) < 1e-3
        check_folder(web, result, embedding=False)


def test_rest_frame_analysis_options_segments_summary_and_exports(web, tmp_path):
    wav = write_audio(tmp_path / "talk.wav", speechlike(4.0, seed=9), 16000, "wav").read_bytes()
    form = {"granularity": "frame", "method": "majority", "window": "5", "min_duration_s": "0.1", "mixed_threshold": "0.2"}
    r = httpx.post(web.url + "/api/predict", files={"audio": ("talk.wav", wav)}, data=form, timeout=60)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["smoothing"] == {"method": "majority", "window": 5, "alpha": 0.2, "zero_phase": True, "min_duration_s": 0.1}
    frames, segs = result["frames"], result["segments"]
    # the segments are the runs of the frames' smoothed emotion, tiling the timeline
    assert segs[0]["start"] == 0.0 and segs[-1]["end"] == frames[-1]["end"]
    assert all(a["end"] == b["start"] and a["emotion"] != b["emotion"] for a, b in zip(segs, segs[1:]))
    for s in segs:
        inside = [f for f in frames if s["start"] <= f["start"] < s["end"]]
        assert {f["smoothed_emotion"] for f in inside} == {s["emotion"]}
        assert s["end"] - s["start"] >= 0.1 - 1e-9 or len(segs) == 1
    assert result["summary"]["num_segments"] == len(segs)
    assert abs(sum(result["summary"]["share"].values()) - 1) < 0.01
    top2 = sorted(result["probabilities"].values())[-2:]
    assert result["mixed"]["mixed"] == (top2[1] - top2[0] <= 0.2) and result["mixed"]["threshold"] == 0.2
    vtt = httpx.get(web.url + result["files"]["segments.vtt"]).text
    assert vtt.startswith("WEBVTT") and vtt.count(" --> ") == len(segs)
    csv_rows = httpx.get(web.url + result["files"]["frames.csv"]).text.strip().split("\n")
    assert len(csv_rows) == 1 + result["num_frames"]
    png = httpx.get(web.url + result["files"]["timeline.png"]).content
    assert png[:4] == b"\x89PNG"
    check_folder(web, result, embedding=False)


def test_rest_bad_option_is_a_422_naming_the_range(web, tmp_path):
    wav = write_audio(tmp_path / "x.wav", speechlike(1.0), 16000, "wav").read_bytes()
    before = folders(web)
    for form, words in (
        ({"granularity": "frame", "method": "majority", "window": "4"}, "odd number of frames from 3 to 51"),
        ({"granularity": "frame", "method": "ewma", "alpha": "0"}, "alpha must be in (0, 1]"),
        ({"granularity": "frame", "method": "median"}, "must be one of none, majority, moving_average, ewma"),
        ({"granularity": "frame", "window": "abc"}, "window must be a number, not 'abc'"),
    ):
        r = httpx.post(web.url + "/api/predict", files={"audio": ("x.wav", wav)}, data=form)
        assert r.status_code == 422 and r.json()["code"] == "bad_option" and words in r.json()["error"], r.text
    assert folders(web) == before


def test_rest_long_recording_with_vad_segments(web, tmp_path):
    from audio_files import espeak

    pause = np.zeros(16000, np.float32)
    talk = np.concatenate([pause, espeak("Please hold the line."), pause, espeak("Thank you for waiting.", 1), pause])
    path = write_audio(tmp_path / "call.m4a", talk, 16000, "m4a")
    with open(path, "rb") as f:
        form = {"segment": "vad", "min_silence_s": "0.5"}
        r = httpx.post(web.url + "/api/predict", files={"audio": (path.name, f)}, data=form, timeout=60)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["granularity"] == "segments" and result["segmentation"]["min_silence_s"] == 0.5
    assert len(result["segments"]) == 2 and result["summary"]["num_segments"] == 2
    names = sorted(p.name for p in (web.outputs / result["output_dir"]).iterdir())
    assert names == sorted(["result.json", "processed_audio.wav", "scores.png", "segments.csv", "segments.json", "segments.vtt"])
    audio, rate = sf.read(web.outputs / result["output_dir"] / "processed_audio.wav")
    assert rate == 16000 and abs(len(audio) / 16000 - result["duration_s"]) < 1e-3
    assert httpx.get(web.url + result["files"]["segments.vtt"]).text.count(" --> ") == 2
    bad = httpx.post(web.url + "/api/predict", files={"audio": ("c.wav", b"x")}, data={"segment": "vad", "threshold": "2"})
    assert bad.status_code == 422 and "VAD threshold must be from 0.05 to 0.95" in bad.json()["error"]


def test_without_logins_no_results_are_listed(web, tmp_path):
    """Results made without a login are nobody's: neither the API nor the page lists them."""
    wav = write_audio(tmp_path / "a.wav", speechlike(1.0), 16000, "wav")
    with open(wav, "rb") as f:
        assert httpx.post(web.url + "/api/predict", files={"audio": ("a.wav", f, "audio/wav")}, timeout=60).status_code == 200
    answer = httpx.get(web.url + "/api/results", params={"lang": "zh"}, timeout=30)
    assert answer.status_code == 403 and answer.json()["code"] == "results_need_login" and "--users" in answer.json()["error"]
    from emotion_app.web.ui.my_results import my_results

    assert "没有登录" in my_results(web.outputs, "zh")  # the page's list: none, and why
