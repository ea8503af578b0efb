"""Conversations to test with: two espeak-ng voices taking turns (a low male and a high female voice),
as a stereo call (one party per channel, each heard faintly on the other: bleed) or mixed to mono,
with the true turns. Optionally the second party cuts in before the first has finished."""

from __future__ import annotations

import functools
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np

RATE = 16_000
VOICES = {"A": ("en-us+m3", 35), "B": ("en-us+f4", 85)}  # espeak-ng voice, pitch (0-99)
LINES = {
    "A": ["Hello, thank you for calling, how can I help you today?", "I see, let me check that for you.",
          "Your order was shipped yesterday and should arrive tomorrow."],
    "B": ["Hi, my order has not arrived and I am really upset about it.", "It was supposed to come last week!",
          "Okay, thank you very much."],
}  # fmt: skip
GAP_S = 0.5


@functools.lru_cache(maxsize=32)
def say(text: str, who: str) -> np.ndarray:
    """(n,) float32 at 16 kHz of `text` in voice `who`, trimmed to the voice, peak 0.5."""
    import soundfile as sf
    import soxr

    voice, pitch = VOICES[who]
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", "165", "-w", f.name, text], check=True)
        x, rate = sf.read(f.name, dtype="float32")
    x = soxr.resample(x, rate, RATE).astype(np.float32)
    idx = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max())
    x = x[idx[0] : idx[-1] + 1]
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


@dataclass
class Conversation:
    left: np.ndarray  # party A's channel, without bleed
    right: np.ndarray  # party B's
    turns: list[tuple[str, float, float, str]]  # (who, start s, end s, text), in order

    def stereo(self, bleed_db: float = -35.0) -> np.ndarray:
        """(n, 2): each party on its channel, the other heard `bleed_db` below it."""
        g = 10 ** (bleed_db / 20)
        return np.stack([self.left + g * self.right, self.right + g * self.left], axis=1).astype(np.float32)

    def mono(self) -> np.ndarray:
        return (self.left + self.right).astype(np.float32)

    def rttm(self, names=("Agent", "Customer"), file_id: str = "call") -> str:
        who = dict(zip("AB", names))
        return "".join(f"SPEAKER {file_id} 1 {a:.3f} {b - a:.3f} <NA> <NA> {who[w]} <NA> <NA>\n" for w, a, b, _ in self.turns)

    def vtt(self, names=("Agent", "Customer")) -> str:
        who = dict(zip("AB", names))
        cues = [f"{_t(a, '.')} --> {_t(b, '.')}\n<v {who[w]}>{text}\n" for w, a, b, text in self.turns]
        return "WEBVTT\n\n" + "\n".join(cues)

    def srt(self, names=("Agent", "Customer")) -> str:
        who = dict(zip("AB", names))
        blocks = [f"{i}\n{_t(a, ',')} --> {_t(b, ',')}\n{who[w]}: {text}\n" for i, (w, a, b, text) in enumerate(self.turns, 1)]
        return "\n".join(blocks)

    def whisperx(self, names=("SPEAKER_00", "SPEAKER_01")) -> dict:
        who = dict(zip("AB", names))
        return {"segments": [{"start": a, "end": b, "text": f" {text}", "speaker": who[w]} for w, a, b, text in self.turns]}


def _t(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def call(rounds: int = 3, cut_in_s: float = 0.0) -> Conversation:
    """A then B, `rounds` times, GAP_S apart; with `cut_in_s`, B's second line starts that long
    before A's second line ends (B interrupts; A stops then)."""
    pieces = []
    for k in range(rounds):
        pieces += [("A", LINES["A"][k % 3]), ("B", LINES["B"][k % 3])]
    t = 0.0
    placed = []
    for i, (who, text) in enumerate(pieces):
        x = say(text, who)
        start = t
        if cut_in_s and i == 3:  # B's second line, over the end of A's second line
            start = max(0.0, placed[-1][2] - cut_in_s)
        placed.append((who, start, start + len(x) / RATE, text, x))
        t = start + len(x) / RATE + GAP_S
    n = int(round(t * RATE))
    left, right = np.zeros(n, np.float32), np.zeros(n, np.float32)
    for who, start, _, _, x in placed:
        a = int(round(start * RATE))
        (left if who == "A" else right)[a : a + len(x)] += x
    return Conversation(left, right, [(w, s, e, text) for w, s, e, text, _ in placed])
