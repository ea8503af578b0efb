"""Does `serve --ray-serve --autoscale MIN,MAX` scale out at run time? A probe, not a timing.

    python bench/autoscale_probe.py [--autoscale 1,2] [--clients 32] [--seconds 120] [--preset tiny]

Starts `emotion-app serve --ray-serve --autoscale MIN,MAX` on 127.0.0.1 (a local Ray, bench_serve's
start and stop), sends REST predictions of a 2 s clip from `--clients` threads without pause for
up to `--seconds`, and reads /metrics every 2 s: the replicas serving (`emotion_app_model_replicas`)
and the model calls in flight. It stops the load once MAX replicas serve (or the time is up) and
prints one row per reading, then the requests answered and failed. Exit status 0 when MAX replicas
served and no request failed, 1 otherwise.

Serve decides from its own defaults (deployment.app: 8 ongoing requests per replica as the target;
Serve 2.60 waits `upscale_delay_s`, 30 s, of load over the target before it adds one), so expect
the second replica after half a minute or more, and none to go away within the run
(`downscale_delay_s` is 600 s).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from audio_files import speechlike, write_audio  # noqa: E402
from bench_serve import MODES, start_server, stop_server  # noqa: E402

READ_EVERY_S = 2.0


def metrics(url: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url + "/metrics", timeout=30).text
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--autoscale", default="1,2", help="MIN,MAX replicas")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=120.0, help="the longest the load runs")
    p.add_argument("--preset", default="tiny", help="make-checkpoint preset of the random model")
    p.add_argument("--cpus-per-replica", type=float, default=0.5)
    args = p.parse_args()
    high = int(args.autoscale.split(",")[1])

    from emotion_app import build_random_checkpoint

    work = Path(tempfile.mkdtemp(prefix="autoscale-"))
    model = build_random_checkpoint(work / "model", args.preset)
    clip = write_audio(work / "clip.wav", speechlike(2.0, 16000, seed=1), 16000).read_bytes()
    server = argparse.Namespace(
        model=model, device="cpu", dtype="fp32", cpus_per_replica=args.cpus_per_replica, gpus_per_replica=0
    )
    MODES["ray-auto"] = ["--ray-serve", "--autoscale", args.autoscale]  # bench_serve's start, with this mode's flags
    proc, url = start_server("ray-auto", server, work, work / "server.log")
    statuses: list[int] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=300) as http:
            while not stop.is_set():
                statuses.append(http.post(url + "/api/predict", files={"audio": ("clip.wav", clip)}).status_code)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
    rows, reached = [], None
    try:
        for t in threads:
            t.start()
        t0 = time.monotonic()
        for tick in itertools.count():
            time.sleep(max(0.0, t0 + tick * READ_EVERY_S - time.monotonic()))
            found = metrics(url)
            replicas = int(found.get("emotion_app_model_replicas", 0))
            rows.append(
                (time.monotonic() - t0, replicas, int(found.get("emotion_app_replica_calls_in_flight", 0)), len(statuses))
            )
            if replicas >= high and reached is None:
                reached = rows[-1][0]
            if reached is not None or time.monotonic() - t0 > args.seconds:
                break
    finally:
        stop.set()
        for t in threads:
            t.join(300)
        stop_server(proc)
    failed = sum(code != 200 for code in statuses)
    sys.stdout.write("| s | replicas | model calls in flight | requests answered |\n|---|---|---|---|\n")
    for when, replicas, in_flight, answered in rows:
        sys.stdout.write(f"| {when:.0f} | {replicas} | {in_flight} | {answered} |\n")
    sys.stdout.write(
        f"\n--autoscale {args.autoscale}, {args.clients} clients: {len(statuses)} requests, {failed} failed; "
        + (f"{high} replicas after {reached:.0f} s\n" if reached is not None else f"{high} replicas never reached\n")
    )
    sys.exit(0 if reached is not None and failed == 0 else 1)


if __name__ == "__main__":
    main()
