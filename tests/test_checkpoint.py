"""Checkpoint layouts, refusal of broken checkpoints, the weights cache and the config parser."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
import yaml
from audio_files import speechlike

from emotion_app import Engine, ModelLoadError
from emotion_app.model.checkpoint import _cache_dir, funasr_key, native_key
from emotion_app.model.config import config_from_dict, parse_feature_spec
from emotion_app.model.graph import Emotion2vec
from emotion_app.tools.random_checkpoint import PRESETS, build_random_checkpoint, template_text

CLIP = speechlike(2.0, seed=3)


def same_weights(probs, reference):
    # Equal weights give equal results up to BLAS noise (~5e-8: kernels vary with buffer alignment,
    # mmap'd model.pt vs safetensors cache); any wrong or missing weight moves them by > 1e-3.
    np.testing.assert_allclose(probs, reference, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def reference_probs(tiny_engine):
    return tiny_engine.predict(CLIP, sample_rate=16000).probabilities


@pytest.mark.parametrize("layout", ["model", "state_dict", "model_state_dict", "bare"])
@pytest.mark.parametrize("prefix", ["d2v_model.", "module.", ""])
def test_every_layout_loads_the_same_weights(tmp_path, layout, prefix, reference_probs):
    folder = build_random_checkpoint(tmp_path / "m", "tiny", layout=layout, prefix=prefix)
    probs = Engine(model=str(folder), cache_weights=False).predict(CLIP, sample_rate=16000).probabilities
    same_weights(probs, reference_probs)


def test_training_state_is_ignored(tmp_path, reference_probs):
    folder = build_random_checkpoint(tmp_path / "m", "tiny", training_state=True)
    obj = torch.load(folder / "model.pt", weights_only=True)
    assert "last_optimizer_state" in obj
    probs = Engine(model=str(folder), cache_weights=False).predict(CLIP, sample_rate=16000).probabilities
    same_weights(probs, reference_probs)


def _rewrite(folder, edit):
    obj = torch.load(folder / "model.pt", weights_only=True)
    edit(obj["model"])
    torch.save(obj, folder / "model.pt")


def test_missing_weight_is_refused_with_its_key(tmp_path):
    folder = build_random_checkpoint(tmp_path / "m", "tiny")
    _rewrite(folder, lambda sd: sd.pop("d2v_model.blocks.1.attn.qkv.weight"))
    with pytest.raises(ModelLoadError, match=r"1 weights missing: blocks\.1\.attn\.qkv\.weight"):
        Engine(model=str(folder), cache_weights=False)


def test_shape_mismatch_is_refused_with_key_and_shapes(tmp_path):
    folder = build_random_checkpoint(tmp_path / "m", "tiny")
    _rewrite(folder, lambda sd: sd.__setitem__("proj.weight", torch.zeros(5, 32)))
    with pytest.raises(ModelLoadError, match=r"proj\.weight: checkpoint \(5, 32\) vs config \(9, 32\)"):
        Engine(model=str(folder), cache_weights=False)


def test_config_of_another_model_is_refused(tmp_path, checkpoint_dirs):
    folder = tmp_path / "m"
    shutil.copytree(checkpoint_dirs["tiny"], folder)
    shutil.copy(checkpoint_dirs["tiny_large"] / "config.yaml", folder / "config.yaml")
    with pytest.raises(ModelLoadError, match="does not match its config.yaml"):
        Engine(model=str(folder), cache_weights=False)


def test_truncated_checkpoint_is_refused(tmp_path):
    folder = build_random_checkpoint(tmp_path / "m", "tiny")
    data = (folder / "model.pt").read_bytes()
    (folder / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="cannot read .*model.pt"):
        Engine(model=str(folder), cache_weights=False)


def test_pickled_code_is_refused(tmp_path):
    folder = build_random_checkpoint(tmp_path / "m", "tiny")
    torch.save({"model": {"x": torch.zeros(1)}, "hook": np.random.default_rng(0)}, folder / "model.pt")
    with pytest.raises(ModelLoadError, match="cannot read"):
        Engine(model=str(folder), cache_weights=False)


def test_missing_files_are_named(tmp_path, tiny_dir):
    folder = tmp_path / "m"
    shutil.copytree(tiny_dir, folder)
    (folder / "tokens.txt").unlink()
    with pytest.raises(ModelLoadError, match="lacks tokens.txt"):
        Engine(model=str(folder))


def test_weights_cache_is_used_and_invalidated(tmp_path, reference_probs):
    folder = build_random_checkpoint(tmp_path / "m", "tiny")
    cache = _cache_dir(folder / "model.pt")
    Engine(model=str(folder))
    assert (cache / "model.safetensors").is_file() and (cache / "source.json").is_file()
    # a cached start reads only the safetensors file: prove it by breaking model.pt's bytes
    # while keeping its size and mtime (the fingerprint)
    st = os.stat(folder / "model.pt")
    data = bytearray((folder / "model.pt").read_bytes())
    data[:64] = b"\0" * 64
    (folder / "model.pt").write_bytes(bytes(data))
    os.utime(folder / "model.pt", ns=(st.st_atime_ns, st.st_mtime_ns))
    same_weights(Engine(model=str(folder)).predict(CLIP, sample_rate=16000).probabilities, reference_probs)
    # a new model.pt (new mtime) invalidates the cache
    build_random_checkpoint(folder, "tiny", seed=9)
    probs = Engine(model=str(folder)).predict(CLIP, sample_rate=16000).probabilities
    assert np.abs(probs - reference_probs).max() > 1e-3


@pytest.mark.parametrize("preset", list(PRESETS))
def test_key_mapping_round_trips(preset):
    conf = yaml.safe_load(template_text())
    conf["model_conf"].update(PRESETS[preset][0])
    conf["model_conf"]["modalities"]["audio"].update(PRESETS[preset][1])
    for audio_over in ({}, {"extractor_mode": "default", "conv_pos_pre_ln": True}):
        conf["model_conf"]["modalities"]["audio"].update(audio_over)
        cfg = config_from_dict(conf)
        with torch.device("meta"):
            names = list(Emotion2vec(cfg, 9).state_dict())
        for name in names:
            assert native_key("d2v_model." + funasr_key(name, cfg)) == name


def test_real_plus_large_config_and_parameter_count():
    cfg = config_from_dict(yaml.safe_load(template_text()))
    assert (cfg.embed_dim, cfg.num_heads, cfg.depth, cfg.prenet_depth, cfg.conv_pos_kernel) == (1024, 16, 8, 4, 19)
    assert cfg.frame_stride == 320 and cfg.min_samples() == 400
    with torch.device("meta"):
        assert sum(p.numel() for p in Emotion2vec(cfg, 9).parameters()) == 162_140_185


def test_feature_spec_is_parsed_without_eval():
    assert parse_feature_spec("[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]") == (
        ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
    )
    for bad in ("__import__('os').system('true')", "[(512, 10)]", "[]", "[(1, 2, x)]"):
        with pytest.raises(ModelLoadError, match="feature_encoder_spec"):
            parse_feature_spec(bad)
