"""Model sources: local folders, aliases, and hub downloads up to the network boundary."""

from __future__ import annotations

import sys

import pytest

from emotion_app import ModelLoadError
from emotion_app.model.hub import hub_id, resolve_model

DEAD = "http://127.0.0.1:9"  # nothing listens here: the download fails fast, offline or not


def test_aliases_and_ids():
    assert hub_id("emotion2vec_plus_large", "ms") == "iic/emotion2vec_plus_large"
    assert hub_id("emotion2vec_plus_base", "hf") == "emotion2vec/emotion2vec_plus_base"
    assert hub_id("iic/emotion2vec_plus_seed", "hf") == "emotion2vec/emotion2vec_plus_seed"
    assert hub_id("someone/custom", "ms") == "someone/custom"
    with pytest.raises(ModelLoadError, match="unknown hub 'xx'"):
        hub_id("emotion2vec_plus_large", "xx")


def test_local_folder(tiny_dir):
    assert resolve_model(str(tiny_dir)) == tiny_dir


@pytest.mark.parametrize(
    ("hub", "name", "repo"),
    [("ms", "ModelScope", "iic/emotion2vec_plus_large"), ("hf", "Hugging Face", "emotion2vec/emotion2vec_plus_large")],
)
def test_unreachable_hub_gives_a_clear_error(tmp_path, monkeypatch, hub, name, repo):
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "2")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "2")
    with pytest.raises(ModelLoadError) as info:
        resolve_model("emotion2vec_plus_large", hub, cache_dir=tmp_path, endpoint=DEAD)
    msg = str(info.value)
    assert f"Could not download model '{repo}' from {name}" in msg
    assert "--model /path/to/emotion2vec_plus_large" in msg and "--hub" in msg
    if hub == "ms":  # said after one request, not after the client's 7 s of retries
        assert f"{DEAD} does not answer (ConnectionError)" in msg, msg


def test_cached_snapshot_is_used_without_network(tmp_path, tiny_dir):
    """A model already in the Hugging Face cache loads with the network unreachable."""
    import shutil

    snap = tmp_path / "models--emotion2vec--emotion2vec_plus_large" / "snapshots" / "abc123"
    shutil.copytree(tiny_dir, snap)
    (tmp_path / "models--emotion2vec--emotion2vec_plus_large" / "refs").mkdir()
    (tmp_path / "models--emotion2vec--emotion2vec_plus_large" / "refs" / "main").write_text("abc123")
    assert resolve_model("emotion2vec_plus_large", "hf", cache_dir=tmp_path, endpoint=DEAD) == snap


def test_import_makes_no_network_or_torch_imports():
    import subprocess

    heavy = "('torch', 'modelscope', 'huggingface_hub', 'av')"
    code = f"import sys, emotion_app; emotion_app.LABELS; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
    assert out == "[]"
