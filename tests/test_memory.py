"""The memory budget (emotion_app/memory.py): the estimate, the queue, and a server with its budget
set low: what does not fit waits, then is answered busy (503, Retry-After, the caller's language),
what is too big for the budget is refused at once, and nothing half-written is left behind."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from audio_files import speechlike, write_audio
from conftest import free_port
from test_stream import wait_for

from emotion_app.errors import EmotionAppError
from emotion_app.memory import COSTS, MemoryBudget, MemoryBusy, estimate_mb, request_kind, source_seconds
from emotion_app.request import RequestOptions


@pytest.mark.parametrize(
    "fields, kind",
    [({}, "clip"), ({"granularity": "frame"}, "frames"), ({"segment": "vad"}, "recording"),
     ({"speakers": "channels"}, "channels"), ({"speakers": "auto"}, "diarize"), ({"speakers": "3"}, "diarize")],
)  # fmt: skip
def test_each_request_has_its_kind_and_longer_audio_costs_more(fields, kind):
    assert request_kind(RequestOptions.from_fields(fields)) == kind
    cost = COSTS[kind]
    assert estimate_mb(kind, 0) == cost.fixed_mb
    assert estimate_mb(kind, 3600) == pytest.approx(cost.fixed_mb + 60 * cost.per_minute_mb)


def test_the_length_comes_from_the_header_else_from_the_bytes(tmp_path):
    from emotion_app.audio.source import open_source

    path = write_audio(tmp_path / "a.flac", speechlike(3.0), 16000, "flac")
    src = open_source(path).probe()
    try:
        assert source_seconds(src, 7200) == pytest.approx(3.0, abs=0.01)
        assert source_seconds(src, 2.0) == 2.0  # never past the longest accepted
    finally:
        src.close()
    headerless = type("Src", (), {"declared_s": None, "data": b"x" * 8000})()
    assert source_seconds(headerless, 7200) == 4.0  # 8000 bytes at 16 kbit/s


def test_the_queue_is_first_come_first_served_bounded_and_timed():
    budget = MemoryBudget(1000, wait_s=5.0, max_waiting=2)
    order: list[str] = []
    first = budget.hold(800, "first")
    first.__enter__()

    def run(name: str, mb: float):
        with budget.hold(mb, name):
            order.append(name)

    with ThreadPoolExecutor(2) as pool:
        big = pool.submit(run, "big", 900)
        assert wait_for(lambda: budget.waiting == 1)
        small = pool.submit(run, "small", 100)  # would fit now, but waits its turn behind "big"
        assert wait_for(lambda: budget.waiting == 2)
        with pytest.raises(MemoryBusy) as busy:  # the queue is full: refused at once
            with budget.hold(10, "third"):
                pass
        assert busy.value.code == "memory_busy" and busy.value.retry_after_s > 0
        first.__exit__(None, None, None)
        big.result(10), small.result(10)
    assert order == ["big", "small"]
    assert budget.health() | {"wait_s": 0} == {
        "budget_mb": 1000, "in_use_mb": 0, "running": 0, "waiting": 0, "refused": 1, "max_waiting": 2, "wait_s": 0,
    }  # fmt: skip

    quick = MemoryBudget(1000, wait_s=0.05)
    with quick.hold(600):
        with pytest.raises(MemoryBusy):  # waited its time, no room came
            with quick.hold(600):
                pass
    assert quick.waiting == 0 and quick.in_use_mb == 0
    with pytest.raises(EmotionAppError) as whole:
        with quick.hold(1001, "huge"):
            pass
    assert whole.value.code == "too_long" and "--max-memory-gb" in whole.value.message


def test_the_default_budget_is_the_machines_memory_less_a_share_and_the_model(tmp_path):
    from emotion_app import memory

    info = tmp_path / "meminfo"
    info.write_text("MemTotal:       16777216 kB\nMemFree: 1 kB\n")  # 16 GiB
    budget = memory.default_budget_mb(str(info))
    assert budget == pytest.approx(16384 * 0.8 - memory._rss_mb(), abs=64)  # less this process's RSS (the model's)
    assert 0 < memory._rss_mb() < 16384 * 0.8
    info.write_text("MemTotal:       1048576 kB\n")  # 1 GiB: the floor
    assert memory.default_budget_mb(str(info)) == memory.FLOOR_MB
    assert MemoryBudget.for_machine(2.5).budget_mb == 2560


@pytest.fixture(scope="module")
def low(tmp_path_factory, tiny_dir):
    """A server whose budget holds one recording (1100 MB) but not two, with a short wait for memory."""
    from emotion_app import Engine
    from emotion_app.web.server import AppSettings, launch

    outputs = tmp_path_factory.mktemp("memory_outputs")
    settings = AppSettings(port=free_port(), outputs_dir=outputs, max_memory_gb=1.5, memory_wait_s=0.3, mcp=True)
    served = launch(Engine(model=str(tiny_dir)), settings, block=False)
    yield type("Low", (), {"url": served.local_url.rstrip("/"), "outputs": outputs, "memory": served.app.state.memory})
    served.close()


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> bytes:
    path = write_audio(tmp_path_factory.mktemp("memory_audio") / "call.wav", speechlike(12.0), 16000)
    return path.read_bytes()


def post(url: str, data: bytes, **fields) -> httpx.Response:
    return httpx.post(f"{url}/api/predict", files={"audio": ("call.wav", data)}, data=fields, timeout=120)


def folders(outputs) -> list[str]:
    return sorted(p.name for p in outputs.iterdir() if p.name != ".secret")


def test_past_the_budget_a_request_waits_then_is_answered_busy_in_its_language(low, recording):
    before = folders(low.outputs)
    with low.memory.hold(1000, "the test's long analysis"):  # another user's work holds most of the budget
        answer = post(low.url, recording, segment="vad", lang="zh")
        health = httpx.get(f"{low.url}/api/health", timeout=10).json()["memory"]
    assert answer.status_code == 503
    assert int(answer.headers["retry-after"]) > 0
    body = answer.json()
    assert body["code"] == "memory_busy" and body["error"].startswith("服务器繁忙")
    assert health["budget_mb"] == 1536 and health["in_use_mb"] == 1000 and health["refused"] >= 1
    assert folders(low.outputs) == before  # nothing written, no temp folder left
    english = None
    with low.memory.hold(1000):
        english = post(low.url, recording, segment="vad")
    assert english.status_code == 503 and english.json()["error"].startswith("The server is busy")
    assert post(low.url, recording, segment="vad").status_code == 200  # the memory is free again: served


def test_two_long_requests_at_once_the_second_waits_for_the_first(low, recording):
    low.memory.wait_s = 60.0  # long enough for the tiny model's recordings on a loaded machine
    waited = low.memory.waited
    try:
        held = low.memory.hold(1000, "the test's long analysis")
        held.__enter__()
        with ThreadPoolExecutor(2) as pool:
            answers = [pool.submit(post, low.url, recording, segment="vad") for _ in range(2)]
            assert wait_for(lambda: low.memory.waiting == 2)  # both queued behind the test's hold
            held.__exit__(None, None, None)  # one fits now; the other waits for it
            results = [a.result(120) for a in answers]
    finally:
        low.memory.wait_s = 0.3
    assert [r.status_code for r in results] == [200, 200]
    assert low.memory.waited == waited + 2
    for r in results:
        folder = low.outputs / r.json()["output_dir"]
        assert (folder / "result.json").is_file() and (folder / "processed_audio.wav").is_file()
    assert not [p for p in low.outputs.iterdir() if p.name.startswith(".tmp-")]
    assert low.memory.health()["in_use_mb"] == 0 and low.memory.running == 0


def test_a_request_larger_than_the_whole_budget_is_refused_at_once(low, recording):
    answer = post(low.url, recording, speakers="2")  # a diarized conversation: 1800 MB > 1536
    assert answer.status_code == 400 and answer.json()["code"] == "too_long"
    assert "memory budget" in answer.json()["error"]


def test_the_mcp_tools_hold_the_same_budget(low, recording):
    import base64

    url = "data:audio/wav;base64," + base64.b64encode(recording).decode()
    params = {"name": "analyze_recording", "arguments": {"audio": url}}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
    headers = {"Accept": "application/json, text/event-stream"}
    both = {**call, "params": {"name": "compare_clips", "arguments": {"audio_a": url, "audio_b": url}}}
    with low.memory.hold(1000):
        for sent in (call, both):
            answer = httpx.post(f"{low.url}/mcp", json=sent, headers=headers, timeout=60).json()
            assert answer["result"]["isError"] and "memory_busy: The server is busy" in answer["result"]["content"][0]["text"]


def test_the_pages_analyses_hold_the_same_budget(low, recording, tmp_path, tiny_engine):
    import gradio as gr
    from gradio_client import Client, handle_file

    from emotion_app.web.ui import tab_batch
    from emotion_app.web.ui.tab_batch import BatchForm

    path = tmp_path / "call.wav"
    path.write_bytes(recording)
    client = Client(low.url + "/", verbose=False)
    args = (handle_file(str(path)), "vad", 0.5, 0.25, 0.3, 30.0, 10.0, 10.0, "none", "", None)
    with low.memory.hold(1000):  # the Long recording tab's API: refused after its wait
        with pytest.raises(Exception, match="The server is busy"):
            client.predict(*args, api_name="/recording")
    assert "segments" in client.predict(*args, api_name="/recording")  # room again: served
    budget = MemoryBudget(1500, wait_s=0.05)  # the Batch tab (no API): its function, as the page calls it
    with budget.hold(1000), pytest.raises(gr.Error, match="服务器繁忙"):
        tab_batch.run_batch(tiny_engine, tmp_path / "out", None, BatchForm(files=[str(path)], lang="zh"), memory=budget)
    assert tab_batch.run_batch(tiny_engine, tmp_path / "out", None, BatchForm(files=[str(path)]), memory=budget).rows


def test_the_flag_reaches_the_settings():
    from emotion_app.cli.serve import parse_args

    assert parse_args(["--max-memory-gb", "3"]).max_memory_gb == 3.0
    assert parse_args([]).max_memory_gb is None
    with pytest.raises(SystemExit):
        parse_args(["--max-memory-gb", "0"])


def test_health_is_read_without_the_lock():
    """/api/health runs on the event loop: it must answer while a worker holds the budget's lock."""
    budget = MemoryBudget(100)
    with budget._turn:  # a worker inside hold()
        done = threading.Event()
        threading.Thread(target=lambda: (budget.health(), done.set()), daemon=True).start()
        assert done.wait(2)
