"""app.py as a user starts it: flags, environment variables, and a model that cannot be loaded."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from audio_files import speechlike, write_audio
from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


def start(args, env=None):
    proc = subprocess.Popen(
        [sys.executable, "app.py", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc


def wait_health(url, proc, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        try:
            return httpx.get(url + "/api/health", timeout=2)
        except httpx.TransportError:
            time.sleep(0.3)
    raise AssertionError("server did not start")


def stop(proc) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_app_serves_page_and_rest_with_flags_and_env(tiny_dir, tmp_path):
    port = free_port()
    outputs = tmp_path / "outs"
    proc = start(
        ["--port", str(port), "--outputs", str(outputs), "--max-upload-mb", "1"],
        env={"EMOTION_APP_MODEL": str(tiny_dir), "EMOTION_APP_THREADS": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_health(url, proc)
        assert health.status_code == 200 and health.json()["model"]["id"] == tiny_dir.name  # a local folder: its name only
        assert "path" not in health.json()["model"] and str(tiny_dir) not in health.text
        assert health.json()["max_upload_mb"] == 1
        page = httpx.get(url + "/")
        assert page.status_code == 200 and "gradio" in page.text.lower()
        wav = write_audio(tmp_path / "a.wav", speechlike(1.2), 16000, "wav").read_bytes()
        r = httpx.post(url + "/api/predict", files={"audio": ("a.wav", wav)}, data={"extract_embedding": "1"}, timeout=60)
        assert r.status_code == 200 and (outputs / r.json()["output_dir"] / "embedding.npy").is_file()
        big = httpx.post(url + "/api/predict", files={"audio": ("b.wav", b"\0" * 1_200_000)})
        assert big.status_code == 413
    finally:
        out = stop(proc)
    assert "ready on cpu (torch, fp32, 1 thread)" in out  # EMOTION_APP_THREADS: the model's threads
    assert f"Running on {url}" in out and "--share" in out and "share=True" not in out  # the app's flag, not Gradio's


def test_help_lists_defaults_and_environment_variables():
    env = {**os.environ, "EMOTION_APP_PORT": "7999", "EMOTION_APP_AUTH": "ana:s3cret"}
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    text = " ".join(out.stdout.split())  # argparse wraps lines
    assert out.returncode == 0 and "[EMOTION_APP_HOST] (default: 127.0.0.1)" in text
    assert "[EMOTION_APP_PORT] (default: 7999)" in text and "[EMOTION_APP_SHARE=1]" in text
    assert "[EMOTION_APP_AUTH]" in text and "s3cret" not in text  # a secret is never printed


def test_auth_protects_page_and_rest(tiny_dir, tmp_path):
    port = free_port()
    proc = start(["--port", str(port), "--model", str(tiny_dir), "--outputs", str(tmp_path), "--auth", "ana:s3cret"])
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_health(url, proc).status_code == 401
        assert httpx.get(url + "/api/health", auth=("ana", "wrong")).status_code == 401
        assert httpx.get(url + "/api/health", auth=("ana", "s3cret")).json()["status"] == "ok"
    finally:
        stop(proc)


def test_model_that_cannot_be_obtained_is_said_in_terminal_and_page(tmp_path):
    port = free_port()
    proc = start(["--port", str(port), "--model", str(tmp_path / "no_such_model"), "--outputs", str(tmp_path)])
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_health(url, proc)
        assert health.status_code == 503 and "does not exist" in health.json()["error"]
        r = httpx.post(url + "/api/predict", files={"audio": ("a.wav", b"RIFF")})
        assert r.status_code == 503 and r.json()["code"] == "model_load"
        from gradio_client import Client

        config = httpx.get(url + "/config").json()
        assert any("The model could not be loaded" in str(c.get("props", {}).get("value", "")) for c in config["components"])
        assert Client(url + "/", verbose=False)  # the page and its API still come up
    finally:
        out = stop(proc)
    assert "does not exist" in out


def _snapshot(outputs: Path) -> dict[str, bytes]:
    return {str(p.relative_to(outputs)): p.read_bytes() for p in sorted(outputs.rglob("*")) if p.is_file()}


def test_kill_during_a_long_recording_leaves_nothing_partial(tiny_dir, tmp_path):
    """kill -9 while a long recording is being written, then a restart: no temporary folder is
    left, no folder of the killed request appears, and every folder written before is unchanged."""
    import threading

    import numpy as np

    outputs = tmp_path / "outs"
    args = ["--port", str(free_port()), "--outputs", str(outputs), "--model", str(tiny_dir)]
    url = f"http://127.0.0.1:{args[1]}"
    proc = start(args)
    wait_health(url, proc)
    wav = write_audio(tmp_path / "a.wav", speechlike(1.5), 16000, "wav").read_bytes()
    done = httpx.post(url + "/api/predict", files={"audio": ("a.wav", wav)}, timeout=60)
    assert done.status_code == 200
    before = _snapshot(outputs)
    long = write_audio(tmp_path / "long.flac", np.tile(speechlike(30.0, seed=3), 12), 16000, "flac")  # 6 minutes

    def post():
        try:
            with open(long, "rb") as f:
                httpx.post(url + "/api/predict", files={"audio": ("long.flac", f)}, data={"segment": "window"}, timeout=120)
        except httpx.TransportError:
            pass  # the server dies mid-request

    thread = threading.Thread(target=post)
    thread.start()
    deadline = time.time() + 60
    while not list(outputs.glob(".tmp-*/processed_audio.wav")) and time.time() < deadline:
        time.sleep(0.05)
    assert list(outputs.glob(".tmp-*")), "the long recording never started writing"
    proc.kill()  # SIGKILL: no cleanup of any kind
    proc.communicate()
    thread.join(timeout=60)
    assert list(outputs.glob(".tmp-*"))  # the killed request's partial folder is there until a restart

    proc = start(args)
    try:
        wait_health(url, proc)
        assert not list(outputs.glob(".tmp-*"))
        after = _snapshot(outputs)
        assert {k: v for k, v in after.items() if not k.startswith(".")} == {
            k: v for k, v in before.items() if not k.startswith(".")
        }
    finally:
        stop(proc)


def test_offline_the_health_and_the_page_keep_the_advice_and_hide_real_paths(tmp_path):
    """No network: the default model cannot be downloaded. /api/health and the page say so, with
    the advice's placeholder path intact and without this machine's paths."""
    port = free_port()
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_ETAG_TIMEOUT": "2",
           "HF_HUB_DOWNLOAD_TIMEOUT": "2", "HF_HUB_OFFLINE": "0"}  # fmt: skip
    proc = start(["--port", str(port), "--hub", "hf", "--outputs", str(tmp_path / "outs")], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_health(url, proc, timeout=120)
        error = health.json()["error"]
        assert health.status_code == 503 and "Could not download model" in error and "Hugging Face" in error
        assert "--model /path/to/emotion2vec_plus_large (containing config.yaml, tokens.txt, model.pt)" in error
        assert str(tmp_path) not in error and "/tmp/" not in error
        config = httpx.get(url + "/config").text
        assert "/path/to/emotion2vec_plus_large" in config and str(tmp_path / "hf") not in config
    finally:
        stop(proc)


def test_gradio_settings_from_the_environment_cannot_bypass_the_guard(tiny_dir, tmp_path):
    """GRADIO_NUM_WORKERS would start upload and file servers of Gradio's own on the next ports,
    without the guard; GRADIO_SSR_MODE a Node proxy in front of it. Neither starts: every upload
    still meets the guard's limit and host check."""
    port = free_port()
    env = {"GRADIO_NUM_WORKERS": "2", "GRADIO_SSR_MODE": "true", "EMOTION_APP_MODEL": str(tiny_dir)}
    proc = start(["--port", str(port), "--outputs", str(tmp_path / "outs"), "--max-upload-mb", "1"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_health(url, proc).status_code == 200
        big = {"files": ("big.wav", b"\0" * (2 << 20))}
        refused = httpx.post(url + "/gradio_api/upload", files=big, timeout=30)
        assert refused.status_code == 413 and refused.json()["code"] == "too_large"
        wrong_host = httpx.get(url + "/config", headers={"Host": "evil.example"}, timeout=10)
        assert wrong_host.status_code == 421
        for other in (port + 1, port + 2):  # where Gradio's static workers would listen
            try:
                answer = httpx.post(f"http://127.0.0.1:{other}/gradio_api/upload", files=big, timeout=5)
            except httpx.TransportError:
                continue
            raise AssertionError(f"something answers on port {other}: {answer.status_code}")
    finally:
        out = stop(proc)
    assert "Static file workers" not in out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--autoscale", "1,4"], "--autoscale needs --ray-serve"),
        (["--ray-serve", "--autoscale", "4,1"], "MIN <= MAX"),
        (["--ray-serve", "--autoscale", "two"], "two whole numbers"),
        (["--ray-serve", "--replicas", "0"], "--replicas takes"),
        (["--batch-wait-ms", "-1"], "--batch-max and --batch-wait-ms"),
    ],
)
def test_serve_flags_are_checked(flags, message, capsys):
    from emotion_app.cli.serve import parse_args

    with pytest.raises(SystemExit):
        parse_args(flags)
    assert message in capsys.readouterr().err
