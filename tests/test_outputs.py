"""Output folders: unique names, all-or-nothing writes, safe download lookup."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest
import soundfile as sf

from emotion_app.outputs import (
    download_urls,
    folder_key,
    in_flight,
    output_file,
    result_text,
    temp_folder,
    write_output_folder,
)

NOW = datetime(2026, 11, 22, 14, 0, 5)


def test_same_second_gets_unique_names(tmp_path):
    x = np.zeros(1600, np.float32)
    names = [write_output_folder(tmp_path, {"n": i}, x, None, NOW).name for i in range(4)]
    assert names == [
        "outputs_20261122_140005",
        "outputs_20261122_140005_2",
        "outputs_20261122_140005_3",
        "outputs_20261122_140005_4",
    ]
    for i, name in enumerate(names):
        assert json.loads((tmp_path / name / "result.json").read_text()) == {"n": i, "output_dir": name}
    audio, rate = sf.read(tmp_path / names[0] / "processed_audio.wav")
    assert rate == 16000 and len(audio) == 1600 and sf.info(tmp_path / names[0] / "processed_audio.wav").subtype == "PCM_16"


def test_result_json_lays_objects_out_and_puts_each_record_of_a_list_on_a_line(tmp_path):
    frame = {"start": 0.0, "end": 0.02, "emotion": "开心", "scores": {"happy": 0.9, "sad": 0.1}}
    result = {"emotion": "happy", "scores": {"happy": 0.9, "sad": 0.1}, "warnings": [], "change_points": [1.5, 2.0],
              "frames": [frame, {**frame, "start": 0.02}], "summary": {"nested": {"deep": [[1, 2], [3]]}},
              "none": None}  # fmt: skip
    folder = write_output_folder(tmp_path, result, None, None, NOW)
    text = (folder / "result.json").read_text(encoding="utf-8")
    assert json.loads(text) == {**result, "output_dir": folder.name} and text == result_text(json.loads(text))
    lines = text.splitlines()
    assert lines[:5] == ["{", '  "emotion": "happy",', '  "scores": {', '    "happy": 0.9,', '    "sad": 0.1']
    assert '  "warnings": [],' in lines and '  "change_points": [1.5, 2.0],' in lines
    assert lines.count("    " + json.dumps(frame, ensure_ascii=False) + ",") == 1  # a record a line, unescaped
    assert '      "deep": [' in lines and "        [1, 2]," in lines and "        [3]" in lines
    plain = {"a": {"b": 1, "c": "x"}, "d": {}}  # without lists: as json.dumps(indent=2) writes it
    assert result_text(plain) == json.dumps(plain, indent=2)
    keys = {1: "one", None: [], False: 0.5, 1.5: {"x": float("nan")}}  # keys as json converts them
    assert result_text(keys) == json.dumps(keys, indent=2) and "NaN" in result_text(keys)


def test_failure_leaves_nothing(tmp_path):
    class Unsaveable:
        def __array__(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_output_folder(tmp_path, {}, np.zeros(800, np.float32), Unsaveable(), NOW)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("error", [RuntimeError("model failed"), KeyboardInterrupt()])
def test_a_temp_folder_is_removed_when_its_block_fails(tmp_path, error):
    """The one cleanup of service.py's requests: whatever stops the block, its folder goes, and the error goes on."""
    with pytest.raises(type(error)):
        with temp_folder(tmp_path) as tmp:
            assert in_flight(tmp) and tmp.parent == tmp_path  # hidden in the outputs folder, skipped by the sweeper
            (tmp / "processed_audio.wav").write_bytes(b"half")
            raise error
    assert list(tmp_path.iterdir()) == []
    with temp_folder(tmp_path) as tmp:  # on success it is written into place
        folder = write_output_folder(tmp_path, {}, np.zeros(800, np.float32), None, NOW, tmp=tmp)
    assert list(tmp_path.iterdir()) == [folder] and (folder / "processed_audio.wav").is_file()


def test_download_lookup_refuses_anything_else(tmp_path):
    folder = write_output_folder(tmp_path, {}, np.zeros(800, np.float32), np.ones(4), NOW)
    key = folder_key(tmp_path, folder.name)
    assert output_file(tmp_path, folder.name, key, "embedding.npy") == folder / "embedding.npy"
    for bad_folder, bad_key, name in [
        ("..", key, "result.json"),
        (folder.name, key, "../x"),
        ("outputs_x", key, "result.json"),
        (folder.name, key, "other.txt"),
        (folder.name, key[:-1] + ("A" if key[-1] != "A" else "B"), "embedding.npy"),
        (folder.name, "", "embedding.npy"),
        (folder.name, "ключ", "embedding.npy"),
    ]:
        assert output_file(tmp_path, bad_folder, bad_key, name) is None


def test_links_carry_a_per_folder_key_from_a_private_secret(tmp_path):
    a = write_output_folder(tmp_path, {}, np.zeros(800, np.float32), None, NOW)
    b = write_output_folder(tmp_path, {}, np.zeros(800, np.float32), None, NOW)
    urls = download_urls(a, {"result.json": a / "result.json"})
    key = urls["result.json"].split("/")[-2]
    assert urls == {"result.json": f"/api/outputs/{a.name}/{key}/result.json"} and len(key) == 32  # 192 bits
    assert key != folder_key(tmp_path, b.name) and key == folder_key(tmp_path, a.name)  # stable, per folder
    assert (tmp_path / ".secret").stat().st_mode & 0o777 == 0o600
    (tmp_path / ".secret").unlink()  # a new secret: every old link stops working
    assert folder_key(tmp_path, a.name) != key and output_file(tmp_path, a.name, key, "result.json") is None
