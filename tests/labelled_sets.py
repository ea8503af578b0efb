"""Small labelled sets for the heads tests and benchmark: sentences spoken by espeak-ng, where the
"label" is the speaking rate and the "speaker" is the espeak voice. Mean-pooled features of even a
random-weight model separate slow from fast speech, so a head can learn it."""

from __future__ import annotations

import json
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

SENTENCES = [
    "good morning to all of you",
    "the cat sat down on the mat",
    "where is the train station",
    "please close the door now",
    "call me again tomorrow",
    "I like green apples a lot",
    "it is raining in the city",
    "we walked to the park today",
]
VOICES = ["en", "en-us", "en-gb", "en-gb-x-rp"]  # the speakers
RATES = {"slow": 90, "fast": 260, "mid": 170}  # label -> words per minute


def say(path: Path, text: str, voice: str, rate: int) -> Path:
    """A WAV (22.05 kHz, as espeak-ng writes it) of `text`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(path), text], check=True)
    return path


@dataclass
class LabelledSet:
    folder: Path  # folder/<label>/<nn>.wav: slow 8, fast 8, mid 6
    csv: Path  # path,label,speaker of slow and fast (16 files, 4 speakers), beside the data folder
    jsonl: Path  # the same rows as JSONL
    zip: Path  # data.zip: data/<label>/<nn>.wav (all three labels)


def write_set(root: Path, counts: dict[str, int] | None = None) -> LabelledSet:
    counts = counts or {"slow": 8, "fast": 8, "mid": 6}
    folder = root / "data"
    rows = []
    for label, n in counts.items():
        for i in range(n):
            voice = VOICES[i % len(VOICES)]
            say(folder / label / f"{i:02d}.wav", SENTENCES[i % len(SENTENCES)], voice, RATES.get(label, 170))
            if label in ("slow", "fast"):
                rows.append({"path": f"data/{label}/{i:02d}.wav", "label": label, "speaker": voice})
    csv = root / "set.csv"
    csv.write_text("path,label,speaker\n" + "".join(f"{r['path']},{r['label']},{r['speaker']}\n" for r in rows))
    jsonl = root / "set.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    archive = root / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(folder.rglob("*.wav")):
            zf.write(f, f"data/{f.relative_to(folder).as_posix()}")
    return LabelledSet(folder, csv, jsonl, archive)
