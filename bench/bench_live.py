"""Live benchmark: mic-to-meter latency of /api/stream for 1, 4 and 16 concurrent sessions, and
what happens past capacity (takes refused as busy, hops stretched, every admitted take's result).

    python bench/bench_live.py [--model DIR] [--modes torch-fp32,torch-bf16,onnx-fp32]
                               [--configs 3/0.5,3/1,2/1] [--sessions 1,2,4,6,8,12,16] [--seconds 20]
                               [--max-live-sessions N] [--frame-s 0.05]

For each mode (bench_fast.MODES) it starts `app.py` on 127.0.0.1 with the full-size layout (DIR
defaults to checkpoints/plus_large_random, built if missing; onnx-fp32 exports it once to
DIR_onnx), and for each window/hop configuration and each session count it runs that many
WebSocket clients at once, each streaming `--seconds` of a speech-like signal at real time
(48 kHz s16 mono, 50 ms frames, starts spread over one hop, as people do not start in step).

Mic-to-meter latency of a hop = the arrival of its message at the client minus the moment its
last sample was "captured": a client sends the frame holding audio time t at t0 + t (t0: when its
audio time 0 was captured), so latency = arrival - (t0 + t_end). It includes the frame's own
buffering (the hop ends on a frame edge, so none), the network (loopback), the server's
resampling, the wait for the model (the fair batching) and the model call. The first two hops of
each session (warm-up) and the hop after the end (the resampler's tail) are left out. The clients
keep the `websockets` library's default keepalive (a ping every 20 s, 20 s to answer), as a user's
client does: a server that stops reading a socket loses that take (close 1011). Each row counts the
takes admitted and refused (busy), the admitted takes that got their result, the close codes, and
the mean hop in force (the server stretches hops past its capacity). A configuration "holds" N
sessions when every take was admitted and got its result, every hop came at the asked hop, and the
p95 stays under 1 s.

The clients run on the same machine as the server (a few percent of one core for 16 clients).
Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from audio_files import speechlike  # noqa: E402
from bench_fast import MODES, prepare  # noqa: E402
from conftest import free_port  # noqa: E402

RATE = 48_000  # Hz sent by the clients, as browsers capture
FRAME_S = 0.05  # s of audio per message (--frame-s)
WARMUP_HOPS = 2
TARGET_P95_S = 1.0


@dataclass
class SessionResult:
    latencies: list[float] = field(default_factory=list)  # s, one per measured hop
    hop_s: list[float] = field(default_factory=list)  # the hop in force of each hop message
    hops: int = 0
    expected: int = 0
    error: str | None = None
    admitted: bool = False
    result: bool = False  # the take's analysis arrived
    close: int | None = None  # the close code the client saw


async def one_session(url: str, audio: bytes, seconds: float, window_s: float, hop_s: float, delay_s: float) -> SessionResult:
    """Stream `audio` (s16 at RATE) at real time after `delay_s`; time each hop's message."""
    from websockets.asyncio.client import connect

    out = SessionResult(expected=int(round(seconds / hop_s)))
    await asyncio.sleep(delay_s)
    try:
        return await _stream(connect, url, audio, seconds, window_s, hop_s, out)
    except (OSError, asyncio.TimeoutError, Exception) as exc:  # an overloaded server drops connections
        out.error = f"connection: {type(exc).__name__}"
        out.close = getattr(getattr(exc, "rcvd", None), "code", out.close)
        return out


async def _stream(connect, url, audio, seconds, window_s, hop_s, out: SessionResult) -> SessionResult:
    loop = asyncio.get_running_loop()
    async with connect(url, proxy=None, max_size=None) as ws:  # the library's default keepalive pings
        await ws.send(json.dumps({"sample_rate": RATE, "window_s": window_s, "hop_s": hop_s}))
        ready = json.loads(await ws.recv())
        if ready["event"] != "ready":
            out.error = ready.get("code")
            await ws.wait_closed()
            out.close = ws.close_code
            return out
        out.admitted = True
        t0 = loop.time()  # audio time 0 is captured now; frame k ends at t0 + (k + 1) * FRAME_S
        receiver = asyncio.create_task(receive(ws, out, t0, seconds))
        step = int(RATE * FRAME_S) * 2
        for k, i in enumerate(range(0, len(audio), step)):
            await asyncio.sleep(max(0.0, t0 + (k + 1) * FRAME_S - loop.time()))
            await ws.send(audio[i : i + step])
        await ws.send(json.dumps({"event": "end"}))
        await receiver
        await ws.wait_closed()
        out.close = ws.close_code
    return out


async def receive(ws, out: SessionResult, t0: float, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    async for text in ws:
        arrived = loop.time()
        m = json.loads(text)
        if m["event"] == "hop":
            out.hops += 1
            out.hop_s.append(m.get("hop_s", 0.0))
            if m["hop"] >= WARMUP_HOPS and m["t_end"] <= seconds - FRAME_S / 2:
                out.latencies.append(arrived - (t0 + m["t_end"]))
        elif m["event"] == "error":
            out.error = m["code"]
        elif m["event"] == "result":
            out.result = True
            return


async def run_sessions(url: str, n: int, seconds: float, window_s: float, hop_s: float) -> list[SessionResult]:
    audio = [(np.clip(speechlike(seconds, RATE, seed=k), -1, 1) * 32767).astype("<i2").tobytes() for k in range(n)]
    tasks = [one_session(url, audio[k], seconds, window_s, hop_s, hop_s * k / n) for k in range(n)]
    return list(await asyncio.gather(*tasks))


def summary(results: list[SessionResult]) -> dict:
    lat = np.array([x for r in results for x in r.latencies]) * 1000
    admitted = [r for r in results if r.admitted]
    hops, expected = sum(r.hops for r in admitted), sum(r.expected for r in admitted)
    errors = sorted({r.error for r in results if r.error and r.error != "busy"})
    hop_s = [h for r in admitted for h in r.hop_s[:-1]]  # the last: the take's tail
    row = {"hops": hops, "expected": expected, "errors": errors, "n": len(lat), "admitted": len(admitted)}
    row |= {"refused": sum(r.error == "busy" for r in results), "results": sum(r.result for r in admitted)}
    row |= {"closes": sorted({r.close for r in results if r.close is not None} - {1000}), "hop_s": float(np.mean(hop_s or [0]))}
    if len(lat):
        row |= {"median": float(np.median(lat)), "p95": float(np.percentile(lat, 95)), "max": float(lat.max())}
    every = row["admitted"] == len(results) == row["results"] and hops >= expected
    row["holds"] = bool(len(lat)) and not errors and every and row["p95"] <= TARGET_P95_S * 1000
    return row


def start_server(
    folder: str, backend: str, dtype: str, max_sessions: int, outputs: Path, log: Path
) -> tuple[subprocess.Popen, str, dict]:
    """The server, its log written to `log` (a file, never an unread pipe that could fill and stall it)."""
    import httpx

    port = free_port()
    cmd = [sys.executable, "app.py", "--port", str(port), "--outputs", str(outputs), "--model", folder]
    cmd += ["--backend", backend, "--dtype", dtype, "--max-live-sessions", str(max_sessions), "--keep-hours", "1"]
    with log.open("wb") as sink:
        server = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(log.read_text(errors="replace")[-2000:])
        try:
            health = httpx.get(url + "/api/health", timeout=2)
            if health.status_code == 200:
                return server, url.replace("http://", "ws://") + "/api/stream", health.json()["live"]
            if health.status_code == 503:
                server.terminate()
                raise RuntimeError(health.json().get("error", "model not loaded"))
        except httpx.TransportError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError("the server did not start within 5 minutes")


def bench_mode(mode: str, folder: str, configs, sessions: list[int], seconds: float, max_sessions: int | None) -> list[dict]:
    backend, dtype = MODES[mode]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_live_") as tmp:
        try:
            log = Path(tmp) / "server.log"
            server, url, live = start_server(folder, backend, dtype, max_sessions or max(sessions), Path(tmp) / "outputs", log)
            print(f"{mode}: capacity {live['capacity']}, {live['cost_ms_per_s']} model ms per s of window", file=sys.stderr)
        except RuntimeError as exc:
            print(f"{mode}: not run: {exc}", file=sys.stderr)
            return [{"mode": mode, "skipped": str(exc).strip().splitlines()[-1][:120]}]
        try:
            asyncio.run(run_sessions(url, 1, 3.0, 3.0, 0.5))  # warm-up: first model calls, thread pools
            seen = show_meter_log(log, 0)
            for window_s, hop_s in configs:
                for n in sessions:
                    row = summary(asyncio.run(run_sessions(url, n, seconds, window_s, hop_s)))
                    rows.append({"mode": mode, "window_s": window_s, "asked_hop_s": hop_s, "sessions": n, **row})
                    print(format_row(rows[-1]), file=sys.stderr, flush=True)
                    seen = show_meter_log(log, seen)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return rows


def show_meter_log(log: Path, seen: int) -> int:
    """Print the server's log lines about the live meter (hops stretched, takes refused) written
    since line `seen`; returns the lines read so far."""
    lines = log.read_text(errors="replace").splitlines()
    for line in lines[seen:]:
        if "live meter" in line or "refused" in line:
            print("  server:", line.strip()[-200:], file=sys.stderr)
    return len(lines)


def format_row(r: dict) -> str:
    if "skipped" in r:
        return f"| {r['mode']} | - | - | not run: {r['skipped']} | | | | | | |"
    lat = f"{r['median'] / 1000:.2f} s | {r['p95'] / 1000:.2f} s | {r['max'] / 1000:.2f} s" if "median" in r else "- | - | -"
    errors = f" ({', '.join(r['errors'])})" if r["errors"] else ""
    closes = ", ".join(map(str, r["closes"])) or "-"
    cost = r["window_s"] / r["asked_hop_s"]
    return (
        f"| {r['mode']} | {r['window_s']:g} s / {r['asked_hop_s']:g} s ({cost:g}x) | {r['sessions']} | {r['admitted']} "
        f"| {r['results']} of {r['admitted']}{errors} | {lat} | {r['hop_s']:.2f} s | {closes} | {'yes' if r['holds'] else 'no'} |"
    )


def main() -> None:
    global FRAME_S
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "checkpoints" / "plus_large_random"))
    p.add_argument("--modes", default="torch-fp32,torch-bf16,onnx-fp32", help=f"of {', '.join(MODES)}")
    p.add_argument("--configs", default="3/0.5,3/1,2/1", help="window_s/hop_s pairs")
    p.add_argument("--sessions", default="1,2,4,6,8,12,16", help="concurrent session counts")
    p.add_argument("--seconds", type=float, default=20.0, help="audio per session")
    p.add_argument("--max-live-sessions", type=int, help="the server's limit (default: the largest session count)")
    p.add_argument("--frame-s", type=float, default=FRAME_S, help="s of audio per message")
    args = p.parse_args()
    FRAME_S = args.frame_s
    modes = [m for m in args.modes.split(",") if m]
    configs = [tuple(float(x) for x in c.split("/")) for c in args.configs.split(",")]
    sessions = [int(n) for n in args.sessions.split(",")]
    folders = prepare(Path(args.model), modes)
    limit = args.max_live_sessions
    rows = [row for mode in modes for row in bench_mode(mode, folders[mode], configs, sessions, args.seconds, limit)]
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; model {args.model}; ", end="")
    print(f"{args.seconds:g} s of audio per session at real time, {RATE} Hz s16 in {FRAME_S * 1000:.0f} ms frames\n")
    print(
        "| mode | window / hop (audio scored per s) | takes | admitted (rest: busy) | results | p50 delay | p95 delay "
        "| max delay | mean hop in force | closes other than 1000 | holds (p95 <= 1 s, every hop) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(format_row(row))
    print("\nMost sessions held (p95 <= 1 s, every hop received):")
    for mode in modes:
        for window_s, hop_s in configs:
            config = (mode, window_s, hop_s)
            held = [r["sessions"] for r in rows if (r["mode"], r.get("window_s"), r.get("asked_hop_s")) == config and r["holds"]]
            print(f"- {mode}, {window_s:g} s / {hop_s:g} s: {max(held) if held else 0}")


if __name__ == "__main__":
    main()
