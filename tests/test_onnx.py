"""The ONNX export and its torch-free backend: parity with the torch engine, folder checks."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from emotion_app.constants import LABEL_KEYS, LABELS  # noqa: E402
from emotion_app.errors import ModelLoadError  # noqa: E402
from emotion_app.model.onnx_backend import OnnxModel  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RATE = 16000
TOL = 1e-4  # |dp| between onnxruntime and torch fp32: both fp32, only the summation order differs (measured ~3e-6)


def signal(kind: str, seconds: float, seed: int = 0) -> np.ndarray:
    """Generated test audio at 16 kHz: two tones, white noise or a rising chirp."""
    t = np.arange(int(seconds * RATE)) / RATE
    if kind == "tone":
        x = 0.4 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 660 * t)
    elif kind == "noise":
        x = 0.1 * np.random.default_rng(seed).standard_normal(len(t))
    else:
        x = 0.3 * np.sin(2 * np.pi * (80 + 300 * t / max(seconds, 1e-3)) * t)
    return x.astype(np.float32)


def assert_same(onnx_outs, torch_outs, what: str) -> None:
    """ChunkOutputs agree: probabilities within TOL, identical top labels, features within TOL relative."""
    assert len(onnx_outs) == len(torch_outs)
    for i, (o, r) in enumerate(zip(onnx_outs, torch_outs)):
        msg = f"{what}, item {i}"
        assert o.frame_probabilities.shape == r.frame_probabilities.shape, msg
        np.testing.assert_allclose(o.probabilities, r.probabilities, rtol=0, atol=TOL, err_msg=msg)
        np.testing.assert_allclose(o.frame_probabilities, r.frame_probabilities, rtol=0, atol=TOL, err_msg=msg)
        assert o.probabilities.argmax() == r.probabilities.argmax(), msg
        np.testing.assert_array_equal(o.frame_probabilities.argmax(-1), r.frame_probabilities.argmax(-1), err_msg=msg)
        assert np.abs(o.mean - r.mean).max() <= TOL * max(np.abs(r.mean).max(), 1e-6), msg
        if r.frames is not None and len(r.frames):
            assert o.frames.shape == r.frames.shape, msg
            assert np.abs(o.frames - r.frames).max() <= TOL * np.abs(r.frames).max(), msg


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory, tiny_dir) -> Path:
    """The tiny checkpoint exported through the CLI, with frame embeddings."""
    from emotion_app.cli.main import main

    folder = tmp_path_factory.mktemp("onnx") / "tiny"
    assert main(["export-onnx", str(folder), "--model", str(tiny_dir), "--frame-embeddings"]) == 0
    return folder


@pytest.fixture(scope="module")
def onnx_model(tiny_onnx) -> OnnxModel:
    return OnnxModel(tiny_onnx)


@pytest.mark.parametrize("seconds", [0.5, 1.0, 3.3, 12.0, 30.0])
def test_single_inputs_match_torch(onnx_model, tiny_engine, seconds):
    for kind in ("tone", "noise", "chirp"):
        x = signal(kind, seconds, seed=int(seconds * 10))
        ours, ref = onnx_model.run_chunks([x], keep_frames=True), tiny_engine.run_chunks([x], keep_frames=True)
        assert_same(ours, ref, f"{kind} {seconds} s")
        assert len(ours[0].frame_probabilities) == (len(x) - 400) // 320 + 1


def test_padded_batch_matches_torch_and_single_items(onnx_model, tiny_engine):
    specs = [("chirp", 7.0), ("tone", 0.5), ("noise", 30.0), ("tone", 2.2), ("chirp", 12.5), ("noise", 0.03), ("tone", 0.02)]
    clips = [signal(kind, s, seed=i) for i, (kind, s) in enumerate(specs)]
    batch = onnx_model.run_chunks(clips, keep_frames=True)
    assert [len(o.frame_probabilities) for o in batch] == [349, 24, 1499, 109, 624, 1, 0]
    assert_same(batch, tiny_engine.run_chunks(clips, keep_frames=True), "padded batch")
    for clip, out in zip(clips, batch):
        assert_same([out], onnx_model.run_chunks([clip], keep_frames=True), f"{len(clip)} samples alone")


def test_head_probabilities_match_the_graph_and_the_engine(onnx_model, tiny_engine):
    outs = onnx_model.run_chunks([signal("chirp", 4.0), signal("noise", 2.0, seed=3)])
    means = np.stack([o.mean for o in outs])
    np.testing.assert_allclose(onnx_model.head_probabilities(means), [o.probabilities for o in outs], rtol=0, atol=1e-6)
    for mean in means:
        np.testing.assert_allclose(onnx_model.head_probabilities(mean), tiny_engine.head_probabilities(mean), rtol=0, atol=1e-6)


def test_folder_holds_labels_and_a_readme_whose_example_runs(tiny_onnx, tiny_dir):
    meta = json.loads((tiny_onnx / "labels.json").read_text(encoding="utf-8"))
    assert [label["key"] for label in meta["labels"]] == list(LABEL_KEYS)
    assert [(label["zh"], label["emoji"]) for label in meta["labels"]] == [(lab.zh, lab.emoji) for lab in LABELS]
    assert (meta["model_id"], meta["embed_dim"], meta["sample_rate"]) == (str(tiny_dir), 32, 16000)
    assert meta["frame_embeddings"] is True and not (tiny_onnx / "model.onnx.data").exists()
    readme = (tiny_onnx / "README.md").read_text(encoding="utf-8")
    example = readme.split("```python\n")[1].split("```")[0]
    proc = subprocess.run([sys.executable, "-c", example], cwd=tiny_onnx, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and lines[0].split()[0] in LABEL_KEYS and lines[0].endswith("149 frames")


def test_backend_runs_without_torch(tiny_onnx):
    code = f"""
import sys
import numpy as np
from emotion_app.model.onnx_backend import OnnxModel
model = OnnxModel({str(tiny_onnx)!r})
out = model.run_chunks([np.sin(np.arange(32000) / 10).astype(np.float32)], keep_frames=True)[0]
assert out.probabilities.shape == (9,) and out.frames.shape == (99, 32), out.frames.shape
print(model.labels[int(out.probabilities.argmax())], "torch" in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    label, torch_loaded = proc.stdout.split()
    assert label in LABEL_KEYS and torch_loaded == "False"


def test_frames_need_an_export_with_frame_embeddings(tmp_path, tiny_dir):
    from emotion_app.tools.onnx_export import export_onnx

    folder, diff = export_onnx(str(tiny_dir), tmp_path / "plain")
    assert diff <= TOL
    model = OnnxModel(folder)
    assert not model.has_frame_embeddings and model.run_chunks([signal("tone", 1.0)])[0].frames is None
    with pytest.raises(ModelLoadError, match="--frame-embeddings"):
        model.run_chunks([signal("tone", 1.0)], keep_frames=True)


def test_weights_over_the_limit_go_to_external_data(tmp_path, tiny_engine, onnx_model):
    from emotion_app.model.config import read_tokens
    from emotion_app.tools.onnx_export import export_model

    tokens = read_tokens(tiny_engine.model_dir)
    folder = export_model(tiny_engine.model, tokens, tmp_path / "ext", "tiny", max_inline_bytes=0)
    assert (folder / "model.onnx.data").stat().st_size > (folder / "model.onnx").stat().st_size
    x = signal("noise", 2.0)
    assert_same(OnnxModel(folder).run_chunks([x]), onnx_model.run_chunks([x]), "external data")
    (folder / "model.onnx.data").unlink()
    with pytest.raises(ModelLoadError, match=r"lacks model\.onnx\.data"):
        OnnxModel(folder)
    export_model(tiny_engine.model, tokens, folder, "tiny")  # again, inline: no stale weights file is left
    assert not (folder / "model.onnx.data").exists()
    assert_same(OnnxModel(folder).run_chunks([x]), onnx_model.run_chunks([x]), "re-exported inline")


@pytest.mark.parametrize("name", ["labels.json", "model.onnx", "head.npz"])
def test_incomplete_folder_is_refused_naming_the_file(tiny_onnx, tmp_path, name):
    folder = tmp_path / "copy"
    shutil.copytree(tiny_onnx, folder)
    (folder / name).unlink()
    with pytest.raises(ModelLoadError, match=f"lacks {re.escape(name)}") as err:
        OnnxModel(folder)
    assert "python -m emotion_app export-onnx" in str(err.value)


def test_files_of_another_model_are_refused(tiny_onnx, checkpoint_dirs, tmp_path):
    from emotion_app.tools.onnx_export import export_onnx

    other, _ = export_onnx(str(checkpoint_dirs["tiny_large"]), tmp_path / "other")
    for name in ("labels.json", "head.npz"):
        folder = tmp_path / f"mixed_{name.replace('.', '_')}"
        shutil.copytree(tiny_onnx, folder)
        shutil.copy(other / name, folder / name)
        with pytest.raises(ModelLoadError, match=f"{re.escape(name)} .*another model") as err:
            OnnxModel(folder)
        assert "export-onnx" in str(err.value)


def test_missing_packages_give_the_install_hint(tiny_onnx, tiny_engine, tmp_path, monkeypatch):
    from emotion_app.tools.onnx_export import export_model

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    with pytest.raises(ModelLoadError, match=r"onnxruntime.*pip install -r requirements-onnx\.txt"):
        OnnxModel(tiny_onnx)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ModelLoadError, match=r"pip install -r requirements-onnx\.txt"):
        export_model(tiny_engine.model, ["a", "b"], tmp_path / "never", "tiny")


@pytest.mark.xdist_group("heavy")  # the worker that holds the full-size model
def test_plus_large_layout_matches_torch(plus_large):
    import torch

    engine, folder = plus_large
    model = OnnxModel(folder, threads=torch.get_num_threads())  # the worker's share (test_int8's gate says why)
    assert model.embed_dim == 1024 and model.labels == LABEL_KEYS
    clips = [signal("chirp", 3.0), signal("noise", 1.3, seed=4)]
    assert_same(model.run_chunks(clips[:1]), engine.run_chunks(clips[:1]), "plus_large 3 s")
    assert_same(model.run_chunks(clips), engine.run_chunks(clips), "plus_large batch")


TORCH_FREE = """
import sys
sys.modules["torch"] = None  # any `import torch` now fails: the ONNX path must never need it
from pathlib import Path
from emotion_app import Engine, RequestOptions
from emotion_app.service import analyze
engine = Engine(model=sys.argv[1], backend="onnx")
clip = engine.predict(sys.argv[2], granularity="frame")
rec = analyze(engine, sys.argv[2], RequestOptions.from_fields({"segment": "vad"}), outputs_dir=Path(sys.argv[3]))
print(clip.emotion, len(clip.frame_probabilities), len(rec.result["segments"]), rec.result["model"]["backend"])
"""


def test_the_onnx_backend_runs_without_torch(tiny_onnx, tiny_engine, tmp_path):
    """Engine(backend="onnx") predicts and cuts a long recording with Silero's ONNX VAD (vad.onnx,
    copied by export-onnx) in a process where torch cannot be imported."""
    from audio_files import espeak, write_audio

    assert (tiny_onnx / "vad.onnx").is_file()
    pause = np.zeros(8000, np.float32)
    talk = np.concatenate([pause, espeak("Good morning."), pause, espeak("See you later.", 1), pause])
    path = write_audio(tmp_path / "talk.wav", talk, 16000, "wav")
    proc = subprocess.run(
        [sys.executable, "-c", TORCH_FREE, str(tiny_onnx), str(path), str(tmp_path / "out")],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    emotion, frames, segments, backend = proc.stdout.split()
    expected = tiny_engine.predict(path, granularity="frame")
    assert emotion == expected.emotion and int(frames) == len(expected.frame_probabilities)
    assert int(segments) == 2 and backend == "onnx"


def test_onnx_vad_matches_silero_torchscript():
    from audio_files import espeak

    from emotion_app.audio.vad import OnnxVad, TorchVad, silero_onnx_file

    x = np.concatenate([np.zeros(8000, np.float32), espeak("The weather is lovely today."), np.zeros(8000, np.float32)])
    x = x[: len(x) // 512 * 512]
    onnx_probs, torch_probs = np.array(OnnxVad(silero_onnx_file())(x)), np.array(TorchVad()(x))
    assert np.abs(onnx_probs - torch_probs).max() < 0.02
    assert ((onnx_probs > 0.5) == (torch_probs > 0.5)).mean() > 0.98 and (onnx_probs > 0.5).mean() > 0.3


def test_the_live_meter_scores_whole_windows_on_onnx(tiny_onnx, onnx_model):
    from emotion_app import Engine
    from emotion_app.live import LiveScheduler

    engine = Engine(model=str(tiny_onnx), backend="onnx")
    scheduler = LiveScheduler(engine)
    assert not engine.slides and not scheduler.slides  # the exported graph takes samples, not conv features
    x = signal("chirp", 2.0)
    windows = [(x[:end], end) for end in (8_000, 16_000, 24_000)]
    got = [scheduler.submit(1, w, 0.0, end).result(timeout=30) for w, end in windows]
    for probabilities, (w, _) in zip(got, windows):
        np.testing.assert_allclose(probabilities, onnx_model.run_chunks([w])[0].probabilities, rtol=0, atol=1e-6)
    assert scheduler.stats.windows == 3 and scheduler.stats.slid == 0
