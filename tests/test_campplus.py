"""CAM++ speaker embeddings: layout, features, network, windows and batching against FunASR 1.4.16 as the oracle."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from audio_files import speechlike
from conftest import funasr_model

from emotion_app.audio.fbank import fbank
from emotion_app.errors import AudioError, ModelLoadError
from emotion_app.speakers.model import CAMPPLUS, SpeakerModel, resolve_speaker_model
from emotion_app.tools.random_campplus import WEIGHTS_FILE, build_random_campplus

RATE = 16_000
DEAD = "http://127.0.0.1:9"  # nothing listens here: a download fails at once
TOL = 1e-4  # features: max abs difference to FunASR, every element
# embeddings: max difference to FunASR over their largest |value| (up to 14): float32 sums taken in
# another order (one torch thread or two) move the last digits, 1.6e-4 absolute at 1 thread
EMB_RTOL = 2e-5


def same_as_funasr(got: np.ndarray, expected: np.ndarray) -> bool:
    return np.abs(got - expected).max() <= EMB_RTOL * np.abs(expected).max()


def varied(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like test audio: gliding harmonics under a syllable envelope, plus a tone burst and noise."""
    x = speechlike(seconds, RATE, seed)
    t = np.arange(len(x)) / RATE
    burst = 0.1 * np.sin(2 * np.pi * 900 * t) * (np.sin(2 * np.pi * 0.9 * t) > 0.6)
    noise = 0.01 * np.random.default_rng(seed + 100).standard_normal(len(x))
    return (x + burst + noise).astype(np.float32)


@pytest.fixture(scope="module")
def campplus_dir(tmp_path_factory):
    return build_random_campplus(tmp_path_factory.mktemp("campplus"), seed=0)


@pytest.fixture(scope="module")
def state(campplus_dir):
    import torch

    return torch.load(campplus_dir / WEIGHTS_FILE, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def reference(state):
    """FunASR's own CAMPPlus with the random weights, eval mode."""
    from funasr.models.campplus.model import CAMPPlus

    model = CAMPPlus(feat_dim=80, embedding_size=192)
    model.load_state_dict(state, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def speaker(campplus_dir):
    return SpeakerModel(str(campplus_dir))


def funasr_embeddings(reference, pieces: list[np.ndarray]) -> np.ndarray:
    """FunASR's inference path: load_audio_text_image_video -> extract_feature -> forward (one padded batch)."""
    import torch

    with torch.no_grad():
        results, _ = reference.inference(pieces, device="cpu")
    return results[0]["spk_embedding"].numpy()


# --- layout -------------------------------------------------------------------------------------


def test_random_checkpoint_has_funasr_layout(state, reference, campplus_dir):
    from emotion_app.speakers.campplus import CAMPPlus

    assert list(state) == list(reference.state_dict())  # same keys, same order (strict load above passed)
    assert all(state[k].shape == v.shape for k, v in reference.state_dict().items())
    ours = CAMPPlus()
    ours.load_state_dict(state, strict=True)
    assert len(state) == 937 and sum(v.numel() for k, v in state.items() if "num_batches" not in k) == 6_930_720
    var = state["xvector.block2.tdnnd7.nonlinear1.batchnorm.running_var"]
    mean = state["xvector.dense.nonlinear.batchnorm.running_mean"]
    assert 0.5 <= var.min() and var.max() <= 1.5 and var.std() > 0.2 and 0.05 < mean.std() < 0.2
    assert (campplus_dir / "configuration.json").is_file() and (campplus_dir / "config.yaml").is_file()


def test_funasr_automodel_reads_the_folder(campplus_dir, speaker):
    """The placeholder configuration.json + config.yaml are enough for FunASR's own hub-folder loader."""
    model = funasr_model(campplus_dir)
    x = varied(1.2, seed=7)
    got = model.generate(input=x)[0]["spk_embedding"][0].numpy()
    assert same_as_funasr(speaker.embed(x), got)


# --- features -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "samples"),
    [
        ("speech 3 s", varied(3.0)),
        ("speech 0.2 s", varied(0.2, seed=1)),
        ("one frame", varied(0.03, seed=2)),  # 480 samples: T = 1, all zeros after the mean
        ("silence 1 s", np.zeros(RATE, np.float32)),
        ("below one frame", varied(0.02, seed=3)),  # 320 samples: T = 0
        ("loud", np.clip(4 * varied(1.0, seed=4), -1, 1)),
    ],
)
def test_fbank_matches_funasr(name, samples):
    import torch
    from funasr.models.campplus.utils import extract_feature

    expected, lengths, _ = extract_feature([torch.from_numpy(samples)])
    expected = expected[0].numpy()
    got = fbank(samples)
    assert got.dtype == np.float32 and got.shape == expected.shape == (lengths[0], 80)
    assert got.shape[0] == (0 if len(samples) < 400 else 1 + (len(samples) - 400) // 160)
    if got.size:
        assert np.abs(got - expected).max() <= TOL, name
        assert np.abs(got.mean(axis=0)).max() < 1e-4  # mean-normalised over time


def test_fbank_is_deterministic_and_unscaled():
    """No dither (two runs are identical); input is taken as [-1, 1] floats (a 32768x louder copy only
    shifts the log mels, which the mean removal cancels, so features agree away from the log floor)."""
    x = varied(1.0, seed=5)
    assert np.array_equal(fbank(x), fbank(x.copy()))
    assert np.abs(fbank(x) - fbank(x * 32768)).max() < 1e-2


# --- network ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0.8, 1.5, 4.0])
def test_embedding_matches_funasr(reference, speaker, seconds):
    x = varied(seconds, seed=int(seconds * 10))
    expected = funasr_embeddings(reference, [x])[0]
    got = speaker.embed(x)
    assert got.shape == (192,) and got.dtype == np.float32
    assert np.abs(expected).max() > 1.0  # a real signal, not a collapsed network
    assert same_as_funasr(got, expected)


def test_embed_windows_follow_funasr_sv_chunk(reference, speaker):
    from funasr.models.campplus.utils import sv_chunk

    x = varied(5.0, seed=11)
    chunks = sv_chunk([[0.0, 5.0, x]])
    starts, emb = speaker.embed_windows(x)
    assert len(starts) == len(chunks) == 6 and emb.shape == (6, 192)
    np.testing.assert_allclose(starts, [c[0] for c in chunks], atol=1e-9)
    np.testing.assert_allclose(starts, [0.0, 0.75, 1.5, 2.25, 3.0, 3.5])  # the last window ends at 5.0 s
    expected = funasr_embeddings(reference, [c[2] for c in chunks])  # FunASR's diarization embeddings
    assert same_as_funasr(emb, expected)
    for (start, *_), row in zip(chunks, emb):
        a = int(round(start * RATE))
        assert np.abs(row - speaker.embed(x[a : a + 24_000])).max() <= 1e-5


def test_short_segment_is_one_padded_window(reference, speaker):
    from funasr.models.campplus.utils import sv_chunk

    x = varied(1.1, seed=12)
    chunks = sv_chunk([[0.0, 1.1, x]])
    starts, emb = speaker.embed_windows(x)
    assert len(chunks) == 1 and list(starts) == [0.0] and len(chunks[0][2]) == 24_000
    assert same_as_funasr(emb[0], funasr_embeddings(reference, [chunks[0][2]])[0])
    assert np.abs(emb[0] - speaker.embed(np.pad(x, (0, 24_000 - len(x))))).max() <= 1e-5
    assert speaker.embed_windows(np.zeros(0, np.float32))[1].shape == (0, 192)


def test_embed_batch_equals_one_at_a_time(speaker, monkeypatch):
    from emotion_app.speakers import model as speaker_module

    # 32_000 and 32_050 samples give the same 198 frames: one group; 1.0 s twice: another
    pieces = [varied(1.0, 1), varied(2.0, 2), varied(1.0, 3), varied(0.9, 4), varied(2.0, 5)[:32_050], varied(1.0, 6)]
    one_by_one = np.stack([speaker.embed(p) for p in pieces])
    assert np.abs(speaker.embed_batch(pieces) - one_by_one).max() <= 1e-5
    monkeypatch.setattr(speaker_module, "MAX_BATCH_FRAMES", 200)  # one piece per pass
    assert np.abs(speaker.embed_batch(pieces) - one_by_one).max() <= 1e-5
    assert not np.allclose(one_by_one[0], one_by_one[2], atol=1e-3)  # different audio, different embeddings


def test_bf16_embeddings_point_the_same_way(campplus_dir, speaker):
    half = SpeakerModel(campplus_dir, dtype="bf16")
    assert str(next(half.network.parameters()).dtype) == "torch.bfloat16"
    pieces = [varied(1.5, seed) for seed in range(20, 28)]
    full, low = speaker.embed_batch(pieces), half.embed_batch(pieces)
    assert low.dtype == np.float32 and np.abs(low - full).max() > 0  # computed in bf16, not fp32
    cosine = (full * low).sum(1) / np.linalg.norm(full, axis=1) / np.linalg.norm(low, axis=1)
    assert cosine.min() >= 0.999, cosine
    with pytest.raises(ValueError, match="fp32, bf16, fp16"):
        SpeakerModel(campplus_dir, dtype="int4")


def test_bad_input_is_refused_clearly(speaker):
    with pytest.raises(AudioError, match="too short for a speaker embedding"):
        speaker.embed(np.zeros(700, np.float32))
    with pytest.raises(AudioError, match="floating point"):
        speaker.embed(np.zeros(16_000, np.int16))
    with pytest.raises(AudioError, match="mono"):
        speaker.embed(np.zeros((2, 16_000), np.float32))
    with pytest.raises(AudioError, match="piece 1: samples contain NaN"):
        speaker.embed_batch([np.zeros(16_000, np.float32), np.full(16_000, np.nan, np.float32)])


# --- checkpoints --------------------------------------------------------------------------------


def _folder_with(folder, obj) -> str:
    """A model folder whose weights file holds `obj`."""
    import torch

    folder.mkdir()
    torch.save(obj, folder / WEIGHTS_FILE)
    return str(folder)


def test_damaged_checkpoints_name_the_key(tmp_path, state):
    import torch

    missing = {k: v for k, v in state.items() if k != "xvector.block3.tdnnd16.cam_layer.linear2.bias"}
    with pytest.raises(ModelLoadError, match=r"missing keys: xvector\.block3\.tdnnd16\.cam_layer\.linear2\.bias"):
        SpeakerModel(_folder_with(tmp_path / "a", missing))
    wrong = dict(state, **{"xvector.dense.linear.weight": torch.zeros(256, 1024, 1)})
    with pytest.raises(
        ModelLoadError, match=r"wrong shapes: xvector\.dense\.linear\.weight \(256, 1024, 1\) \(expected \(192, 1024, 1\)\)"
    ):
        SpeakerModel(_folder_with(tmp_path / "b", wrong))
    extra = {"module." + k: v for k, v in state.items()}
    with pytest.raises(ModelLoadError, match=r"unexpected keys: module\.head\.conv1\.weight.*\(and 932 more\)"):
        SpeakerModel(_folder_with(tmp_path / "c", extra))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / WEIGHTS_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match="could not read .* as a torch state dict"):
        SpeakerModel(str(tmp_path / "d"))


def test_checkpoint_without_num_batches_tracked_loads(tmp_path, state, speaker):
    lean = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    model = SpeakerModel(_folder_with(tmp_path / "e", lean))
    x = varied(1.0, seed=9)
    assert np.array_equal(model.embed(x), speaker.embed(x))


# --- model sources ------------------------------------------------------------------------------


def test_aliases_and_ids():
    assert CAMPPLUS.hub_id("campplus", "ms") == "iic/speech_campplus_sv_zh-cn_16k-common"
    assert CAMPPLUS.hub_id("cam++", "hf") == "funasr/campplus"
    assert CAMPPLUS.hub_id("iic/speech_campplus_sv_zh-cn_16k-common", "hf") == "funasr/campplus"
    assert CAMPPLUS.hub_id("someone/other_campplus", "ms") == "someone/other_campplus"
    with pytest.raises(ModelLoadError, match="unknown hub 'xx'"):
        CAMPPLUS.hub_id("campplus", "xx")


def test_local_folders(campplus_dir, tmp_path):
    assert resolve_speaker_model(str(campplus_dir)) == campplus_dir
    with pytest.raises(ModelLoadError, match=f"lacks {WEIGHTS_FILE}"):
        resolve_speaker_model(str(tmp_path))
    with pytest.raises(ModelLoadError, match="speaker model folder .* does not exist"):
        resolve_speaker_model(str(tmp_path / "nowhere"))


@pytest.mark.parametrize(
    ("hub", "name", "repo"),
    [("ms", "ModelScope", "iic/speech_campplus_sv_zh-cn_16k-common"), ("hf", "Hugging Face", "funasr/campplus")],
)
def test_unreachable_hub_gives_a_clear_error_quickly(tmp_path, monkeypatch, hub, name, repo):
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "2")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "2")
    began = time.monotonic()
    with pytest.raises(ModelLoadError) as info:
        resolve_speaker_model("campplus", hub, cache_dir=tmp_path, endpoint=DEAD)
    assert time.monotonic() - began < 30
    msg = str(info.value)
    assert f"Could not download speaker model '{repo}' from {name}" in msg
    assert "--speaker-model /path/to/campplus (containing campplus_cn_common.bin)" in msg and "--hub" in msg


def test_cached_snapshot_is_used_without_network(tmp_path, campplus_dir):
    import shutil

    root = tmp_path / "models--funasr--campplus"
    shutil.copytree(campplus_dir, root / "snapshots" / "abc123")
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("abc123")
    assert resolve_speaker_model("campplus", "hf", cache_dir=tmp_path, endpoint=DEAD) == root / "snapshots" / "abc123"


def test_imports_stay_light():
    heavy = "('torch', 'kaldi_native_fbank', 'modelscope', 'huggingface_hub', 'funasr')"
    code = (
        "import sys, emotion_app.speakers.model, emotion_app.audio.fbank, emotion_app.tools.random_campplus; "
        f"print(sorted(m for m in {heavy} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr
