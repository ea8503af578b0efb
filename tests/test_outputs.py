"""Output folders: unique names, all-or-nothing writes, safe download lookup."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest
import soundfile as sf

from emotion_app.outputs import output_file, write_output_folder

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


def test_failure_leaves_nothing(tmp_path):
    class Unsaveable:
        def __array__(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_output_folder(tmp_path, {}, np.zeros(800, np.float32), Unsaveable(), NOW)
    assert list(tmp_path.iterdir()) == []


def test_download_lookup_refuses_anything_else(tmp_path):
    folder = write_output_folder(tmp_path, {}, np.zeros(800, np.float32), np.ones(4), NOW)
    assert output_file(tmp_path, folder.name, "embedding.npy") == folder / "embedding.npy"
    for bad_folder, name in [
        ("..", "result.json"),
        (folder.name, "../x"),
        ("outputs_x", "result.json"),
        (folder.name, "other.txt"),
    ]:
        assert output_file(tmp_path, bad_folder, name) is None
