"""Batch and long-recording benchmark: ours against FunASR 1.4.16's loop in the same run.

    python bench/bench_batch.py [--model DIR] [--clips 200] [--recordings 5,60] [--device cpu|cuda]

Writes `--clips` WAV files of 1-30 s and spoken recordings (espeak-ng sentences with pauses) of the
given minutes into a temporary folder, then runs each scenario in a fresh process:
- batch: ours through the batch tool's path (files decoded, sorted by length, batched) against
  FunASR's `generate` called once per file; files per second and seconds of audio per second.
- recordings: ours with VAD segmentation (two streamed passes); wall time, segments, peak RSS.
  FunASR has no working VAD path for emotion2vec (its vad_model option crashes with it).
DIR defaults to checkpoints/plus_large_random (built if missing, 1.95 GB like the real file).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from bench_engine import fmt, peak_rss_mb  # noqa: E402

SENTENCES = [
    "Good morning, thank you for calling, how can I help you today?",
    "I have been waiting for three weeks and nobody has called me back.",
    "I am sorry to hear that, let me look into your order right now.",
    "That is great news, thank you so much for your help.",
]


def write_clips(folder: Path, n: int) -> list[Path]:
    from audio_files import speechlike, write_audio

    rng = np.random.default_rng(0)
    return [
        write_audio(folder / f"clip{i:03d}.wav", speechlike(float(d), seed=i), 16000, "wav")
        for i, d in enumerate(rng.uniform(1, 30, n))
    ]


def write_recording(path: Path, minutes: float) -> Path:
    """A spoken conversation: sentences with 0.5-2 s pauses, written block by block as FLAC."""
    import soundfile as sf
    from audio_files import espeak

    voices = [espeak(s, seed=i) for i, s in enumerate(SENTENCES)]
    rng = np.random.default_rng(1)
    total = int(minutes * 60 * 16000)
    written = 0
    with sf.SoundFile(path, "w", 16000, 1, "PCM_16", format="FLAC") as f:
        while written < total:
            block = np.concatenate([voices[rng.integers(len(voices))], np.zeros(int(rng.uniform(0.5, 2.0) * 16000), np.float32)])
            block = block[: total - written]
            f.write(block)
            written += len(block)
    return path


def worker(impl: str, scenario: str, model: str, device: str, data: str, dtype: str = "auto", backend: str = "torch") -> dict:
    out: dict = {}
    if impl == "ours":
        from emotion_app import Engine

        engine = Engine(model=model, device=device, dtype=dtype, backend=backend)
    else:
        from funasr import AutoModel

        fm = AutoModel(
            model=model, disable_update=True, device=device, disable_pbar=True, log_level="ERROR", ncpu=os.cpu_count() or 1
        )  # FunASR's default is 4 threads: on 2 cores that runs a 10 s clip in 30 s instead of 1.5 s
    if scenario == "batch":
        files = sorted(Path(data).glob("clip*.wav"))
        if impl == "ours":
            from emotion_app.batch.inputs import collect_inputs
            from emotion_app.batch.local import iter_batch
            from emotion_app.request import RequestOptions

            request = RequestOptions.from_fields({}, charts=False)
            list(iter_batch(engine, collect_inputs(files[:2]), request))  # warm-up
            t = time.perf_counter()
            results = list(iter_batch(engine, collect_inputs(files), request, group=max(8, 8 * engine.batch_size)))
            out["errors"] = sum(1 for _, r, e in results if e)
            audio = sum(r.duration_s for _, r, e in results if r)
        else:
            fm.generate(input=str(files[0]), granularity="utterance")
            t = time.perf_counter()
            for f in files:
                fm.generate(input=str(f), granularity="utterance")
            import soundfile as sf

            audio = sum(sf.info(str(f)).duration for f in files)
        wall = time.perf_counter() - t
        out.update(files=len(files), audio_s=audio, wall_s=wall, files_per_s=len(files) / wall, x_real_time=audio / wall)
    else:
        from emotion_app.analysis.build import build_report
        from emotion_app.audio.segmenter import SegmentOptions
        from emotion_app.longform import analyze_long

        t = time.perf_counter()
        res = build_report(analyze_long(engine, data, SegmentOptions("vad"))).to_json()
        out.update(
            wall_s=time.perf_counter() - t,
            audio_s=res["duration_s"],
            segments=len(res["segments"]),
            speech_s=res["summary"]["speech_s"],
        )
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def spawn(impl: str, scenario: str, data: str, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, scenario, data, "--model", args.model, "--device", args.device]
    cmd += ["--dtype", getattr(args, "dtype", "auto"), "--backend", getattr(args, "backend", "torch")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / "checkpoints" / "plus_large_random"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--recordings", default="5,60", help="minutes, comma-separated")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--backend", default="torch", help="torch, or onnx (--model: an export-onnx folder)")
    parser.add_argument("--worker", nargs=3, metavar=("IMPL", "SCENARIO", "DATA"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker[:2], args.model, args.device, args.worker[2], args.dtype, args.backend)))
        return
    if not (Path(args.model) / "model.pt").exists():
        from emotion_app.tools.random_checkpoint import build_random_checkpoint

        build_random_checkpoint(Path(args.model), "plus_large", training_state=True)
    minutes = [float(m) for m in args.recordings.split(",") if m]
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        write_clips(Path(tmp), args.clips)
        ours, theirs = spawn("ours", "batch", tmp, args), spawn("funasr", "batch", tmp, args)
        recs = {m: spawn("ours", "recording", str(write_recording(Path(tmp) / f"rec{m:g}.flac", m)), args) for m in minutes}

    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, device {args.device}")
    print(f"Model: {args.model}\n")
    print("| scenario | emotion_app | FunASR 1.4.16 | speed-up (FunASR time / ours) |")
    print("|---|---|---|---|")
    label = f"{args.clips} clips of 1-30 s ({ours.get('audio_s', 0):.0f} s of audio)"
    shown = {"wall_s": fmt, "files_per_s": lambda v: "-" if v is None else f"{v:.2f}", "x_real_time": lambda v: fmt(v, "x")}
    for key, what in (("wall_s", "wall time"), ("files_per_s", "files per second"), ("x_real_time", "s of audio per s")):
        a, b = ours.get(key), theirs.get(key)
        ratio = "-" if not (a and b) else f"{(b / a if key == 'wall_s' else a / b):.2f}x"
        print(f"| {label}: {what} | {shown[key](a)} | {shown[key](b)} | {ratio} |")
    print(f"| {label}: peak RSS | {fmt(ours.get('peak_rss_mb'), 'MB')} | {fmt(theirs.get('peak_rss_mb'), 'MB')} | |")
    for m, r in recs.items():
        note = "no VAD path for emotion2vec"
        if "error" in r:
            print(f"| {m:g}-minute recording, VAD | error: {r['error']} | {note} | |")
            continue
        speed = r["audio_s"] / r["wall_s"]
        what = f"{r['wall_s']:.1f} s ({speed:.1f}x real time), {r['segments']} segments, peak RSS {r['peak_rss_mb']:.0f} MB"
        print(f"| {m:g}-minute recording, VAD segmentation | {what} | {note} | |")
    errors = {k: v["error"] for k, v in {"ours": ours, "funasr": theirs}.items() if "error" in v}
    if errors or ours.get("errors"):
        print("\nErrors:", json.dumps(errors), ours.get("errors"))


if __name__ == "__main__":
    main()
