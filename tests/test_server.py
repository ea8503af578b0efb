"""The app is ours (web/server.py): `build_app` gives one ASGI app that another ASGI server runs
with the same guard, routes and page; `serve` says clearly when it cannot start; and no module
reaches into Gradio's private parts (the server once did, held together by an exact pin)."""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

import pytest
from conftest import free_port

PKG = Path(__file__).parent.parent / "emotion_app"

# What the server used to need from Gradio, and any name Gradio keeps private (a leading "_").
PRIVATE_GRADIO = {
    "launch(_app=...)": re.compile(r"\b_app\s*="),
    "launch(_frontend=...)": re.compile(r"\b_frontend\b"),
    "demo.server": re.compile(r"\bdemo\.server\b"),
    "a uvicorn config changed after launch": re.compile(r"\.server\.config\b"),
    "gradio.routes.App": re.compile(r"from\s+gradio\.routes\s+import\b[^\n]*\bApp\b|\bgradio\.routes\.App\b|\(App\)"),
    "a private gradio name": re.compile(r"\bgradio(?:\.\w+)*\._\w+|from\s+gradio(?:\.\w+)*\s+import\s+\(?\s*_\w+"),
    "a private attribute of the Blocks": re.compile(r"\bdemo\._\w+"),
}


def test_no_module_uses_private_gradio_api():
    found = []
    for path in sorted(PKG.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for what, pattern in PRIVATE_GRADIO.items():
            found += [f"{path.relative_to(PKG)}: {what}: {m.group(0)!r}" for m in pattern.finditer(text)]
    assert found == []


@pytest.mark.parametrize(
    "line",
    [
        "demo.launch(_app=app, _frontend=False)",
        "demo.server.config.ws_max_size = 1",
        "from gradio.routes import App",
        "class GuardedApp(App):",
        "from gradio.utils import _parse_file_size",
        "gradio.blocks._private()",
        "demo._queue.close()",
    ],
)
def test_the_private_api_check_sees_each_form(line):
    assert any(pattern.search(line) for pattern in PRIVATE_GRADIO.values()), line


def test_another_asgi_server_runs_the_built_app(tiny_dir, tmp_path):
    """Starlette's test client (not our uvicorn) runs build_app's app: its lifespan, our routes,
    Gradio's page and the guard in front of all of them."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from emotion_app import Engine
    from emotion_app.web.server import AppSettings, build_app

    def sweepers() -> int:
        return sum(t.name == "emotion-app-sweeper" for t in threading.enumerate())

    before = sweepers()
    app = build_app(Engine(model=str(tiny_dir)), AppSettings(port=free_port(), outputs_dir=tmp_path / "outputs"))
    assert isinstance(app, FastAPI) and app.state.live is not None and app.state.watchdog is not None
    try:
        with TestClient(app, base_url="http://127.0.0.1") as client:
            assert sweepers() == before + 1  # the lifespan started the retention sweeper
            health = client.get("/api/health")
            assert health.status_code == 200 and health.json()["status"] == "ok" and "live" in health.json()
            page = client.get("/")
            assert page.status_code == 200 and "gradio" in page.text.lower()
            assert client.get("/config").json()["analytics_enabled"] is False
            assert client.get("/api/nothing").json() == {"error": "Not Found", "code": "not_found"}
            assert client.get("/api/predict").status_code == 405  # ours, not the page's
            foreign = client.get("/", headers={"Host": "evil.example"})
            assert foreign.status_code == 421 and foreign.json()["code"] == "bad_host"  # the guard is outermost
            cors = client.get("/config", headers={"Origin": "http://localhost:9999"})
            assert "access-control-allow-origin" not in cors.headers  # Gradio's localhost CORS is replaced
        assert sweepers() == before  # and stopped it
    finally:
        app.state.demo.close(verbose=False)


def test_a_port_in_use_is_said_clearly():
    from fastapi import FastAPI

    from emotion_app.errors import EmotionAppError
    from emotion_app.web.server import serve

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EmotionAppError, match="--port") as error:
            serve(FastAPI(), "127.0.0.1", port)
    assert error.value.code == "unavailable" and f"127.0.0.1:{port}" in str(error.value)


@pytest.mark.parametrize(
    "host, url",
    [("127.0.0.1", "http://127.0.0.1:7860/"), ("0.0.0.0", "http://localhost:7860/"), ("::1", "http://[::1]:7860/")],
)
def test_local_url(host, url):
    from emotion_app.web.server import local_url

    assert local_url(host, 7860) == url
