"""Several models on one server (`serve --models`, emotion_app/modelset.py): a real server with the
tiny base model and a folder fine-tuned from it (zero steps, its own labels `angry` and `calm`),
asked over REST, the Gradio API and MCP: a request naming the fine-tuned model gets its labels, one
naming none the base's; an unknown name is a registered error; the folder loads on first use."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import numpy as np
import pytest
from audio_files import speechlike, write_audio
from conftest import free_port

from emotion_app.errors import ERRORS
from emotion_app.fields import OptionError
from emotion_app.modelset import ModelSet, UnknownModel, parse_folders

OWN = {"angry", "calm"}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, tiny_dir):
    """The tiny model fine-tuned for zero steps on two labels, one of the nine and one not."""
    from emotion_app.finetune.run import FineTuneOptions, fine_tune

    root = tmp_path_factory.mktemp("tuned")
    for k, label in enumerate(sorted(OWN)):
        (root / "data" / label).mkdir(parents=True)
        for j in range(2):
            write_audio(root / "data" / label / f"{j}.wav", speechlike(1.0 + 0.3 * j, seed=10 * k + j), 16000)
    opts = FineTuneOptions(epochs=0, precision="fp32", top=1)
    return fine_tune(root / "data", out=root / "mine", model=str(tiny_dir), options=opts).folder


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_dir, tuned):
    from emotion_app import Engine
    from emotion_app.web.server import AppSettings, launch

    engine = Engine(model=str(tiny_dir), max_duration_s=60)
    outputs = tmp_path_factory.mktemp("models_outputs")
    settings = AppSettings(port=free_port(), outputs_dir=outputs, mcp=True, models=(f"mine={tuned}",))
    served = launch(engine, settings, block=False)
    clip = write_audio(outputs.parent / "clip.wav", speechlike(1.5, seed=3), 16000)
    yield type("Server", (), {"url": served.local_url.rstrip("/"), "engine": engine, "clip": clip})
    served.close()


def post(server, **fields):
    with open(server.clip, "rb") as f:
        return httpx.post(f"{server.url}/api/predict", files={"audio": ("clip.wav", f)}, data=fields, timeout=120)


def test_rest_chooses_the_model_per_request(server):
    health = httpx.get(f"{server.url}/api/health", timeout=30).json()
    base = server.engine.model_info["id"]
    assert health["models"] == {base: list(server.engine.labels), "mine": ["angry", "calm"]}
    plain, mine = post(server).json(), post(server, model="mine").json()
    assert set(plain["probabilities"]) == set(server.engine.labels) and len(plain["probabilities"]) == 9
    assert set(mine["probabilities"]) == OWN and mine["model"]["id"] == "mine"
    assert plain["model"]["id"] == base == post(server, model=base).json()["model"]["id"]
    wrong = post(server, model="nope", lang="zh")
    assert wrong.status_code == 400 and wrong.json()["code"] == "unknown_model"
    assert ERRORS["unknown_model"].zh in wrong.json()["error"] and "mine" in wrong.json()["error"]


def test_gradio_api_and_the_page_choose_the_model(server):
    from gradio_client import Client, handle_file

    client = Client(server.url + "/", verbose=False)
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/predict"]
    params = {p["parameter_name"]: p for p in api["parameters"]}
    assert params["model"]["parameter_default"] == server.engine.model_info["id"]
    mine = client.predict(handle_file(str(server.clip)), "frame", False, model="mine", api_name="/predict")
    assert set(mine["probabilities"]) == OWN and {s["emotion"] for s in mine["segments"]} <= OWN
    plain = client.predict(handle_file(str(server.clip)), "utterance", False, api_name="/predict")
    assert len(plain["probabilities"]) == 9


def test_mcp_tools_take_a_model_argument(server):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    audio = "data:audio/wav;base64," + base64.b64encode(server.clip.read_bytes()).decode()

    async def go():
        async with streamablehttp_client(f"{server.url}/mcp", timeout=120) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                asked = ({}, {"model": "mine"}, {"model": "x"})
                return [await session.call_tool("predict", {"audio": audio, **extra}) for extra in asked]

    plain, mine, wrong = asyncio.run(asyncio.wait_for(go(), 120))
    assert len(json.loads(plain.content[0].text)["probabilities"]) == 9
    assert set(json.loads(mine.content[0].text)["probabilities"]) == OWN
    assert wrong.isError and "unknown_model: No model named 'x'" in wrong.content[0].text


def test_folders_are_checked_at_start_and_loaded_on_first_use(tiny_engine, tuned, tmp_path):
    assert parse_folders(f"{tuned}, other={tuned}") == {"mine": tuned, "other": tuned}
    with pytest.raises(OptionError, match="two models"):
        parse_folders(f"{tuned},{tuned}")
    with pytest.raises(OptionError, match="not a model folder"):
        ModelSet(tiny_engine, [str(tmp_path)])
    models = ModelSet(tiny_engine, [str(tuned)])
    assert models.loaded() == [models.base_name] and models.labels("mine") == ("angry", "calm")
    with pytest.raises(UnknownModel):
        models.engine("other")
    engine = models.engine("mine")
    assert engine is models.engine("mine") and models.loaded() == [models.base_name, "mine"] and not engine.heads
    p = engine.predict((16000, speechlike(1.0, seed=1))).probabilities
    assert p.shape == (2,) and np.isclose(p.sum(), 1.0, atol=1e-5)
