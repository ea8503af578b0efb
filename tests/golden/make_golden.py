"""result.json of every mode, from a tiny random checkpoint and generated audio: the golden files
that tests/test_golden.py holds the code to.

    PYTHONPATH=$PWD .venv/bin/python tests/golden/make_golden.py            # rewrite tests/golden/*.json
    PYTHONPATH=$PWD .venv/bin/python tests/golden/make_golden.py --out DIR  # write them elsewhere

Each case runs one request through `service.analyze` (the path every caller takes) and reads the
result.json its output folder holds. Everything is seeded (checkpoint, audio, head weights) and torch
runs on one thread, so the same code gives the same bytes. The values that differ between two runs
of the same code (VARIABLE) are replaced by "<varies>", keys kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: audio_files

from audio_files import espeak, speechlike, write_audio  # noqa: E402

RATE = 16_000
VARIES = "<varies>"
# result.json's keys whose values differ between runs of the same code: when the request started,
# the output folder's name (outputs_YYYYMMDD_HHMMSS), seconds spent (decode, inference, total), and
# the APIs' download links (keyed: a secret per folder). `timings` keeps its keys.
VARIABLE = ("timestamp", "output_dir", "timings", "files")
CASES = (
    "utterance", "frame", "frame_file", "segments_vad", "segments_no_speech", "segments_window", "conversation_channels",
    "conversation_turns", "labels_iemocap4", "sentiment_frame", "sentiment_turns", "heads_frame", "heads_segments",
)  # fmt: skip


def normalised(result: dict) -> dict:
    """`result` with the VARIABLE values replaced (a dict's values each, its keys kept)."""
    out = dict(result)
    for key in VARIABLE:
        if key in out:
            out[key] = dict.fromkeys(out[key], VARIES) if isinstance(out[key], dict) else VARIES
    return out


def dumps(result: dict) -> str:
    """result.json's content with one value a line (json.dumps(indent=2), not outputs.result_text's
    layout), so that a golden's diff shows each number that moved; with a final newline."""
    return json.dumps(result, ensure_ascii=False, indent=2) + "\n"


def _talk(seconds: float, seed: int) -> np.ndarray:
    return speechlike(seconds, RATE, seed=seed)


def _gap(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.float32)


def _recording() -> np.ndarray:
    """(n,) two spoken sentences (espeak-ng) between silences."""
    first, second = espeak("Good evening everybody.", 0), espeak("Thank you so much.", 1)
    return np.concatenate([_gap(0.5), first, _gap(0.8), second, _gap(0.4)])


def _hum() -> np.ndarray:
    """(n,) 4 s of voiced-sounding sound that the VAD finds no speech in: a recording without speech."""
    return np.concatenate([_gap(0.5), _talk(3.0, 1), _gap(0.5)])


def _call() -> tuple[np.ndarray, str]:
    """(2, n) a call: A on the left channel, then B on the right, then A again, silence on the other
    side; and its turns as RTTM."""
    lines = [("Agent", espeak("Hello, how can I help?", 0)), ("Customer", espeak("My order is late.", 1)),
             ("Agent", espeak("Let me check that.", 2))]  # fmt: skip
    n = int(0.3 * RATE) + sum(len(x) + int(0.4 * RATE) for _, x in lines)
    left, right = np.zeros(n, np.float32), np.zeros(n, np.float32)
    at, rttm = int(0.3 * RATE), ""
    for who, x in lines:
        (left if who == "Agent" else right)[at : at + len(x)] = x
        rttm += f"SPEAKER call 1 {at / RATE:.3f} {len(x) / RATE:.3f} <NA> <NA> {who} <NA> <NA>\n"
        at += len(x) + int(0.4 * RATE)
    return np.stack([left, right]), rttm


def _head(engine):
    """A custom head with seeded weights on the engine's features (as train-head saves one)."""
    from emotion_app.model.head import Head, engine_model_id

    rng = np.random.default_rng(7)
    dim = len(engine.predict((RATE, _talk(0.5, 0)), extract_embedding=True).embedding)
    labels = ("calm", "tense", "lively")
    w, b = rng.normal(0, 0.5, (dim, 3)).astype(np.float32), rng.normal(0, 0.1, 3).astype(np.float32)
    names = {"calm": {"zh": "平静", "emoji": "🙂"}, "tense": {"zh": "紧张", "emoji": "😬"}}
    return Head("mood", labels, [(w, b)], np.zeros(dim, np.float32), np.ones(dim, np.float32), engine_model_id(engine),
                names=names)  # fmt: skip


def write_inputs(work: Path) -> dict[str, Path]:
    """The cases' audio files and turns file, written into `work`."""
    clip = write_audio(work / "clip.wav", _talk(2.0, 0), RATE, "wav")
    recording = write_audio(work / "recording.wav", _recording(), RATE, "wav")
    hum = write_audio(work / "hum.wav", _hum(), RATE, "wav")
    stereo, rttm = _call()
    call = write_audio(work / "call.wav", stereo, RATE, "wav")
    turns = work / "call.rttm"
    turns.write_text(rttm, encoding="utf-8")
    return {"clip": clip, "recording": recording, "hum": hum, "call": call, "turns": turns}


def run_case(case: str, engine, inputs: dict[str, Path], work: Path) -> dict:
    """result.json of one case, as its output folder holds it."""
    from emotion_app.request import RequestOptions
    from emotion_app.service import analyze

    clip, recording, hum, call, turns = (inputs[k] for k in ("clip", "recording", "hum", "call", "turns"))
    source, fields = {
        "utterance": (clip, {}),
        "frame": (clip, {"granularity": "frame"}),
        "frame_file": (clip, {"granularity": "frame", "max_inline_frames": 10}),
        "segments_vad": (recording, {"segment": "vad"}),
        "segments_no_speech": (hum, {"segment": "vad"}),
        "segments_window": (recording, {"segment": "window", "window_s": 2.0}),
        "conversation_channels": (call, {"speakers": "channels", "names": "Agent,Customer"}),
        "conversation_turns": (call, {"turns": str(turns)}),
        "labels_iemocap4": (clip, {"labels": "iemocap4"}),
        "sentiment_frame": (clip, {"granularity": "frame", "sentiment": True}),
        "sentiment_turns": (call, {"turns": str(turns), "sentiment": True}),
        "heads_frame": (clip, {"granularity": "frame"}),
        "heads_segments": (recording, {"segment": "window", "window_s": 2.0}),
    }[case]
    request = RequestOptions.from_fields({"charts": False, **fields})
    if case.startswith("heads_"):
        request = replace(request, heads=(_head(engine),))
    analysis = analyze(engine, source, request, outputs_dir=work / "outputs", name=Path(source).name)
    return json.loads((analysis.folder / "result.json").read_text(encoding="utf-8"))


def make(out: Path, cases=CASES) -> dict[str, Path]:
    """Write `<case>.json` into `out` for each case; returns case -> path."""
    from emotion_app import Engine
    from emotion_app.tools.random_checkpoint import build_random_checkpoint

    out.mkdir(parents=True, exist_ok=True)
    written = {}
    with tempfile.TemporaryDirectory(prefix="emotion_app_golden_") as tmp:
        work = Path(tmp)
        model = build_random_checkpoint(work / "tiny", preset="tiny")
        engine = Engine(model=str(model), device="cpu", cache_weights=False, threads=1)  # one thread: one summation order
        inputs = write_inputs(work)
        for case in cases:
            path = out / f"{case}.json"
            path.write_text(dumps(normalised(run_case(case, engine, inputs, work))), encoding="utf-8")
            written[case] = path
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=HERE, help="folder to write <case>.json into (default: tests/golden)")
    p.add_argument("cases", nargs="*", metavar="CASE", help="some of: " + ", ".join(CASES) + " (default: all)")
    args = p.parse_args(argv)
    if unknown := [c for c in args.cases if c not in CASES]:
        p.error(f"unknown case {unknown[0]!r}; cases: {', '.join(CASES)}")
    for case, path in make(args.out, args.cases or CASES).items():
        print(f"{case}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
