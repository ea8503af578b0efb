"""Your own labels: reading labelled sets, the embedding cache, evaluation, training, heads in the
engine, the CLI. Sets are spoken by espeak-ng (label = speaking rate, speaker = voice); the model
is the tiny random checkpoint."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from labelled_sets import write_set

from emotion_app import Engine
from emotion_app.analysis.build import build_report
from emotion_app.cli.main import main
from emotion_app.fields import OptionError
from emotion_app.heads.cache import EmbeddingCache, embed_dataset
from emotion_app.heads.dataset import DatasetError, apply_label_map, parse_label_map, read_dataset
from emotion_app.heads.evaluate import evaluate_dataset
from emotion_app.heads.report import classification_scores, write_folder
from emotion_app.heads.train import TrainOptions, _fit, choose_splits, fit_head, train_head
from emotion_app.model.head import Head, HeadError
from emotion_app.request import RequestOptions


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    return write_set(tmp_path_factory.mktemp("labelled"))


@pytest.fixture(scope="module")
def trained(sets, tiny_engine, tmp_path_factory):
    """A head trained on the CSV set (slow/fast, 4 speakers), saved as `<tmp>/speed`."""
    run = train_head(tiny_engine, read_dataset(sets.csv), name="speed", names="slow=慢:🐢,fast=快:🐇")
    folder = write_folder(tmp_path_factory.mktemp("heads") / "speed", run.files(), "head.safetensors")
    return run, folder


class Counting:
    """An engine that counts the files it is asked to run."""

    def __init__(self, engine):
        self.engine, self.files = engine, 0

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def predict_batch(self, sources, *args, **kwargs):
        self.files += len(list(sources))
        return self.engine.predict_batch(sources, *args, **kwargs)


# -- reading DATA --------------------------------------------------------------------------------------
def test_folder_table_and_zip_give_the_same_set(sets):
    folder, csv, jsonl, archive = (read_dataset(p) for p in (sets.folder, sets.csv, sets.jsonl, sets.zip))
    assert folder.counts() == archive.counts() == {"fast": 8, "mid": 6, "slow": 8}
    assert csv.counts() == jsonl.counts() == {"fast": 8, "slow": 8}
    assert csv.has_speakers and csv.speakers == ["en", "en-gb", "en-gb-x-rp", "en-us"] and not folder.has_speakers
    assert [i.read() for i in archive.items] == [i.read() for i in folder.items]  # zip members read in place
    assert {i.name for i in folder.items} >= {"slow/00.wav", "fast/07.wav"}


def _copy(sets, tmp_path) -> Path:
    return Path(shutil.copytree(sets.folder, tmp_path / "data"))


def _zip(tmp_path, members: dict[str, bytes]) -> Path:
    path = tmp_path / "up.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_bad_layouts_are_refused_with_the_files_named(sets, tmp_path):
    wav = (sets.folder / "slow" / "00.wav").read_bytes()
    cases = [  # (message, the file it names, the zip's members)
        ("folders inside label folders", "slow/deeper/a.wav", {"slow/deeper/a.wav": wav, "fast/b.wav": wav}),
        ("not audio", "slow/notes.txt", {"slow/a.wav": wav, "slow/notes.txt": b"x", "fast/b.wav": wav}),
        ("outside a label folder", "a.wav", {"a.wav": wav, "slow/b.wav": wav}),
    ]
    for message, named, members in cases:
        with pytest.raises(DatasetError, match=message) as err:
            read_dataset(_zip(tmp_path, members))
        assert f": {named}" in err.value.message
    # a zip of one top folder, with macOS litter, is fine
    ok = read_dataset(
        _zip(tmp_path, {"set/slow/a.wav": wav, "set/fast/b.wav": wav, "__MACOSX/set/._a.wav": b"", "set/.DS_Store": b""})
    )
    assert ok.counts() == {"fast": 1, "slow": 1}


def test_bad_tables_are_refused(sets, tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("file,emotion\na.wav,x\n")
    with pytest.raises(DatasetError, match="missing: path, label"):
        read_dataset(table)
    table.write_text(f"path,label\n{sets.folder}/slow/00.wav,slow\nnope/missing.wav,slow\n")
    with pytest.raises(DatasetError, match="paths that do not exist.*nope/missing.wav"):
        read_dataset(table)
    table.write_text(f"path,label\n{sets.folder}/slow/00.wav,\n")
    with pytest.raises(DatasetError, match="rows without path and label: line 2"):
        read_dataset(table)
    bad = tmp_path / "t.jsonl"
    bad.write_text('{"path": "a.wav", "label": "x"}\nnot json\n')
    with pytest.raises(DatasetError, match="line 2: not a JSON object"):
        read_dataset(bad)


def test_label_maps(sets):
    assert parse_label_map("ang=angry, hap=happy,exc=happy;oth=-") == {
        "ang": "angry",
        "hap": "happy",
        "exc": "happy",
        "oth": None,
    }
    with pytest.raises(DatasetError, match="must read data_label=model_label"):
        parse_label_map("angry")
    data = read_dataset(sets.folder)
    mapped, left = apply_label_map(data, {"slow": "sad"}, ("sad", "happy", "neutral"))
    assert mapped.counts() == {"sad": 8} and left == {"fast": 8, "mid": 6}  # reported, never guessed
    with pytest.raises(DatasetError, match="hapy not among the head's labels"):
        apply_label_map(data, {"fast": "hapy"}, ("sad", "happy"))


# -- the cache and the metrics -------------------------------------------------------------------------
def test_embeddings_are_cached_per_file_and_model(sets, tiny_engine, tmp_path):
    counting = Counting(tiny_engine)
    cache = EmbeddingCache.for_engine(tiny_engine, root=tmp_path)
    data = read_dataset(sets.folder)
    first = embed_dataset(counting, data, cache)
    assert counting.files == 22 and first.computed == 22 and first.cached == 0
    again = embed_dataset(counting, read_dataset(sets.zip), cache)  # the same audio, from a zip: no model call
    assert counting.files == 22 and again.cached == 22
    np.testing.assert_array_equal(first.features, again.features)
    expected = tiny_engine.predict(sets.folder / "slow" / "00.wav", extract_embedding=True)
    k = [i.name for i in first.items].index("slow/00.wav")
    np.testing.assert_allclose(first.features[k], expected.embedding, atol=1e-6)
    np.testing.assert_allclose(first.probabilities[k], expected.probabilities, atol=1e-6)
    # evaluation and training reuse the same entries
    evaluate_dataset(counting, data, label_map="slow=sad,fast=happy,mid=neutral", cache=cache)
    train_head(counting, read_dataset(sets.csv), name="x", cache=cache)
    assert counting.files == 22


def test_scores_are_sklearn_metrics():
    s = classification_scores(["a", "a", "a", "b"], ["a", "b", "c", "b"], ["a", "b"])
    assert s["labels"] == ["a", "b", "c"] and s["n"] == 4
    assert s["wa"] == 0.5 and s["ua"] == round((1 / 3 + 1) / 2, 4)  # mean recall over the true labels a, b
    assert np.sum(s["confusion"]) == 4 and s["confusion"][0] == [1, 1, 1]
    assert s["per_class"]["c"]["support"] == 0 and s["per_class"]["b"]["precision"] == 0.5


# -- evaluation ----------------------------------------------------------------------------------------
def test_evaluate_the_9_class_head(sets, tiny_engine):
    ev = evaluate_dataset(tiny_engine, read_dataset(sets.folder), label_map="slow=sad,fast=happy,mid=neutral")
    r = ev.report
    assert r["n"] == 22 and r["head"] == "emotion2vec" and r["unmapped"] == {}
    assert 0 <= r["wa"] <= 1 and 0 <= r["ua"] <= 1 and 0 <= r["macro_f1"] <= 1
    assert np.sum(r["confusion"]) == 22 and len(r["confusion"]) == len(r["labels"])
    assert {"sad", "happy", "neutral"} <= set(r["per_class"]) and r["per_class"]["sad"]["support"] == 8
    assert len(r["errors"]) == round(22 * (1 - r["wa"]))
    files = ev.files()
    assert files["confusion.png"][:4] == b"\x89PNG" and files["confusion.csv"].startswith("true \\ predicted,")
    partial = evaluate_dataset(tiny_engine, read_dataset(sets.folder), label_map="slow=sad,mid=neutral").report
    assert partial["unmapped"] == {"fast": 8} and partial["n"] == 14
    with pytest.raises(DatasetError, match="none of the data's labels"):
        evaluate_dataset(tiny_engine, read_dataset(sets.folder))


def test_evaluate_your_head(sets, tiny_engine, trained):
    _, folder = trained
    r = evaluate_dataset(tiny_engine, read_dataset(sets.csv), head=Head.load(folder)).report
    assert r["head"] == "speed" and r["labels"] == ["fast", "slow"] and r["wa"] >= 0.9  # its own training data


# -- training ------------------------------------------------------------------------------------------
def test_speaker_grouped_folds_never_mix_speakers():
    y = ["a", "b"] * 12
    groups = [f"s{i % 4}" for i in range(24)]
    grouping, splits, _ = choose_splits(y, groups, 5, 0)
    assert grouping == "speaker" and len(splits) == 4
    for train, test in splits:
        assert not {groups[k] for k in train} & {groups[k] for k in test}
    grouping, splits, notes = choose_splits(y, None, 5, 0)
    assert grouping == "stratified" and len(splits) == 5 and not notes


def test_train_head_cross_validates_by_speaker_and_writes_the_folder(trained):
    run, folder = trained
    cv = run.metrics["cv"]
    assert cv["grouping"] == "speaker" and cv["folds"] == 4
    assert cv["ua"]["mean"] >= 0.7 and len(cv["ua"]["folds"]) == 4 and cv["ua"]["std"] >= 0  # chance: 0.5
    assert np.sum(cv["pooled"]["confusion"]) == 16
    assert sorted(p.name for p in folder.iterdir()) == [
        "card.md", "confusion.csv", "confusion.png", "head.safetensors", "labels.json", "metrics.json"
    ]  # fmt: skip
    labels = json.loads((folder / "labels.json").read_text())
    assert labels == {
        "labels": ["fast", "slow"],
        "names": {"slow": {"zh": "慢", "emoji": "🐢"}, "fast": {"zh": "快", "emoji": "🐇"}},
    }
    card = (folder / "card.md").read_text()
    assert "speaker-grouped" in card and "| slow | 8 |" in card and "tiny" in card
    assert json.loads((folder / "metrics.json").read_text())["model"]["id"] == "tiny"


@pytest.mark.parametrize("kind", ["logreg", "mlp"])
def test_stored_weights_give_sklearn_probabilities(kind):
    rng = np.random.default_rng(0)
    for n_labels in (2, 3):
        x = rng.normal(size=(30, 8)).astype(np.float32)
        y = [f"l{i % n_labels}" for i in range(30)]
        opts = TrainOptions(kind=kind, hidden=16)
        head = fit_head(x, y, opts, name="h", model_id="m")
        scaler, clf = _fit(x, y, opts)
        np.testing.assert_allclose(head.probabilities(x), clf.predict_proba(scaler.transform(x)), atol=1e-5)
        assert head.labels == tuple(clf.classes_) and head.probabilities(x[0]).shape == (n_labels,)


def test_training_refuses_too_few_labels_or_files_and_skips_broken_files(sets, tiny_engine, tmp_path):
    data = _copy(sets, tmp_path)
    shutil.rmtree(data / "fast")
    shutil.rmtree(data / "mid")
    with pytest.raises(DatasetError, match="at least 2 labels with files; found 1: slow"):
        train_head(tiny_engine, read_dataset(data), name="x")
    (data / "few").mkdir()
    for i in range(3):
        shutil.copy(sets.folder / "fast" / f"{i:02d}.wav", data / "few" / f"{i}.wav")
    with pytest.raises(DatasetError, match=r"at least 5 files per label.*few \(3\)"):
        train_head(tiny_engine, read_dataset(data), name="x")
    shutil.copy(sets.folder / "fast" / "03.wav", data / "few" / "3.wav")
    shutil.copy(sets.folder / "fast" / "04.wav", data / "few" / "4.wav")
    (data / "slow" / "broken.wav").write_bytes(b"RIFF but not really a wav file" * 10)
    run = train_head(tiny_engine, read_dataset(data), name="x")
    assert [f["file"] for f in run.metrics["data"]["failed"]] == ["slow/broken.wav"]
    assert run.metrics["data"]["counts"] == {"few": 5, "slow": 8}
    (data / "few" / "4.wav").write_bytes(b"garbage" * 40)  # the label falls under 5 once it is left out
    with pytest.raises(DatasetError, match=r"after leaving out the files that failed.*few \(4\)"):
        train_head(tiny_engine, read_dataset(data), name="x")


def test_the_same_audio_under_two_labels_is_refused(sets, tiny_engine, tmp_path):
    data = _copy(sets, tmp_path)
    shutil.copy(data / "slow" / "00.wav", data / "fast" / "copy.wav")
    with pytest.raises(
        DatasetError, match=r"same audio is filed under two labels: fast/copy.wav \(fast\) = slow/00.wav \(slow\)"
    ):
        train_head(tiny_engine, read_dataset(data), name="x")
    (data / "fast" / "copy.wav").unlink()
    shutil.copy(data / "slow" / "00.wav", data / "slow" / "again.wav")  # same label: kept once, listed
    run = train_head(tiny_engine, read_dataset(data), name="x")
    assert run.metrics["data"]["duplicates"] == [{"file": "slow/again.wav", "same_as": "slow/00.wav"}]


# -- heads in the engine -------------------------------------------------------------------------------
def test_a_head_for_another_model_is_refused(tiny_dir, tmp_path):
    rng = np.random.default_rng(1)
    y = ["a", "b"] * 5
    wide = fit_head(rng.normal(size=(10, 64)), y, TrainOptions(), name="wide", model_id="tiny")
    with pytest.raises(HeadError, match="64-d features of tiny; this model .* gives 32-d"):
        Engine(model=str(tiny_dir), heads=[wide])
    other = fit_head(rng.normal(size=(10, 32)), y, TrainOptions(), name="other", model_id="iic/emotion2vec_plus_large")
    folder = write_folder(
        tmp_path / "other", {"head.safetensors": other.weights_bytes(), "labels.json": other.labels_json()}, "x"
    )
    with pytest.raises(HeadError, match="trained for the model iic/emotion2vec_plus_large, not tiny"):
        Engine(model=str(tiny_dir), heads=[folder])
    with pytest.raises(HeadError, match="not a head folder|no head in"):
        Engine(model=str(tiny_dir), heads=[tmp_path / "missing"])


def test_engine_applies_heads_to_utterances_and_frames(sets, tiny_dir, trained):
    _, folder = trained
    engine = Engine(model=str(tiny_dir), heads=[folder.parent], window_s=1.0)  # a folder of heads; 1 s chunks
    head = engine.heads["speed"]
    clip = sets.folder / "slow" / "00.wav"
    r = engine.predict(clip, granularity="frame", extract_embedding=True)
    assert r.chunks > 1
    reading = r.heads["speed"]
    np.testing.assert_allclose(reading.probabilities, head.probabilities(r.embedding.mean(0)), atol=1e-5)
    np.testing.assert_allclose(reading.frame_probabilities, head.probabilities(r.embedding), atol=1e-5)
    d = build_report(r).to_json()["heads"]["speed"]
    assert d["emotion"] in ("slow", "fast") and set(d["scores"]) == {"slow", "fast"}
    assert len(d["frames"]) == len(r.frame_probabilities) and d["labels"]["slow"] == {"zh": "慢", "emoji": "🐢"}
    plain = engine.predict(clip, granularity="frame")  # heads without the embedding: frame features are not kept
    frames = build_report(plain).to_json()["heads"]["speed"]["frames"]
    assert plain.embedding is None and len(frames) == len(r.frame_probabilities)
    assert "frames" not in build_report(engine.predict(clip)).to_json()["heads"]["speed"]


def test_python_api_selects_heads(sets, tiny_engine, trained):
    _, folder = trained
    head = Head.load(folder)
    clip = sets.folder / "fast" / "01.wav"
    assert tiny_engine.predict(clip).heads == {} and "heads" not in build_report(tiny_engine.predict(clip)).to_json()
    engine = Engine(tiny_engine.options, heads=[head])
    assert list(engine.predict(clip).heads) == ["speed"]
    assert engine.predict(clip, heads=[]).heads == {}
    assert list(tiny_engine.predict(clip, heads=[head]).heads) == ["speed"]  # a Head object per call
    with pytest.raises(OptionError, match="head 'nope' is not loaded; loaded heads: speed"):
        engine.predict(clip, heads=["nope"])


def test_request_option_head():
    assert RequestOptions.from_fields({}).heads is None
    assert RequestOptions.from_fields({"head": "a, b"}).heads == ("a", "b")
    assert RequestOptions.from_fields({"head": "none"}).heads == ()
    assert RequestOptions.from_fields({"head": "all"}).heads is None


def test_segmented_recordings_get_head_readings(sets, tiny_engine, trained, tmp_path):
    from emotion_app.service import analyze

    _, folder = trained
    request = RequestOptions.from_fields({"segment": "window", "window_s": 1.0, "charts": False})
    request = RequestOptions(request.granularity, False, request.segment, request.analysis, (Head.load(folder),))
    result = analyze(tiny_engine, sets.folder / "slow" / "01.wav", request, outputs_dir=tmp_path).result
    assert set(result["heads"]["speed"]["probabilities"]) == {"slow", "fast"}
    assert all(set(s["heads"]["speed"]) == {"emotion", "confidence", "scores"} for s in result["segments"])


# -- the command line ----------------------------------------------------------------------------------
def test_cli_train_evaluate_and_predict_with_a_head(sets, tiny_dir, tmp_path, capsys):
    model = ["--model", str(tiny_dir)]
    head_dir = tmp_path / "heads" / "rate"
    assert main(["train-head", str(sets.csv), "--out", str(head_dir), "--json", *model]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["head"] == "rate" and m["cv"]["grouping"] == "speaker" and (head_dir / "head.safetensors").is_file()

    assert main(["evaluate", str(sets.zip), "--map", "slow=sad,fast=happy", "--out", str(tmp_path / "ev"), "--json", *model]) == 0
    r = json.loads(capsys.readouterr().out)
    assert {"wa", "ua", "macro_f1", "labels", "confusion", "per_class", "n"} <= set(r) and r["unmapped"] == {"mid": 6}
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == [
        "confusion.csv", "confusion.png", "errors.csv", "metrics.json", "predictions.csv"
    ]  # fmt: skip
    assert main(["evaluate", str(sets.csv), "--head", str(head_dir), "--out", str(tmp_path / "ev2"), *model]) == 0
    assert "WA " in capsys.readouterr().out

    clip = str(sets.folder / "fast" / "02.wav")
    assert main(["predict", clip, "--head", str(head_dir), "--json", *model]) == 0
    assert set(json.loads(capsys.readouterr().out)["heads"]["rate"]["scores"]) == {"slow", "fast"}
    assert main(["predict", clip, "--head", str(head_dir), *model]) == 0
    assert "[rate: " in capsys.readouterr().out
    out = tmp_path / "batch"
    assert (
        main(["batch", str(sets.folder / "slow"), "--head", str(head_dir), "--out", str(out), "--format", "jsonl", *model]) == 0
    )
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(set(row["heads"]) == {"rate"} for row in rows)
    assert main(["batch", str(sets.folder / "slow"), "--head", str(head_dir), "--out", str(tmp_path / "b2"), *model]) == 0
    assert "rate=" in (tmp_path / "b2" / "results.csv").read_text()


def test_cli_bad_input_exits_2_and_writes_nothing(sets, tiny_dir, tmp_path, capsys):
    model = ["--model", str(tiny_dir)]
    data = _copy(sets, tmp_path)
    shutil.rmtree(data / "fast")
    shutil.rmtree(data / "mid")
    assert main(["train-head", str(data), "--out", str(tmp_path / "h"), *model]) == 2
    assert "at least 2 labels" in capsys.readouterr().err and not (tmp_path / "h").exists()
    assert main(["evaluate", str(sets.folder), "--out", str(tmp_path / "e"), *model]) == 2
    assert "map them" in capsys.readouterr().err and not (tmp_path / "e").exists()
    assert main(["train-head", str(sets.csv), "--out", str(tmp_path / "h"), "--folds", "1", *model]) == 2
    assert "folds must be 2-20" in capsys.readouterr().err
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["train-head", str(sets.csv), "--out", str(foreign), *model]) == 2
    assert "was not written by this tool" in capsys.readouterr().err and (foreign / "notes.txt").is_file()
    assert main(["predict", str(sets.folder / "slow" / "00.wav"), "--head", str(tmp_path / "none"), *model]) == 2
    assert "no head in" in capsys.readouterr().err
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []
