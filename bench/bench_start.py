"""Cold start as a user meets it: `emotion-app predict` of two clips (4 s and 10 s), process start to
exit, against FunASR 1.4.16 doing the same (AutoModel, then generate on each file) in the same run.

    python bench/bench_start.py [--model DIR] [--modes torch-fp32,onnx-fp32,...] [--runs 5] [--no-funasr]

Each run is a fresh process (the disk cache warm: one untimed run of each first). Prints, per mode,
the min and median wall time of `--runs` runs and FunASR's ratio to it, as a markdown table for
docs/benchmarks.md. The modes and their model folders are bench_fast.py's (ONNX exports made once).
FunASR gets as many threads as the machine has cores (`ncpu`), as in every benchmark here.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "tests"))

import bench_fast  # noqa: E402
from audio_files import speechlike, write_audio  # noqa: E402

CLIPS = (4.0, 10.0)  # seconds: the two files of `predict`
RUN_TIMEOUT_S = 600

FUNASR = """
import os, sys
from funasr import AutoModel
model = AutoModel(model=sys.argv[1], disable_update=True, device="cpu", disable_pbar=True, log_level="ERROR",
                  ncpu=os.cpu_count() or 1)
for path in sys.argv[2:]:
    model.generate(input=path, granularity="utterance", extract_embedding=False)
"""


def timed(command: list[str]) -> float:
    """Wall seconds of `command`, from process start to exit (SystemExit when it fails)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT_S)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=ROOT / "checkpoints" / "plus_large_random")
    p.add_argument("--modes", default="torch-fp32,torch-bf16,onnx-fp32,onnx-int8", help=f"some of {', '.join(bench_fast.MODES)}")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--no-funasr", action="store_true")
    args = p.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(bench_fast.MODES))
    if unknown:
        raise SystemExit(f"unknown modes {unknown}; choose from {', '.join(bench_fast.MODES)}")
    folders = bench_fast.prepare(args.model, modes)
    with tempfile.TemporaryDirectory(prefix="bench_start_") as tmp:
        files = [str(write_audio(Path(tmp) / f"clip{i}.wav", speechlike(s, seed=i), 16000)) for i, s in enumerate(CLIPS)]
        commands = {}
        for mode in modes:
            backend, dtype = bench_fast.MODES[mode][:2]
            flags = ["--model", folders[mode], "--device", "cpu", "--backend", backend, "--dtype", dtype]
            commands[mode] = [sys.executable, "-m", "emotion_app", "predict", *files, *flags]
        if not args.no_funasr:
            commands["FunASR 1.4.16"] = [sys.executable, "-c", FUNASR, str(args.model), *files]
        times: dict[str, list[float]] = {name: [] for name in commands}
        for command in commands.values():
            timed(command)  # untimed: the disk cache warm, a first conversion of the weights done
        for _ in range(args.runs):  # interleaved: a slow moment of the machine falls on every mode alike
            for name, command in commands.items():
                times[name].append(timed(command))
                print(f"{name}: {times[name][-1]:.2f} s", file=sys.stderr, flush=True)
    funasr = statistics.median(times["FunASR 1.4.16"]) if "FunASR 1.4.16" in times else None
    cpu = platform.processor() or platform.machine()
    print(f"\n`predict` of a {CLIPS[0]:g} s and a {CLIPS[1]:g} s clip, process start to exit; {os.cpu_count()} CPUs ({cpu}); "
          f"model {args.model.name}; {args.runs} runs each\n")  # fmt: skip
    print("| mode | min | median | FunASR's median / median |\n|---|---|---|---|")
    for name, runs in times.items():
        ratio = f"{funasr / statistics.median(runs):.1f}x" if funasr else "-"
        print(f"| {name} | {min(runs):.2f} s | {statistics.median(runs):.2f} s | {ratio} |")


if __name__ == "__main__":
    main()
