"""What one request costs in memory beyond the loaded model, by kind and by the audio's length:
the figures behind emotion_app/memory.py's COSTS (the server's memory budget, --max-memory-gb).

    python bench/bench_memory.py [--model DIR] [--minutes 2,10] [--kinds clip,frames,recording,channels,diarize]

Each (kind, length) runs `service.analyze` in a fresh process: the model (and CAM++ for diarize)
loaded and warmed up on a 20 s input of the same kind, then the peak RSS reset
(/proc/self/clear_refs) and the request run; the figure is the peak over the RSS before it. The
slope between two lengths is the cost per minute of audio; what is left at length 0 is the fixed
part. Inputs: a speech-like signal in 3 s bursts with 1 s pauses (so the VAD finds segments), mono;
stereo with the bursts alternating between the channels for `channels`. Without --model a tiny
random checkpoint is built (its fixed part is small: a model's activations grow with its size; the
per-minute part is the audio's buffers, results and windows, which do not). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from audio_files import speechlike, write_audio  # noqa: E402

FIELDS = {
    "clip": {},
    "frames": {"granularity": "frame"},
    "recording": {"segment": "vad"},
    "channels": {"speakers": "channels"},
    "diarize": {"speakers": "2"},
}

WORKER = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])

def status(key):
    return next(int(x.split()[1]) / 1024 for x in open('/proc/self/status') if x.startswith(key + ':'))

from emotion_app import Engine
from emotion_app.request import RequestOptions
from emotion_app.service import analyze

model, campplus, warm, path, fields, out = sys.argv[2:8]
engine = Engine(model=model, speaker_model=campplus)
request = RequestOptions.from_fields(json.loads(fields), charts=False)
analyze(engine, warm, request, outputs_dir=Path(out))  # the model, CAM++ and the VAD loaded and run once
before = status('VmRSS')
with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')  # the peak RSS starts again from the current RSS
analyze(engine, path, request, outputs_dir=Path(out))
print(json.dumps({"before_mb": before, "peak_mb": status('VmHWM')}))
"""


def bursts(seconds: float, channels: int) -> np.ndarray:
    """(channels, n) speech-like bursts of 3 s with 1 s pauses; with 2 channels they alternate."""
    x = speechlike(seconds)
    n = len(x)
    out = np.zeros((channels, n), np.float32)
    for k, a in enumerate(range(0, n, 4 * 16000)):
        out[k % channels, a : a + 3 * 16000] = x[a : a + 3 * 16000]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: a tiny random one)")
    parser.add_argument("--minutes", default="2,10")
    parser.add_argument("--kinds", default=",".join(FIELDS))
    args = parser.parse_args()
    minutes = [float(m) for m in args.minutes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        tmp = Path(tmp)
        from emotion_app.tools.random_campplus import build_random_campplus
        from emotion_app.tools.random_checkpoint import build_random_checkpoint

        model = args.model or str(build_random_checkpoint(tmp / "tiny", preset="tiny"))
        campplus = str(build_random_campplus(tmp / "campplus", seed=0))
        rows = []
        for kind in args.kinds.split(","):
            channels = 2 if kind == "channels" else 1
            warm = write_audio(tmp / f"warm_{kind}.flac", bursts(20, channels), 16000, "flac")
            peaks = []
            for m in minutes:
                path = write_audio(tmp / f"{kind}_{m:g}.flac", bursts(m * 60, channels), 16000, "flac")
                argv = [sys.executable, "-c", WORKER, str(ROOT), model, campplus, str(warm), str(path)]
                argv += [json.dumps(FIELDS[kind]), str(tmp / "outputs")]
                done = subprocess.run(argv, capture_output=True, text=True, check=True)
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                peaks.append(figures["peak_mb"] - figures["before_mb"])
                print(f"{kind} {m:g} min: {peaks[-1]:.0f} MB over {figures['before_mb']:.0f} MB", file=sys.stderr)
            slope = (peaks[-1] - peaks[0]) / (minutes[-1] - minutes[0]) if len(minutes) > 1 else float("nan")
            rows.append((kind, peaks, slope, peaks[0] - slope * minutes[0]))
    print(f"| kind | {' | '.join(f'{m:g} min' for m in minutes)} | MB per minute | fixed MB |")
    print("|---|" + "---|" * len(minutes) + "---|---|")
    for kind, peaks, slope, fixed in rows:
        print(f"| {kind} | {' | '.join(f'{p:.0f} MB' for p in peaks)} | {slope:.1f} | {fixed:.0f} |")


if __name__ == "__main__":
    main()
