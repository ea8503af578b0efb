"""An hour of mixed load on one server: does it hold its memory, its files and its answers?

    python bench/soak.py [--seconds 3600] [--model DIR] [--clients 3] [--json soak.json]

Starts a server (`web.server.launch`, as `emotion-app serve --mcp` does) in a process of its own on
127.0.0.1, with its temp folder (TMPDIR) and outputs in a folder of their own and a cap on the
outputs (`--max-outputs-mb`, swept every `--sweep-s`), and drives it with real clients:
`--clients` threads sending, in turn, REST uploads (a 4 s clip at utterance and at frame
granularity), a long recording (`--long-s`, VAD), a stereo conversation (speakers=channels), an
MCP `predict` call, and one thread of live takes over the WebSocket (/api/stream, 5 s each, sent
faster than real time). The page's Batch tab has no API and the REST API no batch route, so no
batch runs on the server (`emotion-app batch` runs its own engine).

First each kind once, one after the other: the quiet baseline of open files and temp files. Then
the mixed load; the first `--warmup` fraction of it is the warm-up, whose highest RSS is the
reference. At the end the clients stop and their work drains; then the figures: RSS after the
warm-up and at the end (growth <= 10 %), open files (/proc/PID/fd) and the server's temp files
against the baseline (font files apart: matplotlib keeps them open per drawing thread),
answers by status (0 5xx; a 503 with Retry-After is `busy`, counted apart),
the longest event-loop stall (/api/health's watchdog), and the outputs' size against the cap once
the sweeper has run. Prints a markdown table; `problems()` lists the invariants broken (the
suite's short form, tests/test_soak.py, asserts there are none).

Without --model a tiny random checkpoint is built (the figures then say little about the real
model's memory); docs/benchmarks.md's run uses checkpoints/plus_large_random
(`python -m emotion_app make-checkpoint checkpoints/plus_large_random --preset plus_large`).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from audio_files import speechlike  # noqa: E402

SERVER = r"""
import logging, sys
from pathlib import Path
from emotion_app import Engine
from emotion_app.web.server import AppSettings, launch
logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
model, outputs, port, cap_mb, sweep_s = sys.argv[1:6]
settings = AppSettings(
    port=int(port), outputs_dir=Path(outputs), mcp=True, max_outputs_gb=float(cap_mb) / 1024, sweep_interval_s=float(sweep_s),
    max_upload_mb=50,
)
launch(Engine(model=model), settings)
"""
GROWTH = 0.10  # RSS after the warm-up -> at the end
SPARE_FDS = 2  # open files over the baseline still accepted at the end (a pooled connection, a log file)
# Font files are counted apart: matplotlib keeps the fonts a chart used open per drawing thread (its
# font cache is keyed by thread, at most 64 entries), so they follow the worker threads, not the load.
FONTS = (".ttf", ".ttc", ".otf")


def wav(samples: np.ndarray) -> bytes:
    """16-bit PCM WAV of (n,) or (n, C) float samples at 16 kHz."""
    import soundfile as sf

    out = io.BytesIO()
    sf.write(out, samples, 16000, format="WAV", subtype="PCM_16")
    return out.getvalue()


def inputs(long_s: float) -> dict[str, bytes]:
    clip = speechlike(4.0)
    pause = np.zeros(16000, np.float32)
    long = np.concatenate([np.concatenate([speechlike(3.0, seed=k), pause]) for k in range(int(long_s // 4))])
    left, right = np.zeros((2, 30 * 16000), np.float32)
    for k in range(0, 28, 4):  # the two parties take turns, 3 s each
        (left if k % 8 == 0 else right)[k * 16000 : (k + 3) * 16000] = speechlike(3.0, seed=k)
    return {"clip": wav(clip), "long": wav(long), "call": wav(np.stack([left, right], axis=1))}


@dataclass
class Figures:
    statuses: Counter = field(default_factory=Counter)  # "kind status" -> count
    failures: list[str] = field(default_factory=list)  # a client error or an unexpected answer, kept to 20
    samples: list[dict] = field(default_factory=list)  # t, rss_mb, fds, temp
    base: dict = field(default_factory=dict)  # fds and temp files, quiet, before the load
    rss_warm_mb: float = 0.0
    end: dict = field(default_factory=dict)
    stall_ms: float = 0.0
    outputs_mb: float = 0.0
    cap_mb: float = 0.0
    seconds: float = 0.0
    warm_s: float = 0.0  # each kind once, before the load

    def count(self, kind: str, status: int | str, problem: str | None = None) -> None:
        self.statuses[f"{kind} {status}"] += 1
        if problem and len(self.failures) < 20:
            self.failures.append(f"{kind}: {problem}")

    @property
    def server_errors(self) -> int:
        return sum(n for key, n in self.statuses.items() if key.split()[-1].startswith("5") and not key.endswith(" 503busy"))

    def problems(self) -> list[str]:
        """The invariants this run broke (none: the server held)."""
        out = []
        growth = self.end["rss_mb"] / self.rss_warm_mb - 1
        if growth > GROWTH:
            out.append(f"RSS grew {growth:.1%} after the warm-up ({self.rss_warm_mb:.0f} -> {self.end['rss_mb']:.0f} MB)")
        if self.end["fds"] > self.base["fds"] + SPARE_FDS:
            out.append(f"open files: {self.base['fds']} before the load, {self.end['fds']} after it")
        if self.end["temp"] > self.base["temp"]:
            out.append(f"temp files left: {self.end['temp_names']}")
        if self.server_errors:
            out.append(f"{self.server_errors} 5xx answers")
        if self.failures:
            out.append(f"{len(self.failures)} failed exchanges: {self.failures[:3]}")
        if self.outputs_mb > self.cap_mb:
            out.append(f"outputs {self.outputs_mb:.1f} MB over the cap of {self.cap_mb:.1f} MB after a sweep")
        return out

    def table(self) -> str:
        growth = self.end["rss_mb"] / self.rss_warm_mb - 1
        rows = [
            ("mixed load", f"{self.seconds:.0f} s, {sum(self.statuses.values())} exchanges"),
            ("RSS after the warm-up -> at the end", f"{self.rss_warm_mb:.0f} -> {self.end['rss_mb']:.0f} MB ({growth:+.1%})"),
            ("open files before -> after the load", f"{self.base['fds']} -> {self.end['fds']}"),
            ("font files open (matplotlib, per drawing thread)", f"{self.base['fonts']} -> {self.end['fonts']}"),
            ("the server's temp files before -> after", f"{self.base['temp']} -> {self.end['temp']}"),
            ("5xx answers", str(self.server_errors)),
            ("longest event-loop stall", f"{self.stall_ms:.0f} ms"),
            ("outputs after a sweep / cap", f"{self.outputs_mb:.1f} / {self.cap_mb:.0f} MB"),
        ]
        lines = ["| figure | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)]
        lines += ["", "| exchange | answers |", "|---|---|", *(f"| {k} | {n} |" for k, n in sorted(self.statuses.items()))]
        return "\n".join(lines)


class Server:
    """The server in its own process, its temp folder and outputs in `root`."""

    def __init__(self, root: Path, model: str, cap_mb: float, sweep_s: float):
        from conftest import free_port

        self.root, self.outputs, self.tmp = root, root / "outputs", root / "tmp"
        self.tmp.mkdir(parents=True)
        self.cap_mb, self.sweep_s = cap_mb, sweep_s
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "TMPDIR": str(self.tmp), "GRADIO_TEMP_DIR": str(root / "gradio")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        self.log = open(root / "server.log", "wb")  # noqa: SIM115 - open while the server runs
        argv = [sys.executable, "-c", SERVER, model, str(self.outputs), str(port), str(cap_mb), str(sweep_s)]
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 180
        while not self._up():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("the server did not start:\n" + (root / "server.log").read_text()[-3000:])
            time.sleep(0.2)

    def _up(self) -> bool:
        import httpx

        try:
            return httpx.get(f"{self.url}/api/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def sample(self) -> dict:
        pid = self.process.pid
        status = Path(f"/proc/{pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024
        temp = sorted(os.listdir(self.tmp)) + sorted(p.name for p in self.outputs.glob(".tmp-*"))
        fds, fonts = 0, 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                font = os.readlink(f"/proc/{pid}/fd/{fd}").endswith(FONTS)
            except OSError:  # closed meanwhile
                continue
            fonts += font
            fds += not font
        return {"rss_mb": rss, "fds": fds, "fonts": fonts, "temp": len(temp), "temp_names": temp[:5]}

    def health(self) -> dict:
        import httpx

        return httpx.get(f"{self.url}/api/health", timeout=10).json()

    def outputs_mb(self) -> float:
        files = [p for p in self.outputs.glob("outputs_*/**/*") if p.is_file()]
        return sum(p.stat().st_size for p in files) / 2**20

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)
        self.log.close()


class Traffic:
    """The clients: each exchange is counted in `figures` by kind and status."""

    KINDS = ("clip", "frames", "recording", "conversation", "mcp")

    def __init__(self, server: Server, data: dict[str, bytes], figures: Figures):
        import httpx

        self.server, self.data, self.figures = server, data, figures
        self.client = httpx.Client(timeout=600)
        self.stop = threading.Event()

    def rest(self, kind: str) -> None:
        name, fields = {
            "clip": ("clip", {}),
            "frames": ("clip", {"granularity": "frame"}),
            "recording": ("long", {"segment": "vad"}),
            "conversation": ("call", {"speakers": "channels"}),
        }[kind]
        upload = {"audio": (f"{name}.wav", self.data[name])}
        answer = self.client.post(f"{self.server.url}/api/predict", files=upload, data=fields)
        self._answered(kind, answer, lambda body: "output_dir" in body and body.get("files"))

    def mcp(self) -> None:
        audio = "data:audio/wav;base64," + base64.b64encode(self.data["clip"]).decode()
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "predict", "arguments": {"audio": audio}}}
        answer = self.client.post(f"{self.server.url}/mcp", json=call, headers={"Accept": "application/json, text/event-stream"})
        self._answered("mcp", answer, lambda body: not body.get("result", {}).get("isError", True))

    def live(self, seconds: float = 5.0) -> None:
        from websockets.sync.client import connect

        pcm = (np.clip(speechlike(seconds), -1, 1) * 32767).astype("<i2").tobytes()
        url = self.server.url.replace("http://", "ws://") + "/api/stream"
        with connect(url, proxy=None, max_size=None, open_timeout=30) as ws:
            ws.send(json.dumps({"sample_rate": 16000, "channels": 1, "format": "pcm_s16le", "window_s": 2.0, "hop_s": 0.5}))
            ready = json.loads(ws.recv(30))
            if ready["event"] != "ready":
                code = ready.get("code", "refused")
                return self.figures.count("live", code, None if code == "busy" else str(ready))
            for i in range(0, len(pcm), 3200):  # 0.1 s a message, sent at about 5x real time
                ws.send(pcm[i : i + 3200])
                time.sleep(0.02)
            ws.send(json.dumps({"event": "end"}))
            while True:
                message = json.loads(ws.recv(120))
                if message["event"] == "result":
                    return self.figures.count("live", "result")
                if message["event"] == "error":
                    return self.figures.count("live", message.get("code", "error"), str(message))

    def _answered(self, kind: str, answer, complete) -> None:
        status = answer.status_code
        if status == 503 and "retry-after" in answer.headers:
            return self.figures.count(kind, "503busy")
        try:
            body = answer.json()
        except ValueError:
            return self.figures.count(kind, status, f"{status}: not JSON")
        problem = None if status == 200 and complete(body) else f"{status}: {str(body)[:200]}"
        self.figures.count(kind, status, problem)

    def once(self, kind: str) -> None:
        try:
            self.live() if kind == "live" else self.mcp() if kind == "mcp" else self.rest(kind)
        except Exception as exc:  # noqa: BLE001 - a client's failure is a figure, not the end of the run
            self.figures.count(kind, "exception", repr(exc)[:200])

    def loop(self, offset: int, kinds: tuple[str, ...]) -> None:
        k = offset
        while not self.stop.is_set():
            self.once(kinds[k % len(kinds)])
            k += 1

    def close(self) -> None:
        self.client.close()


def soak(
    server: Server, seconds: float, clients: int = 3, warmup: float = 0.25, long_s: float = 60.0, sample_s: float = 5.0
) -> Figures:
    """Drive `server` for `seconds` of mixed load (after each kind once) and measure it."""
    began = time.monotonic()
    figures = Figures(cap_mb=server.cap_mb, seconds=seconds)
    traffic = Traffic(server, inputs(long_s), figures)
    try:
        for kind in (*Traffic.KINDS, "live"):  # each kind once: the lazy loads (VAD, charts) happen here
            traffic.once(kind)
        figures.base = server.sample()
        figures.warm_s = time.monotonic() - began
        threads = [threading.Thread(target=traffic.loop, args=(i, Traffic.KINDS), daemon=True) for i in range(clients)]
        threads.append(threading.Thread(target=traffic.loop, args=(0, ("live",)), daemon=True))
        start = time.monotonic()
        for thread in threads:
            thread.start()
        while (t := time.monotonic() - start) < seconds:
            figures.samples.append({"t": round(t, 1), **server.sample()})
            if t <= warmup * seconds:
                figures.rss_warm_mb = max(figures.rss_warm_mb, figures.samples[-1]["rss_mb"])
            time.sleep(min(sample_s, max(0.05, seconds - t)))
        traffic.stop.set()
        for thread in threads:
            thread.join(900)  # each finishes the exchange it is in
    finally:
        traffic.close()
    figures.stall_ms = server.health()["event_loop"]["max_stall_ms"]
    deadline = time.monotonic() + 10  # closed connections and finished requests let go of their files
    while (end := server.sample())["fds"] > figures.base["fds"] + SPARE_FDS and time.monotonic() < deadline:
        time.sleep(0.1)
    figures.end = end
    deadline = time.monotonic() + 2 * server.sweep_s + 10  # a sweep or two
    while (size := server.outputs_mb()) > server.cap_mb and time.monotonic() < deadline:
        time.sleep(0.2)
    figures.outputs_mb = size
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3600.0, help="the mixed load's length")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: a tiny random one)")
    parser.add_argument("--clients", type=int, default=3, help="threads of REST and MCP requests (one more streams live takes)")
    parser.add_argument("--long-s", type=float, default=600.0, help="the long recording's length, s")
    parser.add_argument("--warmup", type=float, default=0.1, help="the share of the load that is the warm-up")
    parser.add_argument("--max-outputs-mb", type=float, default=200.0, help="the outputs' cap")
    parser.add_argument("--sweep-s", type=float, default=60.0, help="the sweeper's interval")
    parser.add_argument("--json", default=None, help="also write the figures (and every sample) here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak_") as tmp:
        root = Path(tmp)
        model = args.model
        if model is None:
            from emotion_app.tools.random_checkpoint import build_random_checkpoint

            model = str(build_random_checkpoint(root / "tiny", preset="tiny"))
        server = Server(root / "server", model, args.max_outputs_mb, args.sweep_s)
        try:
            figures = soak(server, args.seconds, args.clients, args.warmup, args.long_s, sample_s=min(30.0, args.seconds / 20))
        finally:
            server.close()
        problems = figures.problems()
        if problems:
            print((root / "server" / "server.log").read_text()[-5000:], file=sys.stderr)
    print(figures.table())
    print("\nheld" if not problems else "\nproblems:\n- " + "\n- ".join(problems))
    if args.json:
        Path(args.json).write_text(json.dumps({**figures.__dict__, "statuses": dict(figures.statuses)}, indent=1, default=str))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
