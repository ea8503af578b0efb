"""app.py as a user starts it: flags, environment variables, and a model that cannot be loaded."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
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
        ["--port", str(port), "--outputs", str(outputs), "--max-upload-mb", "1"], env={"EMOTION_APP_MODEL": str(tiny_dir)}
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
    assert "ready on cpu" in out


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
