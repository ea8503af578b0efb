"""A deterministic fuzz set: byte-flipped, truncated and header-corrupted copies of real WAV, MP3,
M4A, OGG and WEBM files, through load_audio and the REST API. Every copy either decodes or raises
a coded AudioError (a 4xx over HTTP): no other exception, no 5xx, no hang, bounded memory."""

from __future__ import annotations

import resource
import signal

import httpx
import numpy as np
import pytest
from audio_files import speechlike, write_audio

from emotion_app.audio.source import load_audio
from emotion_app.errors import AudioError

FORMATS = ("wav", "mp3", "m4a", "ogg", "webm")
PER_FORMAT = 60  # 300 copies in all
PER_FILE_S = 10  # a copy that takes longer than this to decode counts as a hang


def mutations(data: bytes, rng: np.random.Generator, n: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        kind = ("flip", "truncate", "header")[i % 3]
        b = bytearray(data)
        if kind == "flip":  # a few random bytes anywhere
            for pos in rng.integers(0, len(b), size=int(rng.integers(1, 16))):
                b[pos] = int(rng.integers(0, 256))
        elif kind == "truncate":
            b = b[: int(rng.integers(1, len(b)))]
        else:  # the first 64 bytes: where the container and codec headers live
            for pos in rng.integers(0, min(64, len(b)), size=int(rng.integers(1, 6))):
                b[pos] = int(rng.integers(0, 256))
        out.append((f"{kind}{i}", bytes(b)))
    return out


@pytest.fixture(scope="module")
def fuzz_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(1234)
    cases = []
    for fmt in FORMATS:
        data = write_audio(root / f"base.{fmt}", speechlike(1.0, 16000, seed=3), 16000, fmt).read_bytes()
        cases += [(f"{fmt}-{name}", fmt, mutated) for name, mutated in mutations(data, rng, PER_FORMAT)]
    return cases


def _alarm(signum, frame):
    raise TimeoutError("decoding hung")


def test_load_audio_answers_every_copy(fuzz_set):
    old = signal.signal(signal.SIGALRM, _alarm)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcomes = {"ok": 0, "error": 0}
    try:
        for name, fmt, data in fuzz_set:
            signal.alarm(PER_FILE_S)
            try:
                audio = load_audio(data, name=f"{name}.{fmt}")
                assert audio.samples.dtype == np.float32 and np.isfinite(audio.samples).all()
                outcomes["ok"] += 1
            except AudioError as exc:
                assert exc.code and exc.message.startswith(f"{name}.{fmt}"), (name, exc.code, exc.message)
                outcomes["error"] += 1
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, old)
    assert sum(outcomes.values()) == len(fuzz_set) == 300
    assert outcomes["ok"] > 30 and outcomes["error"] > 30, outcomes  # the set exercises both outcomes
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    assert grown_mb < 200, grown_mb


def test_rest_answers_every_copy_without_a_5xx(web, fuzz_set):
    statuses = {}
    with httpx.Client(base_url=web.url, timeout=PER_FILE_S * 3) as client:
        for name, fmt, data in fuzz_set[::2]:  # 150 requests
            r = client.post("/api/predict", files={"audio": (f"{name}.{fmt}", data)})
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert r.status_code < 500, (name, r.status_code, r.text)
            body = r.json()
            assert (r.status_code == 200 and body["emotion"]) or (set(body) == {"error", "code"} and body["code"]), body
    assert statuses.get(200, 0) > 10 and sum(v for k, v in statuses.items() if 400 <= k < 500) > 10, statuses
    assert httpx.get(web.url + "/api/health").status_code == 200  # and the server keeps serving
