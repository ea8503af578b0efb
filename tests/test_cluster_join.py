"""serve --ray-serve --ray-address: fronts that join a running Ray cluster (here a `ray start --head`
on 127.0.0.1 with the tiny checkpoint's replicas), as docs/scale.md's cluster section runs them.

The first front finds no application and deploys it; the second uses it as deployed. Both write into
one shared outputs folder, so a result made on one is served by the other's keyed link. A front
that stops leaves the application running for the other; nothing listens beyond 127.0.0.1. Every
process is started here and stopped by its id (the head with `--block`: it stops what it started)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from audio_files import speechlike, write_audio
from conftest import free_port
from test_ray_batch import descendants, listening_sockets

pytestmark = pytest.mark.long

ROOT = Path(__file__).parent.parent
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray keeps 127.0.0.1 (batch/ray_pipeline.py)
START_S = 180.0


def stop(proc: subprocess.Popen, sig=signal.SIGINT, wait_s: float = 60) -> None:
    """`sig` to `proc`, SIGKILL if it has not ended after `wait_s`."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def wait_healthy(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the front exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(url + "/api/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the front did not answer in {START_S:.0f} s:\n{log.read_text()[-3000:]}")


def token_env(path: Path) -> dict[str, str]:
    """Ray's token authentication as docs/ray.md sets it up, with the token in the file `path`."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(path)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Ray head on 127.0.0.1 (`ray start --head --block`) with its token: (address, token's
    environment); stopped after the module."""
    tmp = tmp_path_factory.mktemp("cluster")
    token = tmp / "auth_token"
    token.write_text(secrets.token_hex(32))
    port = free_port()
    # Ray's session folder holds its sockets, whose paths may not pass 107 bytes: a short folder of its own
    ray_tmp = Path(tempfile.mkdtemp(prefix="ea-ray-", dir="/tmp"))
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    command = [ray, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2"]
    command += ["--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={ray_tmp}"]
    log = tmp / "head.log"
    env = {**os.environ, **LOOPBACK_ENV, **token_env(token)}
    head = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + START_S
        while b"Ray runtime started" not in log.read_bytes():
            assert head.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the Ray head did not start:\n" + log.read_text()[-3000:]
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", token_env(token)
    finally:
        # gcs_server, the raylet, its workers (the Serve actors the fronts left), killed at once: on
        # SIGTERM `--block` stops them one grace period after another (~30 s on 2 busy cores), and
        # nothing of this throwaway cluster needs a clean end (its session folder goes below)
        for sig in (signal.SIGSTOP, signal.SIGKILL):  # frozen first: none starts a process that the kill misses
            for pid in descendants(head.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        head.wait(30)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def start_front(cluster, tiny_dir: Path, outputs: Path, log: Path, wait: bool = True) -> tuple[subprocess.Popen, str]:
    address, auth = cluster
    port = free_port()
    command = [sys.executable, "-m", "emotion_app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--ray-serve", "--ray-address", address, "--replicas", "1", "--cpus-per-replica", "1"]
    command += ["--model", str(tiny_dir), "--outputs", str(outputs), "--keep-hours", "0"]
    env = {**os.environ, **LOOPBACK_ENV, **auth, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    if wait:
        wait_healthy(proc, url, log)
    return proc, url


def predict(url: str, path: Path) -> dict:
    with open(path, "rb") as f:
        answer = httpx.post(url + "/api/predict", files={"audio": f}, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_two_fronts_join_a_cluster_and_share_its_replicas_and_results(cluster, tiny_dir, tmp_path):
    outputs = tmp_path / "shared_outputs"  # the folder every front writes and serves (docs/scale.md)
    clip = write_audio(tmp_path / "clip.wav", speechlike(2.0, 16000, seed=3), 16000)
    first, first_url = start_front(cluster, tiny_dir, outputs, tmp_path / "first.log")
    second = None
    try:
        assert "deploying the model" in (tmp_path / "first.log").read_text()  # no application there yet
        second, second_url = start_front(cluster, tiny_dir, outputs, tmp_path / "second.log")
        assert "using the running Serve application 'emotion'" in (tmp_path / "second.log").read_text()
        made = predict(second_url, clip)
        again = predict(first_url, clip)
        assert made["probabilities"] == pytest.approx(again["probabilities"], abs=1e-6)  # one model, two fronts
        for name, link in made["files"].items():  # a result made on one front, served by the other's keyed link
            got = httpx.get(first_url + link, timeout=30)
            assert got.status_code == 200 and got.content, (name, got.status_code)
        sockets = listening_sockets(descendants(os.getpid()))
        exposed = [(n, str(ip)) for _, n, ip in sockets if not (getattr(ip, "ipv4_mapped", None) or ip).is_loopback]
        assert not exposed, exposed
        assert any(n.startswith("ray::ServeRepli") for _, n, _ in sockets), sockets
        stop(first)  # a front that joined leaves the application running for the others
        assert first.returncode == 0, (tmp_path / "first.log").read_text()[-3000:]
        assert predict(second_url, clip)["probabilities"] == pytest.approx(made["probabilities"], abs=1e-6)
    finally:
        stop(first)
        if second is not None:
            stop(second)


def test_a_front_without_the_clusters_token_is_told_what_to_set(cluster, tiny_dir, tmp_path):
    log = tmp_path / "front.log"
    no_token = {"RAY_AUTH_MODE": "disabled", "RAY_NUM_REDIS_GET_RETRIES": "2"}  # Ray tries 20 times, a second apart
    front, _ = start_front((cluster[0], no_token), tiny_dir, tmp_path / "out", log, wait=False)
    try:
        assert front.wait(120) == 1
    finally:
        stop(front)
    text = log.read_text()
    assert "refused this front: it uses token authentication" in text and "RAY_AUTH_MODE=token" in text, text[-2000:]
    assert "Traceback" not in text, text[-2000:]
