"""serve --ray-serve: the web front on a local Ray (127.0.0.1 only) with two Serve replicas of the
tiny checkpoint. Every entry point answers as the single-process server does (result.json to 1e-5),
32 concurrent requests form batches larger than one (seen in /metrics, which prometheus_client
parses), and a replica killed (kill -9) under 16 concurrent clients and a live take loses none
and leaves none hanging; Serve starts a new one. One Ray for the module (its start is most of the
module's time)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from audio_files import speechlike, write_audio
from conftest import free_port
from test_metrics import scrape
from test_ray_batch import descendants, listening_sockets
from test_sliding import BOUND
from test_stream import pcm16, stream_take

from emotion_app.scale.cluster import ServeOptions, start_model

pytestmark = pytest.mark.long  # Ray's start: begun early in its worker (tests/workers.py)

ROOT = Path(__file__).parent.parent
VARYING = {"timings", "timestamp", "output_dir", "files"}  # differ between any two runs of a request


@pytest.fixture(scope="module")
def front(tmp_path_factory, tiny_dir):
    from emotion_app.web.server import AppSettings, launch

    options = {"model": str(tiny_dir), "max_duration_s": 60, "threads": 1}  # the `web` fixture's model and limit
    serve_options = ServeOptions(replicas=2, cpus_per_replica=0.5, batch_wait_ms=50)
    with start_model(options, serve_options, num_cpus=2) as engine:
        outputs = tmp_path_factory.mktemp("scale_outputs")
        served = launch(engine, AppSettings(port=free_port(), outputs_dir=outputs, max_upload_mb=2, mcp=True), block=False)
        yield type("Front", (), {"url": served.local_url.rstrip("/"), "engine": engine, "outputs": outputs})
        served.close()


def same(a, b, where="result", tol=1e-5):
    """Two result.json contents equal but for what varies between runs; numbers to `tol`."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) - VARYING == set(b) - VARYING, where
        for key in set(a) - VARYING:
            same(a[key], b[key], f"{where}.{key}", tol)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]", tol)
    elif isinstance(a, float) or isinstance(b, float):
        assert abs(a - b) <= tol, f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def rest(url: str, path, **fields) -> dict:
    with open(path, "rb") as f:
        answer = httpx.post(url + "/api/predict", files={"audio": f}, data=fields, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_every_entry_point_answers_as_the_single_process_server(front, web, tmp_path):
    from gradio_client import Client, handle_file
    from test_mcp import call_tool, data_url

    path = write_audio(tmp_path / "speech.wav", speechlike(2.5, 22050, seed=3), 22050)
    long = write_audio(tmp_path / "long.wav", speechlike(7.0, 16000, seed=4), 16000)  # 7 windows: 2 batches, fanned out
    for audio, fields in ((path, {}), (path, {"granularity": "frame"}), (long, {"segment": "window", "window_s": "1"})):
        result = rest(front.url, audio, **fields)
        same(result, rest(web.url, audio, **fields))
        saved = json.loads((front.outputs / result["output_dir"] / "result.json").read_text(encoding="utf-8"))
        same(saved, result)
    gradio = Client(front.url + "/", verbose=False).predict(handle_file(str(path)), "frame", False, api_name="/predict")
    same(gradio, Client(web.url + "/", verbose=False).predict(handle_file(str(path)), "frame", False, api_name="/predict"))
    mcp = call_tool(type("S", (), {"url": front.url}), "predict", {"audio": data_url(path)}).structuredContent
    alone = rest(web.url, path)
    shared = (set(mcp) & set(alone)) - {"file", "audio"}  # result.json fields the tool gives; its input is named otherwise
    assert {"emotion", "probabilities", "scores", "duration_s"} <= shared
    same({k: mcp[k] for k in shared}, {k: alone[k] for k in shared})
    take = pcm16(3.0)
    live, alone = (stream_take(server, take, speed=None)[0] for server in (front, web))
    # sent at once, a take gets the hops the model has room for: the windows both scored read the same
    hops = [{(m["t_start"], m["t_end"]): m["scores"] for m in messages if m["event"] == "hop"} for messages in (live, alone)]
    both = sorted(set(hops[0]) & set(hops[1]))
    assert both, hops
    # The single process slides each take's conv features from hop to hop (model/sliding.py); the
    # replicas score whole windows: equal within the sliding's bound and the messages' rounding.
    same([hops[0][w] for w in both], [hops[1][w] for w in both], "hops", BOUND + 1e-3)
    assert live[-1]["event"] == "result" == alone[-1]["event"]
    same(live[-1]["result"], alone[-1]["result"], "result", BOUND + 1e-3)


def predict_many(url, paths, workers):
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda p: rest(url, p), paths))


def test_concurrent_requests_are_batched_across_requests_in_the_replicas(front, tmp_path):
    paths = [write_audio(tmp_path / f"s{i}.wav", speechlike(1.0 + 0.01 * i, 16000, seed=i), 16000) for i in range(32)]
    before = scrape(front.url)
    results = predict_many(front.url, paths, 32)
    after = scrape(front.url)
    assert len({r["output_dir"] for r in results}) == 32
    calls = after["emotion_app_batch_requests_sum{}"] - before.get("emotion_app_batch_requests_sum{}", 0)
    batches = after["emotion_app_batch_requests_count{}"] - before.get("emotion_app_batch_requests_count{}", 0)
    assert calls == 32 and batches < 32, (calls, batches)  # some model call merged several requests
    assert after["emotion_app_model_replicas{}"] == 2
    assert after['emotion_app_requests_total{method="POST",route="/api/predict",status="200"}'] >= 32


def replica_pids() -> set[int]:
    """The Serve replicas' processes: below this one (the local Ray's), by the title Ray gives them."""
    pids = set()
    for pid in descendants(os.getpid()):
        try:
            if b"ServeReplica:emotion:Model" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.add(pid)
        except OSError:  # ended meanwhile
            continue
    return pids


def test_a_replica_killed_under_load_loses_no_request(front, tmp_path):
    pids = replica_pids()
    assert len(pids) == 2
    paths = [write_audio(tmp_path / f"k{i}.wav", speechlike(1.5, 16000, seed=50 + i), 16000) for i in range(16)]
    answers = []

    def client(path):
        for _ in range(2):  # each client keeps a request in flight until the kill has happened
            with open(path, "rb") as f:
                answer = httpx.post(front.url + "/api/predict", files={"audio": f}, timeout=90)  # a hung one fails here
            answers.append(answer)

    live = {}
    taker = threading.Thread(target=lambda: live.update(messages=stream_take(front, pcm16(4.0), speed=2.0)[0]))
    clients = [threading.Thread(target=client, args=(p,)) for p in paths]
    for t in [taker, *clients]:
        t.start()
    # Killed while 8 model calls or more are out, spread over both replicas (all 8 on the other one: 1 in 256)
    victim = min(pids)
    deadline = time.monotonic() + 30
    while front.engine.backend.in_flight() < 8:
        assert time.monotonic() < deadline, "the load never reached 8 model calls at once"
        time.sleep(0.005)
    os.kill(victim, signal.SIGKILL)
    for t in [taker, *clients]:
        t.join(120)
        assert not t.is_alive(), "a request hung"
    assert len(answers) == 32
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {200, 503}, statuses
    assert all(a.headers.get("retry-after") for a in answers if a.status_code == 503)
    assert statuses.count(200) == 32, f"{statuses.count(503)} answered 503"  # 0 lost: every call retried elsewhere
    # Serve's router sends the calls the dead replica held to the other one; remote.py's retries are
    # the second line (Serve with no replica ready, a call timed out)
    assert live["messages"][-1]["event"] == "result", live["messages"][-1:]  # the live take went on
    deadline = time.monotonic() + 60
    while front.engine.backend.replicas() < 2 or len(replica_pids() - {victim}) < 2:
        assert time.monotonic() < deadline, "Serve did not replace the killed replica"
        time.sleep(0.5)
    result = rest(front.url, paths[0])
    assert np.isclose(sum(result["probabilities"].values()), 1, atol=1e-5)


def test_nothing_of_it_listens_beyond_loopback(front):
    """The front, Ray's processes and both replicas (the one started after the kill too) listen on
    127.0.0.1 only: a replica's own gRPC server, which Ray Serve 2.60 binds to every interface, included."""
    sockets = listening_sockets(descendants(os.getpid()))
    exposed = [(name, str(ip)) for _, name, ip in sockets if not (getattr(ip, "ipv4_mapped", None) or ip).is_loopback]
    assert not exposed, exposed
    replicas = {pid for pid, name, _ in sockets if name.startswith("ray::ServeRepli")}
    assert len(replicas) == 2 and replicas <= replica_pids(), sockets


def test_the_serve_config_builds_the_application():
    """deploy/serve.yaml is a valid Serve config whose builder makes the application (no Ray needed)."""
    import yaml
    from ray._common.utils import import_attr
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve.deployment import Application
    from ray.serve.schema import ServeDeploySchema

    config = ServeDeploySchema.model_validate(yaml.safe_load((ROOT / "deploy" / "serve.yaml").read_text()))
    (app,) = config.applications
    assert config.proxy_location == "Disabled" and app.name == "emotion"
    assert isinstance(call_user_app_builder_with_args_if_necessary(import_attr(app.import_path), app.args), Application)
    scaled = ServeOptions(autoscale=(1, 3), gpus_per_replica=0.5).app_args({"model": "m"})
    assert isinstance(import_attr(app.import_path)(scaled), Application)
