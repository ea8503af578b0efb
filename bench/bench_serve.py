"""Requests per second and latency of the web server, in one process and on Ray Serve.

    python bench/bench_serve.py [--preset plus_base | --model DIR] [--clients 1,8,32] [--modes ...]

For each mode it starts `emotion-app serve` on 127.0.0.1 (a free port) as a process of its own,
waits for /api/health, then for each count of concurrent clients sends `--requests` REST
predictions of a `--seconds` s clip (`--granularity`, utterance by default) after one warm-up
request per client, and stops the server (SIGINT, by its process id; SIGKILL after 60 s). Modes:
- `single-serial`: one process, each request's model call on its own (--no-cross-batch);
- `single-batched`: one process, concurrent requests' model calls merged (the default);
- `ray-1`, `ray-2`: the web front in this process, the model in 1 or 2 Ray Serve replicas on a
  local Ray (--ray-serve; the replicas batch across requests).
Prints a markdown table (requests/s, p50, p95 per mode and client count, and Ray's p50 overhead
over `single-batched` at one client) and, with --json, writes every number. `--rounds N` runs the
modes N times, interleaved. `--threads 1 --cpus-per-replica 1` gives the model one core of its own
in every mode (the other core: the front and Ray's processes), so that Ray's own cost is measured
apart from the model sharing the cores.

On a CPU the replicas share the cores the single process had, so expect little gain and an honest
look at Ray's overhead (a handle call, pickling the samples). With the tiny preset the model costs
next to nothing: the requests per second are then what one front passes through with the model
elsewhere. `bench/gpu.sh` runs the GPU counterpart (32-256 clients). Every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from audio_files import speechlike, write_audio  # noqa: E402
from conftest import free_port  # noqa: E402

MODES = {
    "single-serial": ["--no-cross-batch"],
    "single-batched": [],
    "ray-1": ["--ray-serve", "--replicas", "1"],
    "ray-2": ["--ray-serve", "--replicas", "2"],
}
START_TIMEOUT_S = 300.0


def start_server(mode: str, args, outputs: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "emotion_app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--model", str(args.model), "--device", args.device, "--dtype", args.dtype, "--outputs", str(outputs)]
    command += ["--keep-hours", "0", "--max-live-sessions", "0", "--threads", str(args.threads), *MODES[mode]]
    if mode.startswith("ray"):
        command += ["--cpus-per-replica", str(args.cpus_per_replica), "--gpus-per-replica", str(args.gpus_per_replica)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=outputs)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{mode}: the server exited ({proc.returncode}); see {log}")
        try:
            if httpx.get(url + "/api/health", timeout=5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(1)
    stop_server(proc)
    raise SystemExit(f"{mode}: the server did not answer in {START_TIMEOUT_S:.0f} s; see {log}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)  # the server stops Serve and its local Ray on the way out
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def load(url: str, clip: bytes, clients: int, requests: int, granularity: str = "utterance") -> dict:
    """`requests` predictions from `clients` threads at once: requests/s, p50, p95 (ms), failures."""

    def one(_):
        t = time.perf_counter()
        form = {"granularity": granularity}
        answer = httpx.post(url + "/api/predict", files={"audio": ("clip.wav", clip)}, data=form, timeout=600)
        return time.perf_counter() - t, answer.status_code

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(clients)))  # warm-up: one each
        t0 = time.perf_counter()
        done = list(pool.map(one, range(requests)))
        wall = time.perf_counter() - t0
    times = sorted(s for s, _ in done)
    return {
        "mean_ms": statistics.fmean(times) * 1000,
        "clients": clients,
        "requests": requests,
        "rps": requests / wall,
        "p50_ms": statistics.median(times) * 1000,
        "p95_ms": times[min(len(times) - 1, int(0.95 * len(times)))] * 1000,
        "failed": sum(code != 200 for _, code in done),
    }


COUNTERS = (  # from /metrics: requests' model calls, model calls, seconds in model calls
    "emotion_app_batch_requests_sum",
    "emotion_app_batch_requests_count",
    "emotion_app_model_seconds_sum",
)


def counters(url: str) -> tuple[float, ...]:
    """COUNTERS so far, from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url + "/metrics", timeout=30).text
    found = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    return tuple(found.get(name, 0.0) for name in COUNTERS)


def print_overhead(rows: list[dict], run: int, clients: int, rounds: int) -> None:
    """Ray Serve's overhead over `single-batched` in round `run`, at `clients` concurrent clients."""
    one = {r["mode"]: r for r in rows if r["clients"] == clients and r["round"] == run}
    if "single-batched" not in one:
        return
    base = one["single-batched"]
    for mode in ("ray-1", "ray-2"):
        if mode in one:
            r = one[mode]
            # The mean's change split in two: the model call itself (slower where the replica shares
            # the cores with the front and Ray's own processes) and everything around it (Ray's cost).
            model = (r["model_ms"] or 0) - (base["model_ms"] or 0)
            print(
                f"\nRay Serve's overhead at {clients} client(s), {mode}{f', round {run + 1}' if rounds > 1 else ''}: "
                f"p50 {r['p50_ms'] - base['p50_ms']:+.0f} ms, mean {r['mean_ms'] - base['mean_ms']:+.0f} ms "
                f"= model call {model:+.0f} ms + around it {r['mean_ms'] - base['mean_ms'] - model:+.0f} ms"
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="a model folder (default: the --preset random checkpoint, built if missing)")
    p.add_argument("--preset", default="plus_base", help="make-checkpoint preset for the default model: tiny ... plus_large")
    p.add_argument("--clients", default="1,8,32", help="counts of concurrent clients")
    p.add_argument("--requests", type=int, default=0, help="requests per count (0: 4 x clients, at least 32)")
    p.add_argument("--seconds", type=float, default=3.0, help="the clip's length")
    p.add_argument("--granularity", choices=["utterance", "frame"], default="utterance", help="frame: frames.csv, timeline.png")
    p.add_argument("--modes", default=",".join(MODES), help=f"some of {', '.join(MODES)}")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--cpus-per-replica", type=float, default=1.0)
    p.add_argument(
        "--threads", type=int, default=0,
        help="the model's threads in every mode (0: the single process one per core, a replica its CPUs); "
        "1 with --cpus-per-replica 1 gives the model a core of its own in both modes",
    )  # fmt: skip
    p.add_argument("--gpus-per-replica", type=float, default=0.0)
    p.add_argument("--rounds", type=int, default=1, help="run the modes this many times, interleaved (the host's speed drifts)")
    p.add_argument("--json", type=Path, help="write every number here")
    args = p.parse_args()
    if args.model is None:
        args.model = ROOT / "checkpoints" / f"{args.preset}_random"
        if not (args.model / "model.pt").is_file():
            subprocess.run([sys.executable, "-m", "emotion_app", "make-checkpoint", str(args.model), "--preset", args.preset],
                           check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)  # fmt: skip
    args.model = args.model.resolve()
    counts = [int(n) for n in args.clients.split(",")]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise SystemExit(f"unknown modes {unknown}; choose from {', '.join(MODES)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_serve_") as tmp:
        clip = write_audio(Path(tmp) / "clip.wav", speechlike(args.seconds, 16000), 16000).read_bytes()
        for run, mode in ((run, mode) for run in range(args.rounds) for mode in modes):
            outputs = Path(tmp) / f"{mode}-{run}"
            outputs.mkdir()
            proc, url = start_server(mode, args, outputs, Path(tmp) / f"{mode}-{run}.log")
            try:
                for clients in counts:
                    before = counters(url)
                    measured = load(url, clip, clients, args.requests or max(32, 4 * clients), args.granularity)
                    row = {"mode": mode, "round": run, **measured}
                    calls, batches, model_s = (a - b for a, b in zip(counters(url), before))
                    row["mean_batch"] = calls / batches if batches else None  # warm-up requests included
                    row["model_ms"] = model_s / batches * 1000 if batches else None  # per model call, as the replica timed it
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
            finally:
                stop_server(proc)
    threads = f"{args.threads} model thread(s)" if args.threads else "model threads by default"
    setup = f"{args.device} ({args.dtype}, {threads}), a {args.seconds:g} s clip ({args.granularity}), {os.cpu_count()} CPUs"
    print(f"\nModel {args.model.name} on {setup}\n")
    print("| mode | clients | requests/s | p50 | p95 | requests per model call | model call | failed |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        batch = f"{r['mean_batch']:.1f}" if r["mean_batch"] else "-"
        model = f"{r['model_ms']:.0f} ms" if r["model_ms"] else "-"
        latency = f"{r['p50_ms']:.0f} ms | {r['p95_ms']:.0f} ms"
        mode = f"{r['mode']} (round {r['round'] + 1})" if args.rounds > 1 else r["mode"]
        print(f"| {mode} | {r['clients']} | {r['rps']:.1f} | {latency} | {batch} | {model} | {r['failed']} |")
    for run in range(args.rounds):
        print_overhead(rows, run, min(counts), args.rounds)
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "device": args.device, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
