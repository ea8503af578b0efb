"""Ray Serve's own cost per model call, without HTTP: the front's handle call against the same call
in this process.

    python bench/bench_handle.py [--preset tiny] [--seconds 3] [--calls 50] [--threads 1]

Starts the Serve application on a local Ray on 127.0.0.1 (scale/cluster.start_model, one replica
with `--threads` torch threads and as many CPUs), and an engine in this process with as many
threads, both on the `--preset` random checkpoint. Times, one call at a time (min and median of
`--calls`): a trivial handle call (`info`, the round trip alone), the model call of a `--seconds`
clip through the handle (what RemoteBackend.run_chunks sends: the samples there, the ChunkOutputs
back, Serve's batch wait of 2 ms) and the same model call in this process. The difference of the
last two is what Ray adds to a request with the model elsewhere. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(call, calls: int) -> tuple[float, float]:
    """(min, median) ms of `calls` calls of `call`, after 5 untimed ones."""
    for _ in range(5):
        call()
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1000)
    return min(times), statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny", help="make-checkpoint preset of the random model")
    p.add_argument("--seconds", type=float, default=3.0, help="the clip of each model call")
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the replica and of the local engine")
    args = p.parse_args()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on 127.0.0.1 (batch/ray_pipeline.py)

    from emotion_app import Engine, build_random_checkpoint
    from emotion_app.scale.cluster import ServeOptions, start_model

    model = build_random_checkpoint(Path(tempfile.mkdtemp(prefix="handle-")) / "model", args.preset)
    clip = (0.1 * np.random.default_rng(0).standard_normal(int(args.seconds * 16000))).astype(np.float32)
    options = {"model": str(model), "threads": args.threads}
    serve = ServeOptions(replicas=1, cpus_per_replica=args.threads)
    with start_model(options, serve, num_cpus=(os.cpu_count() or 1)) as remote:
        handle = remote.backend.handle
        rows = [
            ("handle call, nothing to do (`info`)", timed(lambda: handle.info.remote().result(), args.calls)),
            (
                f"model call through the handle, {args.seconds:g} s clip",
                timed(lambda: remote.backend.run_chunks([clip]), args.calls),
            ),
        ]
    local = Engine(model=str(model), device="cpu", threads=args.threads)
    rows.append(
        (f"model call in this process, {args.seconds:g} s clip", timed(lambda: local.backend.run_chunks([clip]), args.calls))
    )
    sys.stdout.write(f"| {args.preset}, {args.threads} thread(s), {args.calls} calls | min | median |\n|---|---|---|\n")
    for name, (low, mid) in rows:
        sys.stdout.write(f"| {name} | {low:.1f} ms | {mid:.1f} ms |\n")
    added = rows[1][1][1] - rows[2][1][1]
    sys.stdout.write(f"\nRay adds {added:.1f} ms per model call (medians)\n")


if __name__ == "__main__":
    main()
