"""Batch processing from the command line: folders, zips, bad files, resuming, formats."""

from __future__ import annotations

import csv
import json
import zipfile

import numpy as np
from audio_files import espeak, speechlike, write_audio
from test_cli import run

from emotion_app.batch import COLUMNS, collect_inputs, extract_zip
from emotion_app.constants import LABEL_KEYS


def make_tree(tmp_path):
    root = tmp_path / "calls"
    (root / "day2").mkdir(parents=True)
    write_audio(root / "a.wav", speechlike(2.0, seed=1), 16000, "wav")
    write_audio(root / "b.mp3", speechlike(3.0, 44100, seed=2), 44100, "mp3")
    (root / "broken.flac").write_bytes(b"fLaC but not really" * 10)
    (root / "notes.txt").write_text("not audio, not collected from a folder")
    write_audio(root / "day2" / "c.ogg", speechlike(1.5, seed=3), 16000, "ogg")
    return root


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_collect_inputs_folders_recursion_and_zips(tmp_path):
    root = make_tree(tmp_path)
    assert [p.name for p in collect_inputs([root])] == ["a.wav", "b.mp3", "broken.flac"]
    assert [p.name for p in collect_inputs([root], recursive=True)] == ["a.wav", "b.mp3", "broken.flac", "c.ogg"]
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(root / "a.wav", "../../escape/a.wav")
        zf.write(root / "day2" / "c.ogg", "/abs/c.ogg")
        zf.writestr("readme.md", "skipped")
    files = extract_zip(archive, tmp_path / "out")
    assert [f.name for f in files] == ["a.wav", "c.ogg"]
    assert all((tmp_path / "out") in f.parents for f in files) and not (tmp_path / "escape").exists()
    assert files[0].read_bytes() == (root / "a.wav").read_bytes()


def test_batch_rows_exit_code_and_resume(tiny_dir, tiny_engine, tmp_path):
    root = make_tree(tmp_path)
    out = tmp_path / "results"
    args = ("batch", str(root), "--recursive", "--model", str(tiny_dir), "--out", str(out))
    proc = run(*args)
    assert proc.returncode == 1, proc.stderr
    rows = read_csv(out / "results.csv")
    assert list(rows[0]) == COLUMNS
    by_name = {r["file"].rsplit("/", 1)[-1]: r for r in rows}
    assert sorted(by_name) == ["a.wav", "b.mp3", "broken.flac", "c.ogg"]
    assert by_name["broken.flac"]["error"] and not by_name["broken.flac"]["emotion"]
    expected = tiny_engine.predict(root / "a.wav")
    a = by_name["a.wav"]
    assert a["emotion"] == expected.emotion and a["error"] == "" and float(a["duration_s"]) == 2.0
    assert [float(a[k]) for k in LABEL_KEYS] == [round(float(p), 3) for p in expected.probabilities]
    assert "3 done, 1 failed, 0 skipped" in proc.stderr and "error: " in proc.stderr

    # resume: finished files are skipped, the failed one is tried again (and still fails)
    again = run(*args)
    assert again.returncode == 1 and "0 done, 1 failed, 3 skipped" in again.stderr
    rows2 = read_csv(out / "results.csv")
    assert len(rows2) == 4 and [r["file"] for r in rows2 if r["error"]] == [by_name["broken.flac"]["file"]]
    # fixed file: only it runs; exit code 0
    write_audio(root / "broken.flac", speechlike(1.0), 16000, "flac")
    fixed = run(*args)
    assert fixed.returncode == 0 and "1 done, 0 failed, 3 skipped" in fixed.stderr
    assert len(read_csv(out / "results.csv")) == 4 and not any(r["error"] for r in read_csv(out / "results.csv"))
    # --overwrite redoes everything
    redo = run(*args, "--overwrite")
    assert redo.returncode == 0 and "4 done, 0 failed, 0 skipped" in redo.stderr


def test_batch_jsonl_with_vad_segments_and_a_zip(tiny_dir, tmp_path):
    talk = np.concatenate([np.zeros(8000, np.float32), espeak("Hello, how are you today?"), np.zeros(16000, np.float32)])
    wav = write_audio(tmp_path / "talk.wav", talk, 16000, "wav")
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(wav, "inner/talk2.wav")
    out = tmp_path / "res"
    proc = run(
        "batch", str(wav), str(archive), "--model", str(tiny_dir), "--out", str(out), "--format", "jsonl", "--segment", "vad"
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [d["file"] for d in lines] == [str(wav.resolve()), "more.zip/talk2.wav"]
    for d in lines:
        assert d["granularity"] == "segments" and len(d["segments"]) == 1 and d["summary"]["num_segments"] == 1
        assert 0.4 <= d["segments"][0]["start"] <= 0.6
    bad = run(
        "batch", str(wav), "--model", str(tiny_dir), "--out", str(out), "--segment", "window", "--window-s", "5", "--hop-s", "8"
    )
    assert bad.returncode == 2 and "must not exceed the window length" in bad.stderr
