"""Batch processing from the command line: folders, zips, bad files, resuming, formats."""

from __future__ import annotations

import csv
import json
import zipfile

import numpy as np
from audio_files import espeak, speechlike, write_audio
from test_cli import in_process

from emotion_app.batch.inputs import Extractor, collect_inputs
from emotion_app.batch.tables import COLUMNS
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
    assert [i.path.name for i in collect_inputs([root])] == ["a.wav", "b.mp3", "broken.flac"]
    assert [i.name for i in collect_inputs([root], recursive=True)] == [
        "calls/a.wav", "calls/b.mp3", "calls/broken.flac", "calls/day2/c.ogg"
    ]  # fmt: skip
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(root / "a.wav", "../../escape/a.wav")
        zf.write(root / "day2" / "c.ogg", "/abs/c.ogg")
        zf.writestr("readme.md", "skipped")
    items = collect_inputs([archive])
    assert [i.name for i in items] == ["x.zip/../../escape/a.wav", "x.zip/abs/c.ogg"]
    assert all(i.path is None and i.error is None for i in items)  # listed, not extracted
    extractor = Extractor(tmp_path / "out")
    for item in items:
        extractor.materialise(item)
    assert all((tmp_path / "out") in i.path.parents for i in items) and not (tmp_path / "escape").exists()
    assert items[0].path.read_bytes() == (root / "a.wav").read_bytes()
    extractor.release(items[0])
    assert items[0].path is None and len(list((tmp_path / "out").rglob("*.*"))) == 1


def test_batch_rows_exit_code_and_resume(tiny_dir, tiny_engine, tmp_path):
    root = make_tree(tmp_path)
    out = tmp_path / "results"
    args = ("batch", str(root), "--recursive", "--model", str(tiny_dir), "--out", str(out))
    proc = in_process(*args)
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
    again = in_process(*args)
    assert again.returncode == 1 and "0 done, 1 failed, 3 skipped" in again.stderr
    rows2 = read_csv(out / "results.csv")
    assert len(rows2) == 4 and [r["file"] for r in rows2 if r["error"]] == [by_name["broken.flac"]["file"]]
    # fixed file: only it runs; exit code 0
    write_audio(root / "broken.flac", speechlike(1.0), 16000, "flac")
    fixed = in_process(*args)
    assert fixed.returncode == 0 and "1 done, 0 failed, 3 skipped" in fixed.stderr
    assert len(read_csv(out / "results.csv")) == 4 and not any(r["error"] for r in read_csv(out / "results.csv"))
    # --overwrite redoes everything
    redo = in_process(*args, "--overwrite")
    assert redo.returncode == 0 and "4 done, 0 failed, 0 skipped" in redo.stderr


def test_batch_jsonl_with_vad_segments_and_a_zip(tiny_dir, tmp_path):
    talk = np.concatenate([np.zeros(8000, np.float32), espeak("Hello, how are you today?"), np.zeros(16000, np.float32)])
    wav = write_audio(tmp_path / "talk.wav", talk, 16000, "wav")
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(wav, "inner/talk2.wav")
    out = tmp_path / "res"
    proc = in_process(
        "batch", str(wav), str(archive), "--model", str(tiny_dir), "--out", str(out), "--format", "jsonl", "--segment", "vad"
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [d["file"] for d in lines] == [str(wav.resolve()), f"{archive.resolve()}/inner/talk2.wav"]
    for d in lines:
        assert d["granularity"] == "segments" and len(d["segments"]) == 1 and d["summary"]["num_segments"] == 1
        assert 0.4 <= d["segments"][0]["start"] <= 0.6
    bad = in_process(
        "batch", str(wav), "--model", str(tiny_dir), "--out", str(out), "--segment", "window", "--window-s", "5", "--hop-s", "8"
    )
    assert bad.returncode == 2 and "must not exceed the window length" in bad.stderr


def _flip_encrypted(path):
    """Mark every member encrypted (general-purpose flag bit 0) in the local and central headers."""
    data = bytearray(path.read_bytes())
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = data.find(sig)
        while i >= 0:
            data[i + off] |= 1
            i = data.find(sig, i + 4)
    path.write_bytes(bytes(data))


def test_every_archive_fault_is_an_error_row_and_the_batch_goes_on(tiny_dir, tmp_path):
    good = write_audio(tmp_path / "good.wav", speechlike(1.2, seed=4), 16000, "wav")
    long_name = "n" * 300 + ".wav"  # over 255 bytes: no file system takes it as a name
    with zipfile.ZipFile(tmp_path / "long.zip", "w") as zf:
        zf.write(good, long_name)
    with zipfile.ZipFile(tmp_path / "crc.zip", "w", zipfile.ZIP_STORED) as zf:
        zf.write(good, "x.wav")
    data = bytearray((tmp_path / "crc.zip").read_bytes())
    data[200] ^= 0xFF  # inside the stored member: its CRC no longer matches
    (tmp_path / "crc.zip").write_bytes(bytes(data))
    with zipfile.ZipFile(tmp_path / "locked.zip", "w") as zf:
        zf.write(good, "secret.wav")
    _flip_encrypted(tmp_path / "locked.zip")
    (tmp_path / "damaged.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 300)
    with zipfile.ZipFile(tmp_path / "nested.zip", "w") as zf:
        zf.write(tmp_path / "long.zip", "inner/long.zip")
    wav = bytearray(good.read_bytes())
    wav[20] = 3  # format tag 3 (float) while the bits stay 16: PyAV has no codec context for it
    (tmp_path / "mutated.wav").write_bytes(bytes(wav))
    names = ["long.zip", "crc.zip", "locked.zip", "damaged.zip", "missing.zip", "nested.zip", "mutated.wav", "good.wav"]
    out = tmp_path / "res"
    proc = in_process(
        "batch", *(str(tmp_path / n) for n in names), "--model", str(tiny_dir), "--out", str(out), "--format", "jsonl"
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    by_tail = {d["file"][len(str(tmp_path)) + 1 :]: d for d in records}  # rows are named by absolute path
    assert by_tail[f"long.zip/{long_name}"]["emotion"] in LABEL_KEYS  # a long member name is no problem
    assert "cannot be extracted" in by_tail["crc.zip/x.wav"]["error"]
    assert "encrypted" in by_tail["locked.zip/secret.wav"]["error"]
    assert "not a readable zip archive" in by_tail["damaged.zip"]["error"]
    assert "no such file" in by_tail["missing.zip"]["error"]
    assert "archives inside archives" in by_tail["nested.zip/inner/long.zip"]["error"]
    assert by_tail["mutated.wav"]["error"] and by_tail["good.wav"]["emotion"] in LABEL_KEYS
    assert len(by_tail) == 8


def test_same_archive_names_in_two_folders_stay_apart(tiny_dir, tiny_engine, tmp_path):
    for i, folder in enumerate(("d1", "d2")):
        (tmp_path / folder).mkdir()
        clip = write_audio(tmp_path / f"clip{i}.wav", speechlike(1.0 + i, seed=10 + i), 16000, "wav")
        with zipfile.ZipFile(tmp_path / folder / "pack.zip", "w") as zf:
            zf.write(clip, "a/x.wav")
            zf.write(clip, "b/x.wav")
    out = tmp_path / "res"
    proc = in_process(
        "batch",
        str(tmp_path / "d1" / "pack.zip"),
        str(tmp_path / "d2" / "pack.zip"),
        "--model",
        str(tiny_dir),
        "--out",
        str(out),
        "--format",
        "jsonl",
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len({d["file"] for d in lines}) == 4  # unique row names: archive path + member path
    assert [d["duration_s"] for d in lines] == [1.0, 1.0, 2.0, 2.0]  # each archive its own content


def test_extraction_is_lazy_and_budgeted(tmp_path):
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(3):
            zf.writestr(f"z{i}.wav", b"\x00" * (2 << 20))  # 2 MB each, a few KB compressed
    items = collect_inputs([tmp_path / "bomb.zip"])
    assert (tmp_path / "bomb.zip").stat().st_size < 100_000 and not list(tmp_path.glob("x/**/*.wav"))
    extractor = Extractor(tmp_path / "x", budget=5 << 20)
    for item in items:
        extractor.materialise(item)
    assert [i.error is None for i in items] == [True, True, False] and "passes the limit" in items[2].error
    extractor.cleanup()
    assert not (tmp_path / "x").exists()
