"""Load test and soak of the web server (REST), as hostile and as patient clients would use it.

    python bench/load_test.py [--model DIR] [--concurrent 64] [--soak 1000] [--dtype auto]

Starts `app.py` on 127.0.0.1 with the full-size layout (checkpoints/plus_large_random, built if
missing) and:
1. load: `--concurrent` requests at once, mixed: utterance and frame clips, long recordings with
   VAD, an oversize upload (over --max-upload-mb) and malformed uploads (random bytes, a truncated
   WAV). Checks: the server never dies, no 5xx, every 200 has a complete output folder (its
   result.json names the folder), every refusal is `{"error", "code"}`. Reports p50/p95 latency per
   kind and the server's peak RSS.
2. soak: `--soak` sequential 1 s utterance requests; the server's RSS after the first 50 and at the
   end (growth must stay under 10 %).
Every request goes to 127.0.0.1; the loops are bounded. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from audio_files import espeak, speechlike, write_audio  # noqa: E402
from conftest import free_port  # noqa: E402


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def make_inputs(folder: Path) -> dict[str, tuple[str, bytes, dict]]:
    talk = []
    for i in range(12):
        talk += [espeak(["Hello, how can I help?", "I waited for weeks.", "Thank you so much."][i % 3], seed=i)]
        talk += [np.zeros(12000, np.float32)]
    long = write_audio(folder / "call.flac", np.concatenate(talk * 3), 16000, "flac")  # about 2 minutes
    wav = write_audio(folder / "clip.wav", speechlike(4.0, 22050), 22050, "wav").read_bytes()
    return {
        "utterance": ("clip.wav", wav, {}),
        "frame": ("clip.wav", wav, {"granularity": "frame", "extract_embedding": "1"}),
        "recording (VAD)": ("call.flac", long.read_bytes(), {"segment": "vad"}),
        "oversize": ("big.wav", b"\0" * (3 * 1024 * 1024), {}),
        "random bytes": ("x.mp3", os.urandom(50_000), {}),
        "truncated WAV": ("t.wav", wav[: len(wav) // 3][:44] + b"\x01" * 100, {}),
    }


def request(url: str, outputs: Path, kind: str, item) -> tuple[str, int, float, str | None]:
    import httpx

    name, data, fields = item
    t = time.perf_counter()
    try:
        r = httpx.post(url + "/api/predict", files={"audio": (name, data)}, data=fields, timeout=600)
    except httpx.HTTPError as exc:
        return kind, 0, time.perf_counter() - t, f"transport: {exc}"
    wall = time.perf_counter() - t
    problem = None
    if r.status_code >= 500:
        problem = f"{r.status_code}: {r.text[:200]}"
    elif r.status_code == 200:
        folder = outputs / r.json()["output_dir"]
        if not (folder / "result.json").is_file() or not (folder / "processed_audio.wav").is_file():
            problem = f"incomplete folder {folder.name}"
    elif set(r.json()) - {"error", "code"} or not r.json().get("code"):
        problem = f"error body {r.text[:200]}"
    return kind, r.status_code, wall, problem


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / "checkpoints" / "plus_large_random"))
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--concurrent", type=int, default=64)
    parser.add_argument("--soak", type=int, default=1000)
    args = parser.parse_args()
    if not (Path(args.model) / "model.pt").exists():
        sys.path.insert(0, str(ROOT))
        from emotion_app.tools.random_checkpoint import build_random_checkpoint

        build_random_checkpoint(Path(args.model), "plus_large", training_state=True)
    with tempfile.TemporaryDirectory(prefix="load_test_") as tmp:
        tmp = Path(tmp)
        outputs, port = tmp / "outputs", free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "app.py", "--port", str(port), "--outputs", str(outputs), "--model", args.model]
        server = subprocess.Popen(cmd + ["--dtype", args.dtype, "--max-upload-mb", "2"], cwd=ROOT, stdout=subprocess.DEVNULL)
        try:
            run(server, url, outputs, tmp, args)
        finally:
            server.terminate()
            server.wait(timeout=30)


def run(server, url: str, outputs: Path, tmp: Path, args) -> None:
    import httpx

    deadline = time.time() + 300
    while time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode} before it was ready")
        try:
            if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.5)
    inputs = make_inputs(tmp)
    kinds = list(inputs)
    plan = [kinds[i % len(kinds)] for i in range(args.concurrent)]
    rss0 = rss_mb(server.pid)
    t = time.perf_counter()
    with ThreadPoolExecutor(args.concurrent) as pool:
        results = list(pool.map(lambda k: request(url, outputs, k, inputs[k]), plan))
    load_wall = time.perf_counter() - t
    alive = server.poll() is None
    peak = rss_mb(server.pid, "VmHWM")
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; model {args.model} ({args.dtype})\n")
    print(f"Load: {args.concurrent} concurrent requests in {load_wall:.1f} s; server alive after: {alive}; ", end="")
    print(f"RSS {rss0:.0f} MB before, peak {peak:.0f} MB")
    print("\n| kind | requests | status codes | p50 | p95 | problems |\n|---|---|---|---|---|---|")
    for kind in kinds:
        rows = [r for r in results if r[0] == kind]
        walls = np.array([r[2] for r in rows])
        codes = ",".join(sorted({str(r[1]) for r in rows}))
        problems = [r[3] for r in rows if r[3]]
        p50, p95 = np.percentile(walls, 50), np.percentile(walls, 95)
        print(f"| {kind} | {len(rows)} | {codes} | {p50:.2f} s | {p95:.2f} s | {len(problems)} {problems[:1] or ''} |")
    if not args.soak:
        return
    clip = write_audio(tmp / "one.wav", speechlike(1.0), 16000, "wav").read_bytes()
    first = None
    t = time.perf_counter()
    bad = 0
    with httpx.Client(base_url=url, timeout=120) as client:
        for i in range(args.soak):
            r = client.post("/api/predict", files={"audio": ("one.wav", clip)})
            bad += r.status_code != 200
            if i == 49:
                first = rss_mb(server.pid)
    end = rss_mb(server.pid)
    soak_wall = time.perf_counter() - t
    growth = (end - first) / first * 100 if first else float("nan")
    print(f"\nSoak: {args.soak} sequential 1 s requests in {soak_wall:.0f} s ({args.soak / soak_wall:.1f}/s), {bad} not 200; ")
    print(f"server RSS after 50: {first:.0f} MB, after {args.soak}: {end:.0f} MB ({growth:+.1f} %)")


if __name__ == "__main__":
    main()
