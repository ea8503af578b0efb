"""The server left running: body limits and timeouts, private links, Host check, CORS, login throttling.

Real servers on 127.0.0.1 (conftest's `web`, and `guarded` below with --auth and short timeouts),
real clients: httpx, and raw sockets for the bodies httpx will not send (chunked past the limit,
lying lengths, stalls).
"""

from __future__ import annotations

import json
import logging
import math
import os
import select
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlsplit

import httpx
import pytest
from audio_files import speechlike, write_audio
from conftest import free_port

AUTH = ("ana", "s3cret-pw")
BOUNDARY = "XyZzy"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, tiny_dir):
    """A server with --auth, a listed CORS origin and Host name, a 1 MB limit and short body timeouts."""
    from emotion_app import Engine
    from emotion_app.web.server import AppSettings, launch

    settings = AppSettings(
        port=free_port(),
        outputs_dir=tmp_path_factory.mktemp("guarded_outputs"),
        max_upload_mb=1,
        auth=AUTH,
        cors_origins=("https://good.example",),
        allowed_hosts=("app.example",),
        receive_timeout_s=0.5,
        body_timeout_s=2.0,
    )
    served = launch(Engine(model=str(tiny_dir)), settings, block=False)
    yield type("Guarded", (), {"url": served.local_url.rstrip("/"), "settings": settings, "demo": served.demo})
    served.close()


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def raw_exchange(url: str, head: str, chunks=(), pause_s: float = 0.0, wait_s: float = 10.0) -> tuple[int, dict, int]:
    """Send `head` and then `chunks` (stopping as soon as the server answers); return (status, JSON body, bytes sent)."""
    parts = urlsplit(url)
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=wait_s) as s:
        s.sendall(head.encode())
        for chunk in chunks:
            if select.select([s], [], [], 0)[0]:
                break  # the answer is in: stop sending
            try:
                s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            time.sleep(pause_s)
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
            piece = s.recv(65536)
            if not piece:
                break
            data += piece
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.partition(b"\r\n\r\n")[2] or b"{}"), sent


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 1 << 30


def head(url: str, path: str, field: str, extra: str = "", auth: bool = False) -> str:
    """A multipart POST's head (request line, headers) and the opening of its file part."""
    host = urlsplit(url).netloc
    basic = "Authorization: Basic YW5hOnMzY3JldC1wdw==\r\n" if auth else ""  # ana:s3cret-pw
    part = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="big.wav"\r\n\r\n'
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{basic}{extra}"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n" + (part if "chunked" not in extra else "")
    ), part


def chunked(first: str, total_mb: int, piece: int = 64 * 1024):
    """Transfer-Encoding: chunked pieces: the part head, then zeros, `total_mb` MB in all."""
    yield f"{len(first):x}\r\n{first}\r\n".encode()
    for _ in range(total_mb * 1024 * 1024 // piece):
        yield f"{piece:x}\r\n".encode() + b"\0" * piece + b"\r\n"


# -- 1. the upload limit, on the bytes received -----------------------------------------------------
@pytest.mark.parametrize("path, field", [("/api/predict", "audio"), ("/gradio_api/upload", "files")])
def test_a_declared_length_over_the_limit_is_refused_before_any_byte(web, path, field):
    request, _ = head(web.url, path, field, extra="Content-Length: 50000000\r\n")
    status, body, _ = raw_exchange(web.url, request, wait_s=5)
    assert status == 413 and body["code"] == "too_large" and "2 MB" in body["error"]


@pytest.mark.parametrize("lying", ["", "Content-Length: 100\r\n"])
@pytest.mark.parametrize("path, field", [("/api/predict", "audio"), ("/gradio_api/upload", "files")])
def test_a_chunked_body_is_cut_off_at_the_limit(web, path, field, lying):
    request, part = head(web.url, path, field, extra=lying + "Transfer-Encoding: chunked\r\n")
    before = rss_mb()
    status, body, sent = raw_exchange(web.url, request, chunked(part, total_mb=64))
    assert status == 413 and body == {"error": "The upload is larger than the limit of 2 MB.", "code": "too_large"}
    assert sent < 16 * 1024 * 1024  # of 64 MB: the server stopped reading at 2 MB (the rest sat in socket buffers)
    assert rss_mb() - before < 16  # nothing was held in memory


def test_a_chunked_upload_under_the_limit_is_analyzed(web, tmp_path):
    wav = write_audio(tmp_path / "a.wav", speechlike(1.0), 16000, "wav").read_bytes()
    body = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n'.encode()
    body += wav + f"\r\n--{BOUNDARY}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    r = httpx.post(web.url + "/api/predict", content=iter([body[:1000], body[1000:]]), headers=headers, timeout=60)
    assert r.request.headers["transfer-encoding"] == "chunked" and "content-length" not in r.request.headers
    assert r.status_code == 200 and r.json()["file"] == "a.wav"  # no 411: chunked uploads are welcome


def login_cookie(guarded) -> str:
    with client_from("127.0.0.6") as c:
        assert c.post(guarded.url + "/login", data=dict(zip(("username", "password"), AUTH))).status_code == 200
        return "; ".join(f"{k}={v}" for k, v in c.cookies.items())


@pytest.mark.parametrize("path, field", [("/api/predict", "audio"), ("/gradio_api/upload", "files")])
def test_a_stalled_body_times_out(guarded, path, field):
    cookie = f"Cookie: {login_cookie(guarded)}\r\n" if path.startswith("/gradio") else ""
    request, _ = head(guarded.url, path, field, extra=cookie + "Content-Length: 100000\r\n", auth=True)
    start = time.monotonic()
    status, body, _ = raw_exchange(guarded.url, request, [b"\0" * 1000])  # then nothing more
    assert status == 408 and body["code"] == "timeout" and time.monotonic() - start < 2.0


def test_a_trickled_body_meets_the_overall_deadline(guarded):
    request, _ = head(guarded.url, "/api/predict", "audio", extra="Content-Length: 100000\r\n", auth=True)
    start = time.monotonic()
    status, body, sent = raw_exchange(guarded.url, request, [b"\0" * 100] * 100, pause_s=0.2)  # each piece in time
    assert status == 408 and body["code"] == "timeout" and 1.9 < time.monotonic() - start < 4.0 and sent < 2000


# -- 2. private results ------------------------------------------------------------------------------
def predict(web, tmp_path, **kw) -> dict:
    wav = write_audio(tmp_path / "p.wav", speechlike(1.0), 16000, "wav").read_bytes()
    r = httpx.post(web.url + "/api/predict", files={"audio": ("p.wav", wav)}, timeout=60, **kw)
    assert r.status_code == 200, r.text
    return r.json()


def test_links_need_the_key_and_a_wrong_key_reads_as_missing(web, tmp_path):
    result = predict(web, tmp_path)
    url = result["files"]["processed_audio.wav"]
    _, _, folder, key, name = url.strip("/").split("/")
    assert folder == result["output_dir"] and len(key) == 32 and name == "processed_audio.wav"
    got = httpx.get(web.url + url)
    assert got.status_code == 200 and got.content[:4] == b"RIFF" and "private" in got.headers["cache-control"]
    wrong = httpx.get(web.url + url.replace(key, ("B" if key[0] == "A" else "A") + key[1:]))
    missing = httpx.get(web.url + url.replace(name, "embedding.npy"))
    assert wrong.status_code == missing.status_code == 404 and wrong.content == missing.content
    assert (web.outputs / ".secret").stat().st_mode & 0o777 == 0o600
    # Gradio's file route no longer serves the outputs folder by its absolute path
    direct = httpx.get(web.url + "/gradio_api/file=" + quote(str(web.outputs / folder / name)))
    assert direct.status_code in (403, 404)


def test_symlinks_are_never_followed(web, tmp_path):
    from emotion_app.outputs import folder_key

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "result.json").write_text('{"secret": 1}')
    linked = web.outputs / "outputs_20990101_000000"  # a symlinked folder
    linked.symlink_to(elsewhere, target_is_directory=True)
    result = predict(web, tmp_path)
    real = web.outputs / result["output_dir"]
    (real / "scores.png").unlink()
    (real / "scores.png").symlink_to(elsewhere / "result.json")  # a symlinked file in a real folder
    try:
        key = folder_key(web.outputs, linked.name)
        assert httpx.get(f"{web.url}/api/outputs/{linked.name}/{key}/result.json").status_code == 404
        url = result["files"]["scores.png"]
        assert httpx.get(web.url + url).status_code == 404
        assert httpx.get(web.url + result["files"]["result.json"]).status_code == 200
    finally:
        linked.unlink()


# -- 4. browser-facing defaults ----------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/health", "/", "/config", "/gradio_api/info"])
def test_a_foreign_host_is_refused(web, path):
    r = httpx.get(web.url + path, headers={"Host": "evil.example"})
    assert r.status_code == 421 and r.json()["code"] == "bad_host" and set(r.json()) == {"error", "code"}
    port = urlsplit(web.url).port
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert httpx.get(web.url + "/api/health", headers={"Host": host}).status_code == 200


def test_a_listed_host_is_served(guarded):
    r = httpx.get(guarded.url + "/api/health", headers={"Host": "app.example"}, auth=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_cors_is_off_for_other_origins(web):
    for origin in ("https://evil.example", "http://localhost:3000", "null"):  # Gradio allowed localhost ones
        r = httpx.get(web.url + "/api/health", headers={"Origin": origin})
        assert r.status_code == 200 and not [h for h in r.headers if h.startswith("access-control")]
        r = httpx.get(web.url + "/config", headers={"Origin": origin})
        assert not [h for h in r.headers if h.startswith("access-control")]
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    r = httpx.options(web.url + "/api/predict", headers=preflight)
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers and r.json()["code"] == "cors_forbidden"


def test_cors_for_a_listed_origin(guarded):
    r = httpx.get(guarded.url + "/api/health", headers={"Origin": "https://good.example"}, auth=AUTH)
    assert r.headers["access-control-allow-origin"] == "https://good.example"
    assert r.headers["access-control-allow-credentials"] == "true" and "Origin" in r.headers["vary"]
    preflight = {
        "Origin": "https://good.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    r = httpx.options(guarded.url + "/api/predict", headers=preflight)
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "https://good.example"
    assert "POST" in r.headers["access-control-allow-methods"] and r.headers["access-control-allow-headers"] == "authorization"
    r = httpx.get(guarded.url + "/api/health", headers={"Origin": "https://evil.example"}, auth=AUTH)
    assert "access-control-allow-origin" not in r.headers


def test_api_errors_are_json_without_paths_or_reprs(web, tiny_dir):
    cases = [
        httpx.get(web.url + "/api/nothing"),
        httpx.post(web.url + "/api/health"),
        httpx.delete(web.url + "/api/predict"),
        httpx.post(
            web.url + "/api/predict", content=b"--x\r\nbroken", headers={"Content-Type": "multipart/form-data; boundary=x"}
        ),
    ]
    assert [r.status_code for r in cases] == [404, 405, 405, 400]
    for r in cases:
        assert set(r.json()) == {"error", "code"} and r.json()["error"], r.text
        assert "<" not in r.json()["error"] and "object at 0x" not in r.text
    health = httpx.get(web.url + "/api/health")
    assert str(tiny_dir) not in health.text and "path" not in health.json()["model"]
    assert health.json()["model"]["id"] == tiny_dir.name
    assert httpx.get(web.url + "/config").json()["analytics_enabled"] is False


def test_startup_warns_when_exposed_without_auth(caplog):
    from emotion_app.web.access import warn_if_exposed
    from emotion_app.web.server import AppSettings

    with caplog.at_level(logging.WARNING, logger="emotion_app.web.access"):
        warn_if_exposed(AppSettings(host="127.0.0.1"))
        warn_if_exposed(AppSettings(host="0.0.0.0", auth=AUTH, share=True))
        assert not caplog.records
        warn_if_exposed(AppSettings(host="0.0.0.0"))
        warn_if_exposed(AppSettings(host="127.0.0.1", share=True))
    assert len(caplog.records) == 2 and "0.0.0.0 without --auth" in caplog.records[0].message
    assert "--share without --auth" in caplog.records[1].message


def test_host_policy():
    from emotion_app.web.api.hosts import HostPolicy

    loop = HostPolicy.for_bind("127.0.0.1", ["api.example", ".corp.example"])
    assert all(loop.allows(h) for h in ("127.0.0.1:7860", "LOCALHOST", "[::1]:80", "api.example", "x.corp.example", None))
    assert not any(loop.allows(h) for h in ("evil.example", "192.168.1.5", "api.example.evil.com", "corp.example.evil"))
    wild = HostPolicy.for_bind("0.0.0.0")
    assert wild.allows("192.168.1.5:7860") and wild.allows("[fe80::1]") and not wild.allows("evil.example")
    assert HostPolicy.for_bind("127.0.0.1", share=True).allows("abc123.gradio.live")
    assert HostPolicy.for_bind("127.0.0.1", ["*"]).allows("anything.example")


# -- login throttling --------------------------------------------------------------------------------
def client_from(address: str) -> httpx.Client:
    """An HTTP client whose connections come from `address` (any 127.x.y.z is this machine)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10)


def test_500_wrong_passwords_are_not_500_guesses(guarded):
    with client_from("127.0.0.2") as c:
        start = time.monotonic()
        codes = [c.get(guarded.url + "/api/health", auth=("ana", f"guess{i}")).status_code for i in range(500)]
        elapsed = time.monotonic() - start
        # 5 free tries, then one more each time a wait (1 s, 2 s, 4 s, ...) ran out: 2**k - 1 <= elapsed
        expired = int(math.log2(1 + elapsed))
        assert 5 <= codes.count(401) <= 5 + expired and codes.count(401) + codes.count(429) == 500
        # the right password while a wait runs: one that is about to run out (a slow machine's 500
        # tries can end just then) is let run out, and the next wrong guess starts a longer one
        last = c.get(guarded.url + "/api/health", auth=("ana", "guess500"))
        if last.status_code == 429 and int(last.headers["retry-after"]) <= 1:
            time.sleep(1.1)
            last = c.get(guarded.url + "/api/health", auth=("ana", "guess501"))
        assert last.status_code in (401, 429)
        r = c.get(guarded.url + "/api/health", auth=AUTH)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1  # no oracle while blocked
        assert r.json()["code"] == "too_many_attempts"


def test_concurrent_guesses_cannot_slip_through(guarded):
    with client_from("127.0.0.3") as c, ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda i: c.get(guarded.url + "/api/health", auth=("ana", f"g{i}")).status_code, range(64)))
    assert 5 <= codes.count(401) <= 6 and codes.count(401) + codes.count(429) == 64


def test_gradio_login_is_throttled_and_recovers(guarded):
    with client_from("127.0.0.4") as c:
        codes = [c.post(guarded.url + "/login", data={"username": "ana", "password": f"g{i}"}).status_code for i in range(40)]
        assert 5 <= codes.count(400) <= 6 and codes.count(400) + codes.count(429) == 40
        right = dict(zip(("username", "password"), AUTH))
        r = c.post(guarded.url + "/login", data=right)
        assert r.status_code == 429 and r.json()["code"] == "too_many_attempts"
        time.sleep(int(r.headers["retry-after"]) + 0.05)
        assert c.post(guarded.url + "/login", data=right).status_code == 200
        assert c.get(guarded.url + "/api/health", auth=("ana", "wrong")).status_code == 401  # forgotten after success


def test_other_clients_are_not_slowed(guarded):
    with client_from("127.0.0.5") as c:
        assert c.get(guarded.url + "/api/health", auth=AUTH).status_code == 200
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False" and guarded.demo.analytics_enabled is False


def test_metrics_pass_the_login_and_the_host_check(guarded):
    """/metrics is behind the REST routes' login and the guard, like every other route."""
    assert httpx.get(guarded.url + "/metrics").status_code == 401
    assert httpx.get(guarded.url + "/metrics", headers={"Host": "evil.example"}, auth=AUTH).status_code == 421
    answer = httpx.get(guarded.url + "/metrics", auth=AUTH)
    assert answer.status_code == 200 and 'emotion_app_requests_total{method="GET",route="/metrics",status="401"}' in answer.text
