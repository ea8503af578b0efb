"""Optional augmentation of the training clips: speed perturbation and noise at a given SNR.

    opts = Augmentation(speeds=(0.9, 1.1), noise_snr=10.0)      # --augment speed=0.9,1.1 --noise-snr 10
    copies = augmented_clips(split.train, opts, seed=0)          # 3 copies of each training clip

Each copy is a clip of its own: its samples are the clean clip's, changed (`Clip.change`), and it
goes through the frozen lower part like any clip (features.py), cached under its own key, the
sha256 of the clean clip's key and the change's description (which names the speed, or the SNR,
the noise and the seed): a second run with the same augmentation computes nothing, another SNR
computes only its copies. Only training clips are augmented; validation and test clips are scored
as they are.

- **speed s**: the clip resampled so that it plays s times as fast (length / s, pitch times s),
  Kaldi's speed perturbation: the samples read as if at s x 16 kHz and resampled to 16 kHz (soxr).
- **noise at SNR d dB**: noise scaled to the clip's power / 10^(d / 10) and added; white Gaussian
  noise, or a supplied recording (`noise`: any audio file, looped to the clip's length from an
  offset). The noise of each copy follows from the seed and the clip alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..constants import SAMPLE_RATE
from ..fields import OptionError
from .data import Clip

SPEED_RANGE = (0.5, 2.0)


@dataclass(frozen=True)
class Augmentation:
    speeds: tuple[float, ...] = ()  # one copy per speed factor (not 1)
    noise_snr: float | None = None  # dB: one copy with noise at this SNR
    noise: str | None = None  # a noise recording (default: white noise)

    def __post_init__(self):
        low, high = SPEED_RANGE
        wrong = [s for s in self.speeds if not low <= s <= high or s == 1.0]
        if wrong:
            raise OptionError(f"--augment speed: factors from {low} to {high}, not 1; not {', '.join(map(str, wrong))}")
        if self.noise is not None and self.noise_snr is None:
            raise OptionError("--noise needs --noise-snr DB (the signal-to-noise ratio to add it at)")

    @property
    def active(self) -> bool:
        return bool(self.speeds) or self.noise_snr is not None


def parse_augment(text: str | None) -> tuple[float, ...]:
    """`--augment speed=0.9,1.1` -> (0.9, 1.1)."""
    if not text:
        return ()
    kind, eq, values = text.partition("=")
    if kind.strip() != "speed" or not eq:
        raise OptionError(f"--augment takes speed=F1,F2 (e.g. speed=0.9,1.1), not {text!r}")
    try:
        return tuple(float(v) for v in values.split(",") if v.strip())
    except ValueError:
        raise OptionError(f"--augment speed: factors are numbers, e.g. speed=0.9,1.1, not {values!r}") from None


@dataclass(frozen=True)
class Speed:
    factor: float

    def describe(self) -> str:
        return f"speed={self.factor:g}"

    def __call__(self, samples: np.ndarray, digest: str) -> np.ndarray:
        import soxr

        return soxr.resample(samples, SAMPLE_RATE * self.factor, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)


@dataclass(frozen=True)
class Noise:
    snr_db: float
    seed: int
    noise: np.ndarray | None = None  # (N,) float32 at 16 kHz; None: white noise
    noise_sha: str = "white"

    def describe(self) -> str:
        return f"noise={self.noise_sha}:snr={self.snr_db:g}:seed={self.seed}"

    def __call__(self, samples: np.ndarray, digest: str) -> np.ndarray:
        rng = np.random.default_rng([self.seed, int(digest[:15], 16)])  # this clip's noise, the same every run
        n = len(samples)
        if self.noise is None:
            noise = rng.standard_normal(n)
        else:
            start = int(rng.integers(len(self.noise)))
            noise = np.resize(np.roll(self.noise, -start), n)  # looped from a random offset
        power = float(np.mean(np.square(samples, dtype=np.float64)))
        scale = np.sqrt(power / 10 ** (self.snr_db / 10) / max(float(np.mean(np.square(noise, dtype=np.float64))), 1e-20))
        return (samples + scale * noise).astype(np.float32)


def changes(opts: Augmentation, seed: int) -> list:
    """The changes each training clip gets a copy for."""
    out: list = [Speed(s) for s in opts.speeds]
    if opts.noise_snr is not None:
        if opts.noise is None:
            out.append(Noise(opts.noise_snr, seed))
        else:
            from ..audio.source import load_audio

            data = Path(opts.noise).read_bytes()
            noise = load_audio(data, name=Path(opts.noise).name).samples
            if not len(noise) or not np.any(noise):
                raise OptionError(f"--noise {opts.noise}: the file holds no sound to add")
            out.append(Noise(opts.noise_snr, seed, noise, hashlib.sha256(data).hexdigest()[:16]))
    return out


def augmented_clips(clips: list[Clip], opts: Augmentation, seed: int) -> list[Clip]:
    """One copy of each clip per change, each with its own cache key."""
    made = changes(opts, seed) if opts.active else []
    return [
        replace(c, digest=hashlib.sha256(f"{c.digest}|{change.describe()}".encode()).hexdigest(), change=change)
        for change in made
        for c in clips
    ]
