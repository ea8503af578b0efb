"""One result model: the CLI, REST, the Gradio API and batch JSONL give the same result.json
content for the same file (timings, paths, timestamps and the output folder aside), for utterance,
frame and segmented results; and concurrent long recordings never disturb each other."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from audio_files import espeak, speechlike, write_audio
from test_cli import in_process, run

from emotion_app.audio.segmenter import SegmentOptions

ASIDE = {"timings", "file", "timestamp", "output_dir", "files"}


def comparable(result: dict) -> dict:
    out = {k: v for k, v in result.items() if k not in ASIDE}
    out["audio"] = {k: v for k, v in out["audio"].items() if k != "source"}
    return out


def assert_same(a, b, path="result"):
    """Equal keys everywhere; numbers equal within 1e-5 (batching pads inputs together)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{path}: keys differ: {list(a)} vs {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        assert abs(a - b) <= 1e-5 + 1e-3 * (path.endswith(("scores", "confidence")) or ".scores." in path), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    """Three spoken sentences with pauses: speech for the VAD, long enough for every mode."""
    parts = []
    for i, text in enumerate(["Hello there, how are you?", "I am fine, thank you.", "See you tomorrow."]):
        parts += [np.zeros(8000, np.float32), espeak(text, seed=i)]
    x = np.concatenate([*parts, np.zeros(8000, np.float32)])
    return write_audio(tmp_path_factory.mktemp("talk") / "talk.wav", x, 16000, "wav")


CASES = {
    "utterance": {"granularity": "utterance"},
    "frame": {"granularity": "frame", "method": "ewma", "alpha": "0.3"},
    "segments": {"segment": "vad"},
}
CLI_FLAGS = {
    "utterance": ["--granularity", "utterance"],
    "frame": ["--granularity", "frame", "--smoothing", "ewma", "--alpha", "0.3"],
    "segments": ["--segment", "vad"],
}


def via_gradio(web, path, case):
    from gradio_client import Client, handle_file

    client = Client(web.url + "/", verbose=False)
    if case == "segments":
        d = SegmentOptions()
        args = ("vad", d.threshold, d.min_speech_s, d.min_silence_s, d.max_segment_s, d.window_s, d.hop_s)
        return client.predict(handle_file(str(path)), *args, api_name="/recording")
    if case == "frame":
        return client.predict(handle_file(str(path)), "frame", False, "ewma", 11, 0.3, True, 0.2, api_name="/predict")
    return client.predict(handle_file(str(path)), "utterance", False, api_name="/predict")


@pytest.mark.parametrize("case", list(CASES))
def test_every_route_gives_the_same_result(case, web, tiny_dir, talk, tmp_path):
    cli = in_process("predict", str(talk), "--model", str(tiny_dir), "--json", *CLI_FLAGS[case])
    assert cli.returncode == 0, cli.stderr
    from_cli = json.loads(cli.stdout)
    args = ("batch", str(talk), "--model", str(tiny_dir), "--out", str(tmp_path / "b"), "--format", "jsonl", *CLI_FLAGS[case])
    batch = in_process(*args)
    assert batch.returncode == 0, batch.stderr
    from_batch = json.loads((tmp_path / "b" / "results.jsonl").read_text())
    with open(talk, "rb") as f:
        r = httpx.post(web.url + "/api/predict", files={"audio": ("talk.wav", f)}, data=CASES[case], timeout=120)
    assert r.status_code == 200, r.text
    from_rest = r.json()
    from_gradio = via_gradio(web, talk, case)

    reference = comparable(from_rest)
    assert reference["granularity"] == {"utterance": "utterance", "frame": "frame", "segments": "segments"}[case]
    if case == "segments":
        assert len(reference["segments"]) == 3 and reference["summary"]["num_segments"] == 3
    if case == "frame":
        assert reference["smoothing"]["method"] == "ewma" and reference["frames"][0]["smoothed_emotion"]
    for name, other in [("cli", from_cli), ("batch", from_batch), ("gradio", from_gradio)]:
        try:
            assert_same(reference, comparable(other))
        except AssertionError as exc:
            raise AssertionError(f"{name} differs from REST: {exc}") from None
    assert from_cli["file"] == str(talk) and from_rest["file"] == "talk.wav" and from_gradio["file"] == "talk.wav"
    assert all("timestamp" in d for d in (from_cli, from_batch, from_rest, from_gradio))


def test_conflicting_modes_answer_422_on_rest_and_exit_2_on_the_cli(web, tiny_dir, talk):
    with open(talk, "rb") as f:
        r = httpx.post(web.url + "/api/predict", files={"audio": ("t.wav", f)}, data={"granularity": "frame", "segment": "vad"})
    assert r.status_code == 422 and r.json()["code"] == "bad_option" and "cannot be combined" in r.json()["error"]
    with open(talk, "rb") as f:
        r = httpx.post(web.url + "/api/predict", files={"audio": ("t.wav", f)}, data={"method": "ewma"})
    assert r.status_code == 422 and "frame options apply to granularity=frame only" in r.json()["error"]
    cli = run("predict", str(talk), "--model", str(tiny_dir), "--segment", "vad", "--window-s", "5")
    assert cli.returncode == 2 and "window_s: these apply to segment=window only" in cli.stderr


def test_embedding_per_segment(web, talk):
    with open(talk, "rb") as f:
        r = httpx.post(web.url + "/api/predict", files={"audio": ("t.wav", f)}, data={"segment": "vad", "extract_embedding": "1"})
    assert r.status_code == 200, r.text
    result = r.json()
    emb = np.load(web.outputs / result["output_dir"] / "embedding.npy")
    assert emb.shape == (len(result["segments"]), web.engine.embed_dim) == (3, web.engine.embed_dim)


def test_concurrent_long_recordings_match_the_solo_request(web, tmp_path):
    """Four long recordings at once over REST: each gets exactly its solo segments (the VAD's
    recurrent state is per scan, never shared)."""
    files = []
    for i in range(4):
        parts = [np.zeros(4000 * (i + 1), np.float32)]
        for j in range(3 + i % 2):
            parts += [espeak(["One two three.", "Good morning.", "Thanks a lot.", "Bye now."][(i + j) % 4], seed=i + j)]
            parts += [np.zeros(12000, np.float32)]
        files.append(write_audio(tmp_path / f"rec{i}.wav", np.concatenate(parts), 16000, "wav"))

    def post(path):
        with open(path, "rb") as f:
            r = httpx.post(web.url + "/api/predict", files={"audio": (path.name, f)}, data={"segment": "vad"}, timeout=300)
        assert r.status_code == 200, r.text
        return [(s["start"], s["end"], s["emotion"]) for s in r.json()["segments"]]

    solo = [post(p) for p in files]
    assert [len(s) for s in solo] == [3, 4, 3, 4]
    for _ in range(2):
        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(post, files)) == solo


def test_long_frame_results_link_frames_csv_instead_of_inlining(web, tmp_path):
    """Past max_inline_frames the response and result.json carry no frame list, only frames.csv;
    asked for (max_inline_frames=0), every frame is inlined."""
    path = write_audio(tmp_path / "long.wav", speechlike(8.0), 16000, "wav")
    with open(path, "rb") as f:
        data = f.read()
    r = httpx.post(
        web.url + "/api/predict", files={"audio": ("l.wav", data)}, data={"granularity": "frame", "max_inline_frames": "100"}
    )
    assert r.status_code == 200, r.text
    d = r.json()
    assert "frames" not in d and d["frames_file"] == "frames.csv" and d["num_frames"] == 399 and d["segments"]
    rows = httpx.get(web.url + d["files"]["frames.csv"]).text.strip().split("\n")
    assert len(rows) == 1 + 399
    r = httpx.post(
        web.url + "/api/predict", files={"audio": ("l.wav", data)}, data={"granularity": "frame", "max_inline_frames": "0"}
    )
    assert len(r.json()["frames"]) == 399 and "frames_file" not in r.json()


def test_frame_embeddings_are_refused_past_ten_minutes(tiny_engine):
    from emotion_app.errors import AudioError

    x = np.zeros(601 * 16000, np.float32)
    x[::100] = 0.1
    with pytest.raises(AudioError, match="limited to 10 minutes"):
        tiny_engine.predict(x, sample_rate=16000, granularity="frame", extract_embedding=True)
