"""Conversations on a 2-core CPU: a stereo call in channels mode and a mono recording diarized with
CAM++, against real time; and CAM++ itself against FunASR 1.4.16's on the same windows.

    python bench/bench_conversations.py [--model DIR] [--minutes 30] [--modes torch-fp32,torch-bf16]

The call: two espeak-ng voices taking turns (tests/conversation_audio.py's lines, cycled), the
second cutting in now and then, each party on its channel with the other heard 35 dB below (bleed);
`--minutes` long, stereo FLAC at 16 kHz, and its mono mix. Each run is `service.analyze` in a fresh
process (the model loaded first and not timed; decode, VAD, CAM++, clustering, emotion scoring and
the output folder timed), with its peak RSS. The emotion model is the plus_large layout with random
weights (checkpoints/plus_large_random, built if missing), CAM++ a random checkpoint of FunASR's
layout (speed is what is measured: random weights cannot tell voices apart, so `auto` finds one
speaker; `--speakers 2` is also run). Prints markdown tables for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

WORKER = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])

def hwm():
    return next(int(x.split()[1]) // 1024 for x in open('/proc/self/status') if x.startswith('VmHWM'))

from emotion_app import Engine
from emotion_app.request import RequestOptions
from emotion_app.service import analyze

model, campplus, dtype, path, speakers, out = sys.argv[2:8]
engine = Engine(model=model, dtype=dtype, speaker_model=campplus)
if speakers not in ("channels",):
    engine.speaker_model()  # loaded before the clock starts, as the emotion model is
t0 = time.perf_counter()
a = analyze(engine, path, RequestOptions.from_fields({"speakers": speakers}, charts=False), outputs_dir=Path(out))
seconds = time.perf_counter() - t0
r = a.result
print(json.dumps({"seconds": seconds, "duration_s": r["duration_s"], "segments": len(r["segments"]),
                  "speakers": len(r["speakers"]), "rss_mb": hwm()}))
"""

CAMPPLUS_WORKER = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
which, folder, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
rng = np.random.default_rng(0)
windows = [(0.1 * rng.standard_normal(24000)).astype(np.float32) for _ in range(n)]
if which == "ours":
    import torch
    torch.set_num_threads(2)
    from emotion_app.speakers.model import SpeakerModel
    m = SpeakerModel(folder)
    m.embed_batch(windows[:4])
    t0 = time.perf_counter(); m.embed_batch(windows); seconds = time.perf_counter() - t0
else:
    import torch
    torch.set_num_threads(2)
    from funasr.models.campplus.model import CAMPPlus
    from funasr.models.campplus.utils import extract_feature
    net = CAMPPlus(feat_dim=80, embedding_size=192)
    net.load_state_dict(torch.load(folder + "/campplus_cn_common.bin", weights_only=True))
    net.eval()
    def embed(ws):
        feats, _, _ = extract_feature([torch.from_numpy(w) for w in ws])
        with torch.inference_mode():
            return net(feats)
    embed(windows[:4])
    t0 = time.perf_counter()
    for k in range(0, n, 64):
        embed(windows[k:k + 64])
    seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "windows": n}))
"""


def make_call(minutes: float, folder: Path) -> tuple[Path, Path]:
    import numpy as np
    import soundfile as sf
    from conversation_audio import LINES, RATE, say

    stereo, mono = folder / f"call_{minutes:g}min.flac", folder / f"call_{minutes:g}min_mono.flac"
    if stereo.exists() and mono.exists():
        return stereo, mono
    total = int(minutes * 60 * RATE)
    left, right = np.zeros(total, np.float32), np.zeros(total, np.float32)
    t, k = 0, 0
    while True:
        who = "A" if k % 2 == 0 else "B"
        x = say(LINES[who][(k // 2) % 3], who)
        start = t - (RATE if k % 7 == 3 else 0)  # now and then the second party cuts in 1 s early
        if start + len(x) > total:
            break
        (left if who == "A" else right)[start : start + len(x)] += x
        t, k = start + len(x) + int(0.4 * RATE), k + 1
    g = 10 ** (-35 / 20)
    sf.write(stereo, np.stack([left + g * right, right + g * left], 1), RATE)
    sf.write(mono, left + right, RATE)
    return stereo, mono


def run(script: str, *args) -> dict:
    out = subprocess.run([sys.executable, "-c", script, str(ROOT), *map(str, args)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "checkpoints" / "plus_large_random"))
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--modes", default="torch-fp32,torch-bf16")
    p.add_argument("--windows", type=int, default=256, help="CAM++ windows timed against FunASR")
    args = p.parse_args()
    from bench_fast import prepare

    model = Path(args.model)
    prepare(model, ["torch-fp32"])
    data = ROOT / "bench" / "results"
    data.mkdir(parents=True, exist_ok=True)
    campplus = data / "campplus_random"
    if not (campplus / "campplus_cn_common.bin").exists():
        from emotion_app.tools.random_campplus import build_random_campplus

        build_random_campplus(campplus)
    stereo, mono = make_call(args.minutes, data)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; a {args.minutes:g}-minute call\n")
    print("| mode | speakers | audio | segments | speakers found | wall | x real time | peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for mode in args.modes.split(","):
        dtype = mode.split("-")[1]
        for speakers, path in (("channels", stereo), ("auto", mono), ("2", mono)):
            with tempfile.TemporaryDirectory() as out:
                r = run(WORKER, model, campplus, dtype, path, speakers, out)
            speed = r["duration_s"] / r["seconds"]
            print(
                f"| {mode} | {speakers} | {r['duration_s'] / 60:.1f} min | {r['segments']} | {r['speakers']} | "
                f"{r['seconds']:.1f} s | {speed:.1f}x | {r['rss_mb']} MB |",
                flush=True,
            )
    print("\n| CAM++ on 1.5 s windows (2 threads) | windows | seconds | windows per s |")
    print("|---|---|---|---|")
    for which in ("ours", "funasr"):
        r = run(CAMPPLUS_WORKER, which, campplus, args.windows)
        print(f"| {which} | {r['windows']} | {r['seconds']:.2f} | {r['windows'] / r['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
