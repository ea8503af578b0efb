"""Ray benchmark: the local batch against `batch --ray` with 1 and 2 actors, on one machine.

    python bench/bench_ray.py [--model DIR] [--clips 200] [--recordings 60] [--recording-files 6]
                              [--cpu-actors 1:2,2:1] [--device cuda --gpu-actors 1:1,2:0.5,4:0.25]

Sets (written into a temporary folder, as bench_batch.py writes them): `--clips` WAV clips of 1-30 s,
and `--recordings` minutes of spoken conversation (espeak-ng sentences with pauses) as
`--recording-files` FLAC files, run with `--segment vad`. Every scenario is the real command in a
fresh process (`python -m emotion_app batch ...`), timed from start to exit, so Ray's start-up and
each actor's model load count against it. Rows: local batch, then `--ray` per ACTORS:CPUS (CPU)
or ACTORS:GPUS (GPU: fp16 on both sides) per actor; overhead = Ray's wall time / local's - 1;
max |dp|: the largest probability difference from the local records (same files, same order).

Scaling inputs, measured in-process on one CPU thread (ray_stages.decode_rows, exactly the decode
stage): hours of audio decoded (and VAD-scanned and cut, for recordings) per CPU-hour, and the bytes
read per hour of audio. With the scoring rate per actor or GPU they give the decode CPUs each GPU
needs and the storage throughput per GPU (docs/benchmarks.md, "How it scales").
DIR defaults to checkpoints/plus_large_random (built if missing, 1.95 GB like the real file).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from bench_batch import write_clips, write_recording  # noqa: E402

SUMMARY = re.compile(r"(\d+) done, (\d+) failed.*?\n([\d.]+) s of audio \(([\d.]+) h\) in ([\d.]+) s", re.S)


def run_batch(data: Path, out: Path, args, extra: list[str], segment: bool) -> dict:
    """One `batch` command in a fresh process: wall time from start to exit, and its summary."""
    cmd = [sys.executable, "-m", "emotion_app", "batch", str(data), "--model", args.model, "--out", str(out)]
    cmd += ["--format", "jsonl", "--overwrite", *extra] + (["--segment", "vad"] if segment else [])
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t
    m = SUMMARY.search(proc.stderr)
    if proc.returncode not in (0, 1) or m is None:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:200]}
    return {"wall_s": wall, "done": int(m[1]), "failed": int(m[2]), "audio_s": float(m[3]), "out": out / "results.jsonl"}


def max_diff(a: Path, b: Path) -> float | str:
    """Largest |p_a - p_b| over the files' probabilities (and their segments'); 'files differ' if the
    two tables do not hold the same files in the same order."""
    ra = [json.loads(line) for line in a.read_text().splitlines()]
    rb = [json.loads(line) for line in b.read_text().splitlines()]
    if [r["file"] for r in ra] != [r["file"] for r in rb]:
        return "files differ"
    diff = 0.0
    for x, y in zip(ra, rb):
        for px, py in [(x, y), *zip(x.get("segments", []), y.get("segments", []))]:
            for k, v in (px.get("probabilities") or {}).items():
                diff = max(diff, abs(v - py["probabilities"][k]))
    return diff


def decode_rate(data: str, segment: bool) -> dict:
    """The decode stage alone on one thread: CPU seconds and bytes per second of audio."""
    import torch

    from emotion_app.audio.segmenter import SegmentOptions
    from emotion_app.batch.ray_stages import DecodeConfig, collect_rows, decode_rows

    torch.set_num_threads(1)
    rows = collect_rows([data])
    config = DecodeConfig(SegmentOptions("vad") if segment else None, 4 * 3600.0)
    batch = {k: [r[k] for r in rows] for k in rows[0]}
    t, audio_s = time.process_time(), 0.0
    for out in decode_rows(batch, config):
        meta = json.loads(out["meta"][0])
        audio_s += meta.get("total", 0) / 16000
    cpu = time.process_time() - t
    size = sum(Path(r["path"]).stat().st_size for r in rows)
    return {"audio_s": audio_s, "cpu_s": cpu, "bytes": size}


def spawn_decode_rate(data: Path, segment: bool) -> dict:
    cmd = [sys.executable, __file__, "--decode-worker", str(data)] + (["--segment"] if segment else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def scenarios(args) -> list[tuple[str, list[str]]]:
    """(label, extra flags): local, then each --ray shape."""
    cuda = args.device == "cuda"
    base = ["--device", "cuda", "--dtype", "fp16"] if cuda else ["--device", "cpu"]
    out = [("local batch", base)]
    for shape in (args.gpu_actors if cuda else args.cpu_actors).split(","):
        actors, per = shape.split(":")
        flag = "--gpus-per-actor" if cuda else "--cpus-per-actor"
        extra = ["--ray", "--actors", actors, flag, per, "--cpus-per-decoder", str(args.cpus_per_decoder)]
        extra += ["--dtype", "fp16"] if cuda else []
        out.append((f"--ray, {actors} actor(s) x {per} {'GPU' if cuda else 'CPU'}", extra))
    return out


def bench_set(name: str, data: Path, segment: bool, args, tmp: Path) -> list[str]:
    rows, local = [], None
    for label, extra in scenarios(args):
        r = run_batch(data, tmp / f"out_{name}_{len(rows)}", args, extra, segment)
        if "error" in r:
            rows.append(f"| {name} | {label} | error: {r['error']} | | | | |")
            continue
        local = local or r
        speed = r["audio_s"] / r["wall_s"]
        overhead = "-" if r is local else f"{r['wall_s'] / local['wall_s'] - 1:+.1%}"
        diff = "-" if r is local else max_diff(local["out"], r["out"])
        diff = diff if isinstance(diff, str) else f"{diff:.1e}"
        rows.append(
            f"| {name} | {label} | {r['wall_s']:.1f} s | {r['audio_s'] / 3600:.2f} h | {speed:.1f} | {overhead} | {diff} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / "checkpoints" / "plus_large_random"))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--recordings", type=float, default=60.0, help="minutes of recordings in all (0: none)")
    parser.add_argument("--recording-files", type=int, default=6)
    parser.add_argument("--cpu-actors", default="1:2,2:1", help="ACTORS:CPUS_PER_ACTOR, comma-separated")
    parser.add_argument("--gpu-actors", default="1:1,2:0.5,4:0.25", help="ACTORS:GPUS_PER_ACTOR, comma-separated")
    parser.add_argument("--cpus-per-decoder", type=float, default=1.0)
    parser.add_argument("--decode-worker", metavar="DATA")
    parser.add_argument("--segment", action="store_true")
    args = parser.parse_args()
    if args.decode_worker:
        print(json.dumps(decode_rate(args.decode_worker, args.segment)))
        return
    if not (Path(args.model) / "model.pt").exists():
        from emotion_app.tools.random_checkpoint import build_random_checkpoint

        build_random_checkpoint(Path(args.model), "plus_large", training_state=True)
    table, rates = [], {}
    with tempfile.TemporaryDirectory(prefix="bench_ray_") as tmp:
        tmp = Path(tmp)
        sets = []
        if args.clips:
            (tmp / "clips").mkdir()
            write_clips(tmp / "clips", args.clips)
            sets.append((f"{args.clips} clips of 1-30 s", tmp / "clips", False))
        if args.recordings:
            (tmp / "recs").mkdir()
            minutes = args.recordings / args.recording_files
            for i in range(args.recording_files):
                write_recording(tmp / "recs" / f"rec{i}.flac", minutes)
            sets.append((f"{args.recordings:g} min of recordings ({args.recording_files} files), VAD", tmp / "recs", True))
        for name, data, segment in sets:
            table += bench_set(name, data, segment, args, tmp)
            rates[name] = spawn_decode_rate(data, segment)

    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, device {args.device}")
    print(f"Model: {args.model}\n")
    print("| set | run | wall (start to exit) | audio | h of audio per h | overhead vs local | max \\|dp\\| vs local |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(table))
    print("\nScaling inputs (decode stage on 1 CPU thread):\n")
    print("| set | h of audio decoded per CPU-hour | MB read per h of audio |")
    print("|---|---|---|")
    for name, r in rates.items():
        if "error" in r:
            print(f"| {name} | error: {r['error']} | |")
        else:
            print(f"| {name} | {r['audio_s'] / max(r['cpu_s'], 1e-9):.0f} | {r['bytes'] / 1e6 / (r['audio_s'] / 3600):.0f} |")


if __name__ == "__main__":
    main()
