"""Users and API keys (`serve --users FILE`, `emotion-app users ...`): the command line on a temp
file, then one real server (tiny model, 127.0.0.1) with --users, the old --auth beside it, --mcp
and an audit log small enough to rotate: keys on REST, /api/stream and /mcp, refusals, roles, each
user's rate and requests at once, results listed to their maker only, the page's login, the users
file read again when it changes, and the audit log's lines."""

from __future__ import annotations

import base64
import io
import json
import time

import httpx
import numpy as np
import pytest
from audio_files import speechlike, write_audio
from conftest import free_port
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

AUTH = ("old", "old-s3cret")  # the single --auth, beside the users
PASSWORD = "ana-pa55word"


def run_cli(capsys, monkeypatch, *argv, stdin: str = "") -> tuple[int, str, str]:
    from emotion_app.cli.main import main

    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_users_command_keeps_hashes_and_shows_a_key_once(tmp_path, capsys, monkeypatch):
    from emotion_app.web import users

    path = str(tmp_path / "users.json")
    code, _, err = run_cli(capsys, monkeypatch, "users", "add", "ana", "--file", path, "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0 and "added ana (analyze)" in err
    code, key, _ = run_cli(capsys, monkeypatch, "users", "key", "ana", "--file", path)
    key = key.strip()
    assert code == 0 and key.startswith("ea_") and len(key) > 40
    text = (tmp_path / "users.json").read_text()
    assert key not in text and key.split("_", 2)[2] not in text and PASSWORD not in text  # hashes only
    store = users.load(tmp_path / "users.json")
    assert store.user_for_key(key).name == "ana" and store.user_for_key(key[:-1] + "x") is None
    assert store.check_login("ana", PASSWORD) and not store.check_login("ana", "wrong") and not store.check_login("bob", PASSWORD)
    assert store.users["ana"].password.startswith("scrypt$") and (tmp_path / "users.json").stat().st_mode & 0o077 == 0
    again = users.UserStore().add("ana", PASSWORD)  # a salt of its own each time
    assert again.users["ana"].password != store.users["ana"].password

    code, _, err = run_cli(capsys, monkeypatch, "users", "add", "ana", "--file", path, "--no-password")
    assert code == 2 and "exists already" in err
    code, _, err = run_cli(capsys, monkeypatch, "users", "add", "x y", "--file", path, "--no-password")
    assert code == 2 and "not a user name" in err
    key_id = key.split("_")[1]
    code, out, _ = run_cli(capsys, monkeypatch, "users", "list", "--file", path)
    assert code == 0 and out.startswith("ana\tanalyze\t60/min\t2 at once\tpassword\tkeys: " + key_id)
    assert run_cli(capsys, monkeypatch, "users", "key", "ana", "--file", path, "--revoke", key_id)[0] == 0
    assert users.load(tmp_path / "users.json").user_for_key(key) is None
    code, _, _ = run_cli(capsys, monkeypatch, "users", "remove", "ana", "--file", path)
    assert code == 0 and users.load(tmp_path / "users.json").users == {}
    code, _, err = run_cli(capsys, monkeypatch, "users", "remove", "ana", "--file", path)
    assert code == 2 and "No user 'ana'" in err


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_dir):
    from emotion_app import Engine
    from emotion_app.web import users
    from emotion_app.web.api import callers
    from emotion_app.web.server import AppSettings, launch

    folder = tmp_path_factory.mktemp("users_server")
    store = users.UserStore()
    store = store.add("ana", PASSWORD, max_concurrent=1)
    store = store.add("bob", None).add("root", None, role="admin").add("slow", None, rate_per_minute=3)
    keys = {}
    for name in ("ana", "bob", "root", "slow"):
        store, keys[name] = store.new_key(name)
    users.save(store, folder / "users.json")
    settings = AppSettings(
        port=free_port(), outputs_dir=folder / "outputs", max_upload_mb=2, auth=AUTH, mcp=True,
        users_file=folder / "users.json", audit_log=folder / "audit.jsonl", audit_max_mb=4 / 1024,
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(callers, "RELOAD_INTERVAL_S", 0.2)
        served = launch(Engine(model=str(tiny_dir)), settings, block=False)
        yield type("Server", (), {"url": served.local_url.rstrip("/"), "folder": folder, "keys": keys, "store": store})
        served.close()


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("users_audio") / "speech.wav"
    return write_audio(path, speechlike(1.0, 16000, seed=3), 16000, "wav").read_bytes()


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def predict(server, key: str, wav: bytes) -> dict:
    answer = httpx.post(f"{server.url}/api/predict", files={"audio": ("a.wav", wav)}, headers=bearer(key), timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def results(server, key: str, **params) -> httpx.Response:
    return httpx.get(f"{server.url}/api/results", params=params, headers=bearer(key), timeout=30)


def wait_for(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def test_keys_open_the_api_and_results_are_their_makers(server, wav):
    ana, bob = predict(server, server.keys["ana"], wav), predict(server, server.keys["bob"], wav)
    outputs = server.folder / "outputs"
    assert (outputs / ana["output_dir"] / ".owner").read_text() == "ana"
    mine = results(server, server.keys["ana"]).json()
    assert mine["user"] == "ana" and [r["folder"] for r in mine["results"]] == [ana["output_dir"]]
    assert mine["results"][0]["files"] == ana["files"] and mine["results"][0]["emotion"] == ana["emotion"]
    assert [r["folder"] for r in results(server, server.keys["bob"]).json()["results"]] == [bob["output_dir"]]
    everyone = results(server, server.keys["root"], all="1").json()["results"]
    assert {ana["output_dir"], bob["output_dir"]} <= {r["folder"] for r in everyone}
    refused = results(server, server.keys["ana"], all="1")
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden" and "admin role" in refused.json()["error"]
    # a keyed link opens for whoever holds it; the owner file is never served
    link = ana["files"]["result.json"]
    assert httpx.get(server.url + link, headers=bearer(server.keys["bob"])).json()["output_dir"] == ana["output_dir"]
    hidden = httpx.get(server.url + link.replace("result.json", ".owner"), headers=bearer(server.keys["ana"]))
    assert hidden.status_code == 404


def test_no_key_or_a_wrong_key_is_refused_clearly(server):
    none = httpx.get(f"{server.url}/api/health")
    assert none.status_code == 401 and none.json()["code"] == "unauthorized" and "Authorization: Bearer" in none.json()["error"]
    wrong = httpx.get(f"{server.url}/api/health", headers=bearer(server.keys["ana"][:-2] + "zz"))
    assert wrong.status_code == 401 and wrong.json()["code"] == "bad_key" and "not valid" in wrong.json()["error"]
    chinese = httpx.get(f"{server.url}/api/health", headers={**bearer("ea_x_y"), "Accept-Language": "zh-CN"})
    assert chinese.status_code == 401 and "API 密钥无效" in chinese.json()["error"]
    assert httpx.post(f"{server.url}/mcp/", json={}, headers=bearer("ea_x_y")).status_code == 401
    # the single --auth keeps working beside the users, and its results are its own
    basic = httpx.get(f"{server.url}/api/results", auth=AUTH)
    assert basic.status_code == 200 and basic.json()["user"] == AUTH[0]
    assert httpx.get(f"{server.url}/api/health", auth=(AUTH[0], "wrong")).status_code == 401


def test_a_users_rate_is_held_with_retry_after(server):
    answers = [httpx.get(f"{server.url}/api/health", headers=bearer(server.keys["slow"])) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].json()["code"] == "rate_limited" and 1 <= int(answers[3].headers["retry-after"]) <= 20
    assert "3 requests a minute" in answers[3].json()["error"]
    assert httpx.get(f"{server.url}/api/health", headers=bearer(server.keys["bob"])).status_code == 200  # others go on


def test_the_live_stream_takes_a_key_and_counts_as_running(server):
    url = server.url.replace("http://", "ws://") + "/api/stream"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, proxy=None)
    assert refused.value.response.status_code == 401
    with connect(url, additional_headers=bearer(server.keys["ana"]), proxy=None) as ws:
        ws.send(json.dumps({"sample_rate": 16000}))
        assert json.loads(ws.recv(timeout=10))["event"] == "ready"
        # ana may run one request at once: the open take is it
        busy = httpx.get(f"{server.url}/api/health", headers=bearer(server.keys["ana"]))
        assert busy.status_code == 429 and busy.json()["code"] == "too_many_running" and busy.headers["retry-after"] == "1"
        ws.send((np.clip(speechlike(1.0, 16000), -1, 1) * 32767).astype("<i2").tobytes())
        ws.send(json.dumps({"event": "end"}))
        while (message := json.loads(ws.recv(timeout=30)))["event"] != "result":
            assert message["event"] in ("hop", "limit")
    folder = message["result"]["output_dir"]
    assert (server.folder / "outputs" / folder / ".owner").read_text() == "ana"
    ok = lambda: httpx.get(f"{server.url}/api/health", headers=bearer(server.keys["ana"])).status_code == 200  # noqa: E731
    assert wait_for(ok)


def test_mcp_takes_a_key(server, wav):
    headers = {**bearer(server.keys["bob"]), "Accept": "application/json, text/event-stream"}
    audio = "data:audio/wav;base64," + base64.b64encode(wav).decode()
    payload = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "predict", "arguments": {"audio": audio}}}
    answer = httpx.post(f"{server.url}/mcp/", json=payload, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert not result["isError"], result
    folder = result["structuredContent"]["output_dir"]
    assert (server.folder / "outputs" / folder / ".owner").read_text() == "bob"
    assert folder in {r["folder"] for r in results(server, server.keys["bob"]).json()["results"]}


def test_the_page_logs_in_with_the_users_password(server, wav):
    with httpx.Client(base_url=server.url, timeout=30) as page:
        assert page.post("/login", data={"username": "ana", "password": "wrong"}).status_code == 400
        assert page.post("/login", data={"username": "bob", "password": "x"}).status_code == 400  # keys only
        assert page.post("/login", data={"username": "ana", "password": PASSWORD}).status_code == 200
        assert page.get("/gradio_api/user").json() == "ana"
        mine = page.get("/api/results")  # the page's session names its user to the API too
        assert mine.status_code == 200 and mine.json()["user"] == "ana"
        posted = page.post("/api/predict", files={"audio": ("a.wav", wav)})  # for reading only: no cross-site posts
        assert posted.status_code == 401 and posted.json()["code"] == "unauthorized"
        assert page.post("/login", data={"username": AUTH[0], "password": AUTH[1]}).status_code == 200  # and --auth's


def test_the_users_file_is_read_again_when_it_changes(server):
    from emotion_app.web import users

    key_id = server.keys["slow"].split("_")[1]
    users.save(server.store.revoke("slow", key_id), server.folder / "users.json")
    gone = lambda: httpx.get(f"{server.url}/api/health", headers=bearer(server.keys["slow"])).status_code == 401  # noqa: E731
    assert wait_for(gone)


def test_the_audit_log(server, wav):
    predict(server, server.keys["root"], wav)
    for _ in range(20):  # lines enough to rotate the 4 KB log
        httpx.get(f"{server.url}/api/health", headers=bearer(server.keys["bob"]))
    audit = server.folder / "audit.jsonl"

    def lines():
        return [json.loads(x) for f in sorted(server.folder.glob("audit.jsonl*")) for x in f.read_text().splitlines()]

    assert wait_for(lambda: any(line["user"] == "root" and line["route"] == "/api/predict" for line in lines()))
    files = sorted(server.folder.glob("audit.jsonl*"))
    assert audit in files and len(files) > 1 and all(f.stat().st_size <= 4096 for f in files)  # rotated at 4 KB
    fields = {"time", "user", "via", "method", "route", "status", "seconds", "bytes_in", "client"}
    assert all(set(line) == fields for line in lines())
    post = next(line for line in lines() if line["user"] == "root" and line["route"] == "/api/predict")
    assert post["status"] == 200 and post["via"] == "key" and post["method"] == "POST" and post["client"] == "127.0.0.1"
    assert post["bytes_in"] > len(wav) and post["seconds"] > 0
    assert any(line["user"] is None and line["status"] == 401 for line in lines())  # refused: nobody
    downloads = [line["route"] for line in lines() if line["route"].startswith("/api/outputs/")]
    assert downloads and all(route.split("/")[4] == "-" for route in downloads)  # a link's key is cut
    text = "".join(f.read_text() for f in files)
    for secret in [*server.keys.values(), PASSWORD, AUTH[1], base64.b64encode(wav[:48]).decode(), "RIFF"]:
        assert secret not in text


def test_the_page_keeps_its_users_results_and_lists_only_theirs(server, tmp_path, wav):
    from types import SimpleNamespace

    from gradio_client import Client, handle_file

    from emotion_app.web.ui.common import bind
    from emotion_app.web.ui.my_results import my_results

    (tmp_path / "a.wav").write_bytes(wav)
    client = Client(server.url + "/", auth=("ana", PASSWORD), verbose=False)
    made = client.predict(handle_file(str(tmp_path / "a.wav")), "utterance", False, api_name="/predict")["output_dir"]
    outputs = server.folder / "outputs"
    assert (outputs / made / ".owner").read_text() == "ana"
    bobs = predict(server, server.keys["bob"], wav)["output_dir"]
    listing = bind(my_results, outputs)  # the page's event, as Gradio calls it: the request last
    ana_sees, bob_sees = listing("en", SimpleNamespace(username="ana")), listing("zh", SimpleNamespace(username="bob"))
    made, bobs = f"/api/outputs/{made}/", f"/api/outputs/{bobs}/"  # in the links
    assert made in ana_sees and bobs not in ana_sees
    assert bobs in bob_sees and made not in bob_sees and "文件" in bob_sees
    assert "No results of yours yet" in listing("en", SimpleNamespace(username="nobody"))
