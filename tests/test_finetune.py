"""Fine-tuning (emotion_app/finetune/) on random-weight checkpoints and audio spoken by espeak-ng:
the zero-step model is the base model, the folder loads in the engine and in FunASR with the same
numbers, a killed run resumes to the uninterrupted result, training beats chance on held-out
speakers, the frozen part is cached, and bad data is refused before training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from audio_files import speechlike, write_audio
from conftest import funasr_model
from labelled_sets import RATES, SENTENCES, VOICES, say

from emotion_app.fields import OptionError
from emotion_app.finetune.run import FineTuneOptions, checkpoint_path, fine_tune
from emotion_app.heads.dataset import DatasetError

ROOT = Path(__file__).parent.parent
FAST = {"precision": "fp32", "top": 2}  # fp32: on a tiny model bf16's casts cost more than they save


@pytest.fixture(scope="module")
def spoken(tmp_path_factory) -> Path:
    """slow and fast speech, 4 sentences per label and voice (4 voices, all clips distinct); train.csv
    holds three voices, test.csv the fourth (held-out speaker)."""
    root = tmp_path_factory.mktemp("spoken")
    rows = {"train": [], "test": []}
    for v, voice in enumerate(VOICES):
        for label in ("slow", "fast"):
            for j in range(4):
                name = f"{label}/{voice}-{j}.wav"
                say(root / name, SENTENCES[(j + 2 * v) % len(SENTENCES)], voice, RATES[label])
                rows["test" if v == len(VOICES) - 1 else "train"].append(f"{name},{label},{voice}\n")
    for part, lines in rows.items():
        (root / f"{part}.csv").write_text("path,label,speaker\n" + "".join(lines), encoding="utf-8")
    return root


def engine_probs(model_dir, clips):
    from emotion_app import Engine

    engine = Engine(model=str(model_dir), device="cpu")
    return engine.labels, np.stack([r.probabilities for r in engine.predict_batch([(16000, c) for c in clips])])


def test_zero_steps_with_the_nine_labels_is_the_base_model(checkpoint_dirs, tmp_path):
    from emotion_app.constants import LABEL_KEYS

    base = checkpoint_dirs["tiny"]
    data = tmp_path / "nine"
    for k, label in enumerate(LABEL_KEYS):
        (data / label).mkdir(parents=True)
        for j in range(2):
            write_audio(data / label / f"{j}.wav", speechlike(1.0 + 0.3 * j, seed=10 * k + j), 16000)
    run = fine_tune(data, out=tmp_path / "out", model=str(base), options=FineTuneOptions(epochs=0, **FAST))
    assert (run.folder / "tokens.txt").read_text(encoding="utf-8") == (base / "tokens.txt").read_text(encoding="utf-8")
    assert (run.folder / "config.yaml").read_bytes() == (base / "config.yaml").read_bytes()
    assert run.card["head_rows_from_base"] == list(LABEL_KEYS)
    clips = [speechlike(s, seed=99) for s in (0.7, 2.3)]
    base_labels, base_p = engine_probs(base, clips)
    labels, p = engine_probs(run.folder, clips)
    assert labels == base_labels
    np.testing.assert_allclose(p, base_p, rtol=0, atol=1e-6)
    assert not checkpoint_path(run.folder).parent.exists()  # the resume state is gone once the folder is written


def test_trained_folder_loads_in_the_engine_and_in_funasr_with_the_same_numbers(tiny_dir, spoken, tmp_path):
    """Labels in another script (Persian), a few real steps; FunASR 1.4.16 reads the same folder."""
    persian = "slow=آهسته,fast=تند"
    run = fine_tune(spoken / "train.csv", out=tmp_path / "out", model=str(tiny_dir), label_map=persian,
                    options=FineTuneOptions(epochs=2, lr=3e-3, patience=0, **FAST))  # fmt: skip
    assert run.card["labels"] == ["آهسته", "تند"] and len(run.card["curve"]) == 2
    assert (run.folder / "tokens.txt").read_text(encoding="utf-8") == "آهسته\nتند\nunuse_unk"
    clips = [speechlike(s, seed=7) for s in (0.8, 2.5)]
    labels, p = engine_probs(run.folder, clips)
    assert labels == ("آهسته", "تند")
    fm = funasr_model(run.folder)
    for clip, ours in zip(clips, p):
        r = fm.generate(input=clip, granularity="utterance", extract_embedding=False)[0]
        assert r["labels"] == ["آهسته", "تند"]
        np.testing.assert_allclose(ours, np.asarray(r["scores"]), rtol=0, atol=1e-4)
    card = json.loads((run.folder / "training_card.json").read_text(encoding="utf-8"))
    assert card["base_model"]["sha256"] == run.card["base_model"]["sha256"] and len(card["base_model"]["sha256"]) == 64
    assert card["data"]["counts"]["train"]["clips"] + card["data"]["counts"]["val"]["clips"] == 24
    assert card["data"]["validation"] == "speaker"  # whole voices held out
    train_voices, val_voices = (set(card["data"]["counts"][k]["speakers"]) for k in ("train", "val"))
    assert train_voices and val_voices and not train_voices & val_voices
    exports_match_torch(run.folder, tmp_path)


def exports_match_torch(folder: Path, tmp_path: Path) -> None:
    """export-onnx of a fine-tuned folder: its own labels, the torch engine's numbers within 1e-4;
    with --int8, the int8 gates of tests/test_int8.py (on 8 of its clips: this model is tiny)."""
    from test_int8 import clips, gates, run
    from test_onnx import assert_same, signal

    from emotion_app import Engine
    from emotion_app.model.onnx_backend import OnnxModel
    from emotion_app.tools.onnx_export import export_onnx

    engine = Engine(model=str(folder), device="cpu")
    fp32, diff = export_onnx(str(folder), tmp_path / "onnx")
    assert diff <= 1e-4 and OnnxModel(fp32).labels == engine.labels
    batch = [signal(kind, seconds, seed=k) for k, (kind, seconds) in enumerate([("chirp", 2.0), ("noise", 0.7), ("tone", 5.0)])]
    assert_same(OnnxModel(fp32).run_chunks(batch), engine.run_chunks(batch), "fine-tuned fp32 export")
    int8, _ = export_onnx(str(folder), tmp_path / "onnx_int8", int8=True)
    some = clips()[:8]
    reference = [run(engine.model, c) for c in some]
    candidate = [(o.probabilities, o.frame_probabilities, o.mean) for o in (OnnxModel(int8).run_chunks([c])[0] for c in some)]
    gates(reference, candidate, "fine-tuned int8 export")


KILLED = """
import os, signal, sys
from emotion_app.finetune.run import FineTuneOptions, fine_tune

def on_step(done, total):
    if done > total // 3:  # in epoch 2 of 3, after epoch 1's checkpoint
        os.kill(os.getpid(), signal.SIGKILL)

fine_tune(sys.argv[1], out=sys.argv[2], model=sys.argv[3], options=FineTuneOptions(**eval(sys.argv[4])), on_step=on_step)
"""


def test_a_killed_run_resumes_to_the_uninterrupted_result(tiny_dir, spoken, tmp_path):
    import torch

    kw = {"epochs": 3, "lr": 3e-3, "patience": 0, "batch_seconds": 20.0, "seed": 3, **FAST}
    data, out = str(spoken / "train.csv"), tmp_path / "resumed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", KILLED, data, str(out), str(tiny_dir), repr(kw)], env=env, timeout=120)
    assert proc.returncode == -9  # killed mid-training
    assert checkpoint_path(out).is_file() and not out.exists()
    saved = torch.load(checkpoint_path(out), weights_only=True)
    assert saved["state"]["epoch"] == 1
    with pytest.raises(OptionError, match=r"was made with other options"):
        fine_tune(data, out=out, model=str(tiny_dir), options=FineTuneOptions(**{**kw, "lr": 1e-3}), resume=True)
    resumed = fine_tune(data, out=out, model=str(tiny_dir), options=FineTuneOptions(**kw), resume=True)
    whole = fine_tune(data, out=tmp_path / "whole", model=str(tiny_dir), options=FineTuneOptions(**kw))
    assert [r["epoch"] for r in resumed.card["curve"]] == [1, 2, 3]
    assert [r["loss"] for r in resumed.card["curve"]] == [r["loss"] for r in whole.card["curve"]]
    a = torch.load(resumed.folder / "model.pt", weights_only=True)["model"]
    b = torch.load(whole.folder / "model.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    with pytest.raises(OptionError, match="no checkpoint"):  # finished: nothing left to resume
        fine_tune(data, out=out, model=str(tiny_dir), options=FineTuneOptions(**kw), resume=True)


def test_training_beats_chance_on_held_out_speakers_and_reuses_the_cache(tiny_dir, spoken, tmp_path):
    opts = FineTuneOptions(epochs=12, lr=3e-3, patience=0, seed=1, **FAST)
    run = fine_tune(spoken / "train.csv", out=tmp_path / "a", model=str(tiny_dir), test=spoken / "test.csv", options=opts)
    test = run.card["test"]
    assert test["n"] == 8 and set(run.card["data"]["counts"]["test"]["speakers"]) == {VOICES[-1]}
    assert test["ua"] >= 0.75, run.card["curve"]  # chance is 0.5
    assert test["ua"] >= head_ua(tiny_dir, spoken, run.folder, tmp_path), run.card["curve"]  # the target
    assert run.card["features"]["computed"] + run.card["features"]["cached"] == 32
    again = fine_tune(spoken / "train.csv", out=tmp_path / "b", model=str(tiny_dir), test=spoken / "test.csv",
                      options=FineTuneOptions(epochs=0, **FAST))  # fmt: skip
    assert again.card["features"] == {**run.card["features"], "computed": 0, "cached": 32}
    assert again.card["test"]["ua"] >= 0.75  # no epoch: the new rows are the linear probe of the training clips (LP-FT)


def head_ua(tiny_dir, spoken, folder: Path, tmp_path) -> float:
    """A train-head head's UA on the same held-out speaker (fine-tune-report's row for it)."""
    from emotion_app.cli.main import main

    head = tmp_path / "head"
    assert main(["train-head", str(spoken / "train.csv"), "--out", str(head), "--model", str(tiny_dir), "--folds", "2"]) == 0
    report = [
        "fine-tune-report",
        str(folder),
        "--test",
        str(spoken / "test.csv"),
        "--head",
        str(head),
        "--map",
        "fast=angry,slow=sad",
    ]
    assert main(report) == 0
    rows = json.loads((folder / "report" / "report.json").read_text(encoding="utf-8"))["rows"]
    return next(row["ua"] for name, row in rows.items() if name.startswith("head "))


def test_unfreeze_trains_the_top_blocks_only(tiny_dir, spoken, tmp_path):
    import torch

    run = fine_tune(spoken / "train.csv", out=tmp_path / "out", model=str(tiny_dir),
                    options=FineTuneOptions(epochs=1, lr=1e-2, precision="fp32", unfreeze=1))  # fmt: skip
    assert run.card["trained"]["method"] == "unfreeze" and run.card["trained"]["top_blocks"] == 1
    new = torch.load(run.folder / "model.pt", weights_only=True)["model"]
    old = torch.load(tiny_dir / "model.pt", weights_only=True)["model"]
    changed = {k for k in old if not k.startswith("proj.") and not torch.equal(old[k], new[k])}
    assert changed and all(k.startswith("d2v_model.blocks.1.") for k in changed), changed  # tiny: 1 prenet + 2 blocks
    assert new["proj.weight"].shape == (3, old["proj.weight"].shape[1])  # fast, slow and the masked unuse_unk
    assert not new["proj.weight"][2].any()


def _table(root: Path, rows: list[tuple[str, str, str]]) -> Path:
    path = root / "set.csv"
    path.write_text("path,label,speaker\n" + "".join(f"{p},{lab},{s}\n" for p, lab, s in rows), encoding="utf-8")
    return path


def test_bad_data_is_refused_before_training(tiny_dir, spoken, tmp_path):
    good = [(f"{spoken}/{lab}/{v}-{j}.wav", lab, v) for lab in ("slow", "fast") for v in VOICES[:2] for j in range(2)]
    opts = FineTuneOptions(epochs=1, **FAST)
    out = tmp_path / "out"

    def refused(rows, match, **kw):
        with pytest.raises(DatasetError, match=match):
            fine_tune(_table(tmp_path, rows), out=out, model=str(tiny_dir), options=opts, **kw)
        assert not out.exists() and not checkpoint_path(out).exists()

    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00not audio at all" * 10)
    refused([*good, (str(tmp_path / "broken.wav"), "slow", VOICES[0])], r"1 files cannot be decoded: \S+/broken\.wav: not an")
    refused([*good, (good[0][0], "calm", VOICES[0])], r"the same audio is filed under two labels")
    refused([*good, (f"{spoken}/fast/{VOICES[2]}-0.wav", "calm", VOICES[2])], r"fewer than 2 clips: calm \(1\)")
    refused([(p, lab, "anna") for p, lab, _ in good], r"all 8 clips are from one speaker \(anna\)")
    refused(good, r"--test: labels the training data lacks: mid", test=_table_other(tmp_path, spoken))
    refused([(p, "a/b" if lab == "slow" else lab, s) for p, lab, s in good], r"labels a/b cannot be written to tokens\.txt")


def test_augmented_copies_go_through_the_frozen_part_and_are_cached_apart(tiny_dir, spoken, tmp_path):
    """--augment speed=0.9,1.1 --noise-snr 10: three copies of each training clip, each cached under its
    own key with features of its own; a second run computes nothing; validation clips are not copied."""
    from emotion_app.finetune.augment import Augmentation, augmented_clips, changes
    from emotion_app.finetune.data import prepare
    from emotion_app.finetune.features import FeatureCache

    rows = [(f"{spoken}/{lab}/{v}-{j}.wav", lab, v) for lab in ("slow", "fast") for v in VOICES[:2] for j in range(2)]
    data, cache = _table(tmp_path, rows), tmp_path / "cache"
    opts = FineTuneOptions(epochs=0, speeds=(0.9, 1.1), noise_snr=10.0, **FAST)  # the features are the point
    run = fine_tune(data, out=tmp_path / "out", model=str(tiny_dir), options=opts, cache_root=cache)
    n_train = run.card["data"]["counts"]["train"]["clips"]
    assert run.card["features"]["augmented_copies"] == 3 * n_train and run.card["features"]["computed"] == 8 + 3 * n_train
    folder = FeatureCache(Path(run.card["features"]["cache"]))
    assert len(list(folder.folder.rglob("*.npy"))) == 8 + 3 * n_train
    split = prepare(data, seed=opts.seed)
    copies = augmented_clips(split.train, Augmentation((0.9, 1.1), 10.0), opts.seed)
    clean = {c.digest: folder.get(c.digest) for c in split.train}
    for copy in copies:
        original, changed = clean[next(c.digest for c in split.train if c.item == copy.item)], folder.get(copy.digest)
        assert changed is not None and changed.dtype == np.float16
        if copy.change.describe().startswith("speed"):  # 0.9: longer, 1.1: shorter
            assert (len(changed) > len(original)) == (copy.change.factor < 1), copy.change
        else:
            assert changed.shape == original.shape and np.abs(changed.astype(np.float32) - original).mean() > 1e-3
    again = fine_tune(data, out=tmp_path / "again", model=str(tiny_dir), options=opts, cache_root=cache)
    assert again.card["features"]["computed"] == 0 and again.card["features"]["cached"] == 8 + 3 * n_train
    with pytest.raises(ValueError, match="speed: factors from 0.5 to 2.0, not 1"):
        FineTuneOptions(speeds=(1.0,))
    hum = write_audio(tmp_path / "hum.wav", 0.2 * np.sin(np.arange(8000) / 16000 * 2 * np.pi * 100), 16000)
    (noisy,) = changes(Augmentation(noise_snr=6.0, noise=str(hum)), seed=0)  # a supplied noise, at 6 dB
    x = speechlike(1.5, seed=5)
    y = noisy(x, "ab" * 32)
    assert np.isclose(10 * np.log10(np.mean(x**2) / np.mean((y - x) ** 2)), 6.0, atol=0.05) and noisy.noise_sha != "white"


def _table_other(tmp_path: Path, spoken: Path) -> Path:
    folder = tmp_path / "other"
    folder.mkdir()
    path = folder / "test.csv"
    path.write_text(f"path,label\n{spoken}/slow/{VOICES[3]}-0.wav,mid\n{spoken}/fast/{VOICES[3]}-0.wav,fast\n")
    return path


def test_cli(tiny_dir, spoken, tmp_path, capsys):
    from emotion_app.cli.main import main

    out = tmp_path / "mine"
    args = ["fine-tune", str(spoken / "train.csv"), "--model", str(tiny_dir), "--out", str(out), "--top", "1"]
    assert main([*args, "--epochs", "1", "--map", "slow=sad", "--json"]) == 0  # precision auto: bf16 where native
    printed = capsys.readouterr()
    card = json.loads(printed.out)
    assert card["out"] == str(out) and card["trained"] == {**card["trained"], "method": "lora", "top_blocks": 1}
    assert card["labels"] == ["sad", "fast"] and card["head_rows_from_base"] == ["sad"]  # the nine first, in their order
    assert "epoch 1: loss" in printed.err
    assert main([*args[:-1], "9"]) == 2
    assert "the model has 3 transformer blocks; train at most 3, not 9" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert main([*args[:5], str(tmp_path / "taken")]) == 2  # never written over, and refused before training
    assert "is not a fine-tuned model folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --top and --unfreeze exclude each other
        main([*args, "--unfreeze", "1"])
    report_of_the_folder(tiny_dir, spoken, out, card, tmp_path, capsys)


def report_of_the_folder(tiny_dir, spoken, out, card, tmp_path, capsys):
    """fine-tune-report: the base model (fast mapped onto angry), a train-head head and the fine-tuned
    model on the validation part rebuilt from the card, in one table, written into the folder."""
    from emotion_app.cli.main import main

    head = tmp_path / "head"
    model = ["--model", str(tiny_dir)]
    assert main(["train-head", str(spoken / "train.csv"), "--out", str(head), *model, "--map", "slow=sad", "--folds", "2"]) == 0
    capsys.readouterr()
    assert main(["fine-tune-report", str(out), "--head", str(head), "--map", "fast=angry"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report" / "report.json").read_text(encoding="utf-8"))
    assert list(report["rows"]) == ["base (9 labels)", "head head", "fine-tuned mine"]
    held = card["data"]["counts"]["val"]["clips"]
    assert report["heldout"].startswith("the validation part of") and f"{held} clips" in report["heldout"]
    for name, row in report["rows"].items():
        assert row["n"] == held and 0 <= row["ua"] <= 1 and sum(map(sum, row["confusion"])) == held, name
        assert f"| {name} | {len(row['head_labels'])} | {held} | {row['wa']:.3f} | {row['ua']:.3f} |" in printed
        assert (out / "report" / row["confusion_png"]).read_bytes()[:4] == b"\x89PNG"
    assert report["rows"]["base (9 labels)"]["label_map"] == {"fast": "angry"}
    assert len(report["rows"]["base (9 labels)"]["head_labels"]) == 9
    assert report["rows"]["fine-tuned mine"]["head_labels"] == ["sad", "fast"]
    assert (out / "report" / "report.md").read_text(encoding="utf-8") in printed


def test_training_recomputes_the_top_blocks_activations_with_the_same_gradients(tiny_dir):
    """A training step keeps for backward only what enters each trained block (the rest is computed
    again in backward): the bytes autograd saves, measured, fall by more than half, and the
    gradients are the ones of a step that kept everything, bit for bit."""
    import torch

    from emotion_app.finetune.top import TopModel, new_head
    from emotion_app.model.torch_backend import load_model

    def step(recompute: bool) -> tuple[int, dict]:
        base, tokens = load_model(tiny_dir, torch.device("cpu"), torch.float32)
        head, _ = new_head(base.head, tokens, ("slow", "fast"), seed=0)
        net = TopModel(base, head, 2, unfreeze=False, rank=4, alpha=8.0, seed=0).train(recompute)
        x = torch.randn(3, base.cfg.num_extra_tokens + 40, base.cfg.embed_dim, generator=torch.Generator().manual_seed(0))
        mask = torch.arange(40)[None, :] < torch.tensor([40, 31, 17])[:, None]
        saved = []

        def keep(t):
            saved.append(t.untyped_storage().nbytes() if isinstance(t, torch.Tensor) else 0)
            return t

        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
            loss = net(x, mask).logsumexp(-1).sum()  # eval mode (recompute=False) keeps every activation
        loss.backward()
        return sum(saved), {k: p.grad for k, p in net.trainable().items()}

    kept_bytes, kept = step(recompute=False)
    saved_bytes, grads = step(recompute=True)
    assert saved_bytes < kept_bytes / 2, (saved_bytes, kept_bytes)
    assert kept.keys() == grads.keys() and len(grads) > 2
    for k in kept:
        assert torch.equal(kept[k], grads[k]), k
