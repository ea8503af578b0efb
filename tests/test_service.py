"""The request service (service.py): one entry point for clips and long recordings, output folders
written whole or not at all, batches of files and zips into one folder."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from audio_files import espeak, speechlike, write_audio

from emotion_app.errors import AudioError
from emotion_app.request import RequestOptions
from emotion_app.service import RequestError, analyze, analyze_batch


def test_clip_and_recording_go_through_one_entry_point(tiny_engine, tmp_path):
    clip = write_audio(tmp_path / "clip.wav", speechlike(2.0), 16000, "wav")
    frame = RequestOptions.from_fields({"granularity": "frame"})
    a = analyze(tiny_engine, clip, frame, outputs_dir=tmp_path / "out", name="c.wav")
    assert a.result["granularity"] == "frame" and a.result["file"] == "c.wav" and a.result["output_dir"] == a.folder.name
    assert json.loads((a.folder / "result.json").read_text()) == a.result
    assert a.written is not None and a.result == a.report.to_json()  # the written content, not made again
    assert list(a.result) == list(a.report.to_json())  # in the report's order, output_dir last
    assert {"frames.csv", "timeline.png", "segments.vtt"} <= set(a.files)

    talk = np.concatenate([np.zeros(8000, np.float32), espeak("Good evening everybody."), np.zeros(8000, np.float32)])
    stages = []
    rec = analyze(
        tiny_engine, (16000, talk), RequestOptions.from_fields({"segment": "vad", "charts": "false"}),
        outputs_dir=tmp_path / "out", progress=lambda f, stage: stages.append((round(f, 2), stage)),
    )  # fmt: skip
    assert rec.result["granularity"] == "segments" and len(rec.result["segments"]) == 1
    assert rec.written is not None and rec.result == rec.report.to_json()
    assert "scores.png" not in rec.files and {"processed_audio.wav", "segments.csv"} <= set(rec.files)
    assert stages[-1] == (1.0, "done") and (0.3, "segments 0/1") in stages and (1.0, "segments 1/1") in stages


def test_a_failed_request_leaves_nothing(tiny_engine, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(AudioError):
        analyze(tiny_engine, b"not audio at all" * 100, outputs_dir=out)
    with pytest.raises(AudioError):
        analyze(tiny_engine, b"RIFF\x00\x00\x00\x00WAVEjunk", RequestOptions.from_fields({"segment": "vad"}), outputs_dir=out)
    with pytest.raises(RequestError):
        analyze(tiny_engine, None, outputs_dir=out)
    assert list(out.iterdir()) == []  # no output folder, no temporary folder


def test_batch_of_files_and_a_zip_into_one_folder(tiny_engine, tmp_path):
    good = write_audio(tmp_path / "good.wav", speechlike(1.5), 16000, "wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF" + b"\x00" * 100)
    archive = tmp_path / "pack.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(good, "a/x.wav")
        zf.write(good, "b/x.wav")
        zf.writestr("inner.zip", b"PK")
    done = []
    rows, folder = analyze_batch(
        tiny_engine, [good, bad, archive], outputs_dir=tmp_path / "out", names=["good.wav", "bad.wav", "pack.zip"],
        progress=lambda n, total: done.append((n, total)),
    )  # fmt: skip
    assert [r["file"] for r in rows] == ["good.wav", "bad.wav", "pack.zip/a/x.wav", "pack.zip/b/x.wav", "pack.zip/inner.zip"]
    assert [bool(r["error"]) for r in rows] == [False, True, False, False, True]
    assert "archives inside archives" in rows[4]["error"] and rows[2]["emotion"] == rows[3]["emotion"] == rows[0]["emotion"]
    assert done[-1] == (5, 5)
    lines = [json.loads(x) for x in (folder / "results.jsonl").read_text().splitlines()]
    assert [d["file"] for d in lines] == [r["file"] for r in rows] and lines[0]["probabilities"]
    with zipfile.ZipFile(folder / "results.zip") as zf:
        assert {"results.csv", "results.jsonl"} <= set(zf.namelist())
