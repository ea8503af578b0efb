"""The npm Gradio client (@gradio/client, tests/js/) against the running app, as Gradio's "Use via
API" page shows it for JavaScript: the audio as a Blob (no file name) or a Node Buffer is read by
its content, its reply equals the Python client's, and a file that is not audio gets the decoder's
error. `./run.sh test` installs the client (`npm ci --prefix tests/js`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from audio_files import speechlike, write_audio

from emotion_app.constants import LABEL_KEYS

JS = Path(__file__).parent / "js"
RTTM = "SPEAKER rec 1 0.00 1.00 <NA> <NA> Ann <NA> <NA>\nSPEAKER rec 1 1.00 1.00 <NA> <NA> Bob <NA> <NA>\n"


@pytest.fixture(scope="module")
def replies(web, tmp_path_factory) -> dict:
    """Each call of tests/js/client.mjs: {ok, result} or {ok: False, error}; and the Python client's reply."""
    node = shutil.which("node")
    if node is None:  # CI's machine has it: a missing one is a failure to fix, never a skip
        pytest.fail("node is not installed: this test needs Node.js 18+ and npm (apt-get install nodejs npm)")
    if not (JS / "node_modules" / "@gradio" / "client").is_dir():
        pytest.fail("the npm Gradio client is not installed: run `npm ci --prefix tests/js` (./run.sh test does)")
    root = tmp_path_factory.mktemp("npm")
    audio = write_audio(root / "speech.wav", speechlike(2.0, 16000, seed=5), 16000, "wav")
    (root / "notes.txt").write_text("these are notes, not audio\n" * 20)
    (root / "turns.rttm").write_text(RTTM)
    args = [node, str(JS / "client.mjs"), web.url + "/", str(audio), str(root / "notes.txt"), str(root / "turns.rttm")]
    run = subprocess.run(args, cwd=JS, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])

    from gradio_client import Client, handle_file

    out["python"] = Client(web.url + "/", verbose=False).predict(handle_file(str(audio)), "utterance", False, api_name="/predict")
    return out


@pytest.mark.parametrize("form", ["blob", "buffer", "file"])
def test_a_blob_a_buffer_and_a_file_give_the_python_clients_reply(replies, form):
    reply, python = replies[form], replies["python"]
    assert reply["ok"], reply
    result = reply["result"]
    assert result["file"] == ("speech.wav" if form == "file" else "blob")  # a Blob and a Buffer upload as "blob"
    assert result["emotion"] == python["emotion"] and result["confidence"] == python["confidence"]
    assert list(result["scores"]) == list(LABEL_KEYS) and result["scores"] == python["scores"]
    assert result["probabilities"] == python["probabilities"] and result["duration_s"] == 2.0


def test_a_blob_that_is_not_audio_gets_the_decoders_error(replies):
    reply = replies["not_audio"]
    assert not reply["ok"]
    assert reply["error"].startswith("blob: not an audio or video file that can be decoded"), reply
    assert "Traceback" not in reply["error"] and "Invalid file type" not in reply["error"]


def test_recording_reads_turns_from_a_blob_by_their_content(replies):
    reply = replies["recording"]
    assert reply["ok"], reply
    result = reply["result"]
    assert [(s["start"], s["end"], s["speaker"]) for s in result["segments"]] == [(0.0, 1.0, "Ann"), (1.0, 2.0, "Bob")]
    assert [s["name"] for s in result["speakers"]] == ["Ann", "Bob"]
