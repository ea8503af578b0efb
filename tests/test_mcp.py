"""The MCP server (`serve --mcp`) on a real server with --auth and a 2 MB upload limit, called with
the `mcp` Python client over 127.0.0.1: the tools and their schemas, predict on a real file sent as
a data URL (the same numbers as the engine), label sets and sentiment, a recording's speakers,
compare, the limits, the refused references, and URL fetching only when allowed."""

from __future__ import annotations

import asyncio
import base64
import functools
import http.server
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from audio_files import espeak, write_audio
from conftest import free_port
from conversation_audio import RATE, call

from emotion_app.analysis.report import result_schema
from emotion_app.errors import EmotionAppError
from emotion_app.web.api.mcp_audio import envelope_bytes

AUTH = ("agent", "mcp-s3cret")
BASIC = {"Authorization": "Basic " + base64.b64encode(":".join(AUTH).encode()).decode()}
FOUR = ["angry", "happy", "neutral", "sad"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_dir):
    from emotion_app import Engine
    from emotion_app.web.server import AppSettings, launch

    engine = Engine(model=str(tiny_dir), max_duration_s=120)
    outputs = tmp_path_factory.mktemp("mcp_outputs")
    settings = AppSettings(port=free_port(), outputs_dir=outputs, max_upload_mb=2, auth=AUTH, mcp=True)
    demo = launch(engine, settings, block=False)
    yield type("Server", (), {"url": demo.local_url.rstrip("/"), "engine": engine, "outputs": outputs})
    demo.close()


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    pause = np.zeros(4000, np.float32)
    talk = np.concatenate([pause, espeak("I am so happy to see you again."), pause])
    return write_audio(tmp_path_factory.mktemp("mcp_audio") / "speech.wav", talk, 16000, "wav")


def data_url(path: Path, mime: str = "audio/wav") -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def session_call(server, steps, headers=BASIC):
    """Run `steps(session)` in an MCP client session with the server; return what it returns."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def go():
        async with streamablehttp_client(f"{server.url}/mcp", headers=headers, timeout=120) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await steps(session)

    return asyncio.run(asyncio.wait_for(go(), 180))


def call_tool(server, name, arguments):
    return session_call(server, lambda s: s.call_tool(name, arguments))


def test_tools_are_listed_with_typed_inputs_outputs_and_descriptions(server):
    tools = {t.name: t for t in session_call(server, lambda s: s.list_tools()).tools}
    assert set(tools) == {"predict", "analyze_recording", "compare_clips"}
    for tool in tools.values():
        assert len(tool.description) > 60 and tool.outputSchema and tool.outputSchema["type"] == "object"
        props = tool.inputSchema["properties"]
        assert all("description" in p for p in props.values())
    assert tools["predict"].inputSchema["required"] == ["audio"] and "data:audio/wav;base64" in str(tools["predict"].inputSchema)
    assert {"emotion", "confidence", "scores", "files"} <= set(tools["predict"].outputSchema["properties"])
    assert {"segments", "speakers"} <= set(tools["analyze_recording"].outputSchema["properties"])


def json_types(prop: dict) -> set[str]:
    """The JSON types a (pydantic or result.schema.json) property allows, null aside; a reference an object."""
    if "$ref" in prop:
        return {"object"}
    if "anyOf" in prop:
        return set().union(*(json_types(p) for p in prop["anyOf"]))
    types = prop.get("type", [])
    return set([types] if isinstance(types, str) else types) - {"null"}


def refs(prop) -> list[str]:
    """The names of the definitions a property refers to, at any depth, in order."""
    if isinstance(prop, list):
        return [name for p in prop for name in refs(p)]
    if not isinstance(prop, dict):
        return []
    own = [prop["$ref"].rsplit("/", 1)[-1]] if isinstance(prop.get("$ref"), str) else []
    return own + [name for v in prop.values() for name in refs(v)]


def test_the_tools_answers_are_the_result_schemas_fields(server):
    """The output types are derived from the result model (analysis/report.py): every field a tool
    declares, at every depth, is a field of result.json's published schema with the same JSON type."""
    defs = result_schema()["$defs"]
    tools = {t.name: t.outputSchema for t in session_call(server, lambda s: s.list_tools()).tools}
    answers = {k: v for schema in tools.values() for k, v in schema.get("$defs", {}).items()}
    pending = [(tools["predict"], "ClipReport"), (tools["analyze_recording"], "RecordingReport")]
    pending.append((answers["ClipReading"], "ClipReport"))  # compare_clips' clips
    checked = set()
    while pending:
        answer, name = pending.pop()
        for key, prop in answer["properties"].items():
            if key == "files":  # the download links: the APIs' addition to result.json
                continue
            theirs = defs[name]["properties"][key]  # a KeyError: a field result.json does not have
            assert json_types(prop) == json_types(theirs), f"{name}.{key}: {prop} vs {theirs}"
            checked.add(f"{name}.{key}")
            pending += [(answers[a], b) for a, b in zip(refs(prop), refs(theirs))]  # the blocks inside, likewise
    assert {"Segment.speaker", "Speaker.share_of_talk", "Escalation.from", "SentimentReading.label"} <= checked


def test_an_answer_declares_only_result_json_fields():
    from emotion_app.analysis.report import Speaker
    from emotion_app.web.api.mcp_server import answer_model

    assert list(answer_model(Speaker, ("name", "talk_s")).model_fields) == ["name", "talk_s"]
    with pytest.raises(ValueError, match="Speaker has no field 'talk'"):
        answer_model(Speaker, ("name", "talk"))


def test_predict_on_a_data_url_gives_the_engines_numbers(server, speech):
    result = call_tool(server, "predict", {"audio": data_url(speech)})
    assert not result.isError, result.content
    out = result.structuredContent
    expected = server.engine.predict(str(speech))
    assert out["emotion"] == expected.emotion and out["confidence"] == pytest.approx(expected.confidence, abs=1e-4)
    assert out["scores"] == pytest.approx(expected.scores(), abs=1e-3) and out["duration_s"] == pytest.approx(
        expected.duration_s, abs=1e-3
    )
    assert set(out["files"]) >= {"result.json", "processed_audio.wav"}
    link = out["files"]["result.json"]
    assert link.startswith(server.url + "/api/outputs/")  # absolute, keyed
    assert httpx.get(link, headers=BASIC, timeout=10).json()["emotion"] == out["emotion"]
    assert httpx.get(link, timeout=10).status_code == 401  # the same login as the REST API

    with_set = call_tool(server, "predict", {"audio": data_url(speech), "labels": "iemocap4", "sentiment": True})
    out = with_set.structuredContent
    assert out["label_set"] == FOUR and list(out["scores"]) == FOUR and out["emotion"] in FOUR
    assert out["sentiment"]["label"] in ("positive", "negative", "neutral") and -1 <= out["sentiment"]["score"] <= 1


def test_a_call_recording_with_its_speakers(server, tmp_path):
    path = tmp_path / "call.flac"
    sf.write(path, call(rounds=2).stereo(), RATE)
    result = call_tool(
        server, "analyze_recording", {"audio": data_url(path, "audio/flac"), "speakers": "channels", "names": "Agent,Customer"}
    )
    assert not result.isError, result.content
    out = result.structuredContent
    assert [s["name"] for s in out["speakers"]] == ["Agent", "Customer"] and len(out["segments"]) == 4
    assert [s["speaker"] for s in out["segments"]] == ["Agent", "Customer"] * 2 and "interruptions" in out["conversation"]


def test_compare_two_clips(server, speech, tmp_path):
    other = write_audio(tmp_path / "other.wav", espeak("Leave me alone, I said no.", 1), 16000, "wav")
    out = call_tool(server, "compare_clips", {"audio_a": data_url(speech), "audio_b": data_url(other)}).structuredContent
    assert len(out["clips"]) == 2 and -1 <= out["similarity"] < 0.9999
    same = call_tool(server, "compare_clips", {"audio_a": data_url(speech), "audio_b": data_url(speech)}).structuredContent
    assert same["similarity"] == pytest.approx(1.0, abs=1e-4) and same["clips"][0]["emotion"] == out["clips"][0]["emotion"]
    both = {"audio_a": data_url(speech), "audio_b": data_url(other), "labels": "iemocap4", "sentiment": True}
    four = call_tool(server, "compare_clips", both).structuredContent
    from emotion_app.sentiment import Sentiment

    for clip in four["clips"]:
        assert list(clip["scores"]) == FOUR and clip["label_set"] == FOUR
        assert clip["sentiment"]["score"] == pytest.approx(Sentiment().of(clip["scores"])["score"], abs=0.01)


def test_limits_and_refused_references(server, speech, tmp_path):
    big = tmp_path / "big.wav"
    sf.write(big, np.random.default_rng(0).uniform(-0.1, 0.1, 1_060_000).astype(np.float32), 16000, subtype="PCM_16")
    # over the limit once decoded, yet inside the JSON envelope the guard lets through
    assert 2 * 2**20 < big.stat().st_size and len(data_url(big)) + 1024 < envelope_bytes(2)
    over = call_tool(server, "predict", {"audio": data_url(big)})
    assert over.isError and "too_large: " in over.content[0].text and "larger than the limit of 2 MB" in over.content[0].text
    for audio, message in [
        ("http://127.0.0.1:9/speech.wav", "does not fetch URLs"),
        ("/etc/passwd", "'passwd' is not a file uploaded to this server"),
        ("data:audio/wav,notbase64", "must be base64"),
        ("ftp://example.com/a.wav", "unsupported reference"),
        (f"{server.url}/api/outputs/x/y/result.json", "no such result file"),
    ]:
        result = call_tool(server, "predict", {"audio": audio})
        assert result.isError and message in result.content[0].text, (audio, result.content)
    before = len(list(server.outputs.iterdir()))

    payload = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "predict", "arguments": {"audio": "A" * (16 << 20)}},
    }
    headers = {**BASIC, "Accept": "application/json, text/event-stream"}
    refused = httpx.post(f"{server.url}/mcp/", json=payload, headers=headers, timeout=60)
    assert refused.status_code == 413 and refused.json()["code"] == "too_large"  # the guard, before the tool
    assert len(list(server.outputs.iterdir())) == before  # nothing written by refused calls
    assert not call_tool(server, "predict", {"audio": data_url(speech)}).isError  # and the server serves on


def test_a_file_uploaded_to_this_server_and_the_login(server, speech):
    with httpx.Client(base_url=server.url, timeout=30) as page:  # the page's way: log in, then upload
        assert page.post("/login", data={"username": AUTH[0], "password": AUTH[1]}).status_code == 200
        with open(speech, "rb") as f:
            uploaded = page.post("/gradio_api/upload", files={"files": f})
    assert uploaded.status_code == 200, uploaded.text
    result = call_tool(server, "predict", {"audio": uploaded.json()[0]})
    assert not result.isError and result.structuredContent["emotion"] == server.engine.predict(str(speech)).emotion
    with pytest.raises(Exception) as refused:
        session_call(server, lambda s: s.list_tools(), headers={})
    assert "401" in repr(refused.value) or "nauthorized" in repr(refused.value)


def test_urls_are_fetched_only_when_allowed(server, speech, tmp_path):
    from emotion_app.web.api.mcp_audio import AudioRefs

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(speech.parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/{speech.name}"
    try:
        data, name = AudioRefs(tmp_path, 2, allow_urls=True, upload_dir=tmp_path).open(url)
        assert data == speech.read_bytes() and name == speech.name
        with pytest.raises(EmotionAppError, match="larger than the limit of 0.01 MB"):
            AudioRefs(tmp_path, 0.01, allow_urls=True, upload_dir=tmp_path).open(url)
        with pytest.raises(EmotionAppError, match="--mcp-allow-urls"):
            AudioRefs(tmp_path, 2, allow_urls=False, upload_dir=tmp_path).open(url)
    finally:
        httpd.shutdown()


def test_errors_are_worded_as_the_rest_api_words_them(server, speech, monkeypatch):
    """An EmotionAppError reaches the agent with this machine's paths cut; anything else is an
    internal error (logged), never the exception's own text."""
    import emotion_app.web.api.mcp_server as mcp_server

    def broken(*args, **kwargs):
        raise RuntimeError("tensor shape mismatch in /work/secret/engine.py")

    monkeypatch.setattr(mcp_server, "analyze", broken)
    result = call_tool(server, "predict", {"audio": data_url(speech)})
    text = result.content[0].text  # the SDK puts "Error executing tool predict: " before it
    assert result.isError and text.endswith(f"internal: {mcp_server.INTERNAL}")
    assert "secret" not in text and "mismatch" not in text

    def refused(*args, **kwargs):
        raise EmotionAppError("cannot read /work/models/emotion2vec/model.pt", "model_load")

    monkeypatch.setattr(mcp_server, "analyze", refused)
    result = call_tool(server, "predict", {"audio": data_url(speech)})
    text = result.content[0].text
    assert result.isError and "model_load: cannot read model.pt" in text and "/work/models" not in text  # code, then message
    monkeypatch.undo()
    assert not call_tool(server, "predict", {"audio": data_url(speech)}).isError


def test_a_data_url_past_the_inline_limit_names_the_upload(tmp_path):
    """Data URLs are parsed on the event loop by the SDK: past MAX_INLINE_MB (under the upload limit)
    the error says how to send a larger file."""
    from emotion_app.web.api.mcp_audio import MAX_INLINE_MB, AudioRefs, envelope_bytes

    refs = AudioRefs(tmp_path, max_upload_mb=100, allow_urls=False, upload_dir=tmp_path)
    payload = base64.b64encode(b"\0" * int((MAX_INLINE_MB + 0.5) * 2**20)).decode()
    with pytest.raises(EmotionAppError) as err:
        refs.open("data:audio/wav;base64," + payload)
    assert err.value.code == "too_large" and f"at most {MAX_INLINE_MB:g} MB" in err.value.message
    assert "POST /gradio_api/upload" in err.value.message
    assert envelope_bytes(100) < 2.7 * MAX_INLINE_MB * 2**20  # two data URLs and the JSON, not 100 MB
    assert len(refs.open("data:audio/wav;base64," + base64.b64encode(b"RIFF" * 1000).decode())[0]) == 4000
