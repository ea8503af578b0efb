"""A newcomer's first command on a fresh copy of the checkout, as README's quick start gives it:
`./run.sh` alone builds its .venv from requirements.txt (no test requirements) and starts the server,
which must serve the page, a REST prediction and a live take over the WebSocket. Then the same
from `pip install .`: the wheel of this checkout, installed without the checkout on the path.

It builds a real virtual environment (about a minute on 2 cores, from the package index's cache),
which is what proves the runtime requirements complete: the suite's own .venv has the test
requirements, and a library that comes only with them once stopped `./run.sh` from starting.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from audio_files import speechlike, write_audio
from conftest import free_port
from test_stream import open_ws, pcm16, read_all, send_audio, start

pytestmark = pytest.mark.long  # started first in its worker (tests/workers.py)

ROOT = Path(__file__).parent.parent
START_TIMEOUT_S = 600  # the .venv's install (about a minute here) and the server's start


def requirement_files(path: Path) -> set[str]:
    """The requirement files `path` names with `-r`, followed down, itself included."""
    names = {path.name}
    for line in path.read_text().splitlines():
        if line.startswith("-r "):
            names |= requirement_files(path.parent / line[3:].strip())
    return names


def test_pip_install_and_run_sh_install_the_same_requirements():
    """run.sh installs requirements.txt; `pip install .` reads pyproject.toml's dynamic dependencies."""
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["dynamic"]["dependencies"]["file"]
    assert requirement_files(ROOT / "requirements.txt") - {"requirements.txt"} == set(deps)
    assert "websockets" in (ROOT / "requirements-onnx.txt").read_text()  # what the live stream needs to serve


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory) -> Path:
    """The checkout's files as a fresh clone has them (tracked and not ignored), without any .venv."""
    dest = tmp_path_factory.mktemp("fresh") / "emotion_app"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        src = ROOT / name.decode()
        if src.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name.decode())
    assert (dest / "run.sh").is_file() and not (dest / ".venv").exists()
    return dest


def clean_env(**extra) -> dict:
    """The environment of a new terminal: no venv of ours on PATH, nothing pointing into the checkout.
    pip does not byte-compile what it installs (PIP_COMPILE=false, a user's setting like any; pip
    reads PIP_NO_COMPILE=1 as compile=1): the same packages, 16,000 .pyc files fewer to write;
    Python compiles what the server imports."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    return {**env, "PIP_COMPILE": "false", **extra}


def serve_and_check(command: list[str], cwd: Path, outputs: Path, log: Path) -> dict:
    """Start the server, wait for it, check the page, a REST prediction and a live take; stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*command, "--port", str(port), "--outputs", str(outputs)], cwd=cwd, env=clean_env(), stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(url + "/api/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        assert proc.poll() is None, f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
        health = httpx.get(url + "/api/health", timeout=10).json()
        assert health["status"] == "ok" and health["live"]["sessions"] == 0
        page = httpx.get(url + "/", timeout=30)
        assert page.status_code == 200 and "gradio" in page.text.lower()
        wav = write_audio(outputs.parent / "speech.wav", speechlike(2.0), 16000)
        with open(wav, "rb") as f:
            answer = httpx.post(url + "/api/predict", files={"audio": ("speech.wav", f, "audio/wav")}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["emotion"] in health["labels"]
        server = type("Server", (), {"url": url})
        with open_ws(server) as ws:
            assert start(ws, window_s=1.0)["event"] == "ready"
            send_audio(ws, pcm16(2.0), speed=4.0)
            messages, _ = read_all(ws)
        assert [m["event"] for m in messages].count("hop") >= 3 and messages[-1]["event"] == "result", messages[-2:]
        assert (outputs / messages[-1]["result"]["output_dir"] / "result.json").is_file()
        return health
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_run_sh_alone_starts_the_server_on_a_fresh_copy(fresh_copy, tiny_dir, tmp_path):
    serve_and_check(["./run.sh", "--model", str(tiny_dir)], fresh_copy, tmp_path / "outputs", tmp_path / "run.log")
    log = (tmp_path / "run.log").read_text()
    assert "Installing requirements.txt" in log  # it built its own .venv, from the runtime requirements alone
    python = fresh_copy / ".venv" / "bin" / "python"
    missing = subprocess.run([python, "-c", "import pytest"], capture_output=True, env=clean_env())
    assert missing.returncode != 0  # no test requirement came along


def test_pip_install_dot_serves_from_the_wheel(fresh_copy, tiny_dir, tmp_path):
    """`pip install .` into the venv that run.sh built (its requirements are pip install .'s, as the
    test above checks): the wheel, not the checkout, must hold every module and data file."""
    python = fresh_copy / ".venv" / "bin" / "python"

    def pip(*args):
        subprocess.run([python, "-m", "pip", "-q", *args], cwd=fresh_copy, check=True, env=clean_env())

    if not python.exists():  # this test alone: the venv as run.sh builds it
        subprocess.run([sys.executable, "-m", "venv", fresh_copy / ".venv"], check=True)
        pip("install", "-r", "requirements.txt")
    pip("wheel", "--no-deps", "-w", tmp_path / "wheel", ".")
    (wheel,) = (tmp_path / "wheel").glob("emotion_app-*.whl")
    pip("install", "--no-deps", "--force-reinstall", wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [python, "-c", "import emotion_app, json; print(json.dumps(emotion_app.__file__))"], cwd=elsewhere, capture_output=True,
        text=True, env=clean_env(), check=True,
    )  # fmt: skip
    assert "/site-packages/emotion_app/" in json.loads(where.stdout)  # the wheel's copy, not the checkout's
    app = fresh_copy / ".venv" / "bin" / "emotion-app"
    serve_and_check([str(app), "serve", "--model", str(tiny_dir)], elsewhere, tmp_path / "outputs", tmp_path / "serve.log")
    assert re.search(r"Running on http://127\.0\.0\.1:\d+", (tmp_path / "serve.log").read_text())


def test_the_server_refuses_to_start_without_a_websocket_library(monkeypatch, caplog, tmp_path):
    """Said at once, before the model loads, with what to install."""
    import importlib.util
    import logging

    monkeypatch.setattr(logging, "basicConfig", lambda **kw: None)  # serve's own setup would replace pytest's capture

    from emotion_app.cli.main import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in ("websockets", "wsproto") else real(name, *a)
    )
    assert main(["serve", "--model", str(tmp_path / "no-model"), "--outputs", str(tmp_path / "out")]) == 1
    assert "No WebSocket library is installed" in caplog.text and "pip install websockets" in caplog.text
    assert not (tmp_path / "out").exists()  # nothing was started
