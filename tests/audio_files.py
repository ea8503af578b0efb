"""Writers of real audio/video files for tests, with PyAV's bundled encoders (no system FFmpeg)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

# extension -> (container format, codec, sample format, options)
FORMATS = {
    "wav": ("wav", "pcm_s16le", "s16", {}),
    "wav_u8": ("wav", "pcm_u8", "u8", {}),
    "wav_s24": ("wav", "pcm_s24le", "s32", {}),
    "wav_s32": ("wav", "pcm_s32le", "s32", {}),
    "wav_f32": ("wav", "pcm_f32le", "flt", {}),
    "wav_mulaw": ("wav", "pcm_mulaw", "s16", {}),
    "wav_alaw": ("wav", "pcm_alaw", "s16", {}),
    "mp3": ("mp3", "libmp3lame", "fltp", {}),
    "m4a": ("ipod", "aac", "fltp", {}),
    "flac": ("flac", "flac", "s16", {}),
    "ogg": ("ogg", "vorbis", "fltp", {"strict": "experimental"}),
    "opus": ("ogg", "libopus", "flt", {}),
    "webm": ("webm", "libopus", "flt", {}),
    "aiff": ("aiff", "pcm_s16be", "s16", {}),
}
SUFFIX = {"wav_u8": "wav", "wav_s24": "wav", "wav_s32": "wav", "wav_f32": "wav", "wav_mulaw": "wav", "wav_alaw": "wav"}


def sine(seconds: float, rate: int, freq: float = 440.0, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    """(channels, n) float32 sine; channel c is scaled by 1/(c+1) so a downmix is checkable."""
    t = np.arange(int(seconds * rate)) / rate
    x = amp * np.sin(2 * np.pi * freq * t)
    return np.stack([x / (c + 1) for c in range(channels)]).astype(np.float32)


def speechlike(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """(n,) float32 voiced-sounding signal: harmonics of a gliding pitch under a syllable envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.5 * t) ** 2
    return (0.2 * x * env + 0.005 * rng.standard_normal(len(t))).astype(np.float32)


def write_audio(path: Path, samples: np.ndarray, rate: int, fmt: str = "wav") -> Path:
    """Encode (channels, n) or (n,) float samples into a real file of the given FORMATS key."""
    import av

    container_fmt, codec, sample_fmt, options = FORMATS[fmt]
    x = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    if codec == "vorbis" and x.shape[0] == 1:  # FFmpeg's own Vorbis encoder is stereo-only
        x = np.concatenate([x, x])
    channels = x.shape[0]
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
    if codec in ("libopus",) and rate not in (8000, 12000, 16000, 24000, 48000):
        raise ValueError("opus needs 8/12/16/24/48 kHz")
    with av.open(str(path), "w", format=container_fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        stream.format = sample_fmt
        for k, v in options.items():
            stream.codec_context.options[k] = v
        stream.time_base = Fraction(1, rate)
        step = stream.codec_context.frame_size or 1024
        pts = 0
        for start in range(0, x.shape[1], step):
            chunk = x[:, start : start + step]
            frame = av.AudioFrame.from_ndarray(_as_format(chunk, sample_fmt), format=sample_fmt, layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, pts, Fraction(1, rate)
            pts += chunk.shape[1]
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def write_video(path: Path, samples: np.ndarray | None, rate: int, container: str = "mp4", seconds: float = 1.0) -> Path:
    """A small video file (moving gradient) with an optional AAC/Opus audio track."""
    import av

    with av.open(str(path), "w", format={"mp4": "mp4", "mkv": "matroska", "mov": "mov"}[container]) as out:
        v = out.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = None
        if samples is not None:
            a = out.add_stream("aac", rate=rate, layout="mono")
            a.time_base = Fraction(1, rate)
        for i in range(int(seconds * 10)):
            img = np.full((48, 64, 3), (i * 20) % 255, dtype=np.uint8)
            for packet in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in v.encode(None):
            out.mux(packet)
        if a is not None:
            x = np.atleast_2d(samples).astype(np.float32)
            for start in range(0, x.shape[1], 1024):
                chunk = x[:, start : start + 1024]
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
                for packet in a.encode(frame):
                    out.mux(packet)
            for packet in a.encode(None):
                out.mux(packet)
    return path


def _as_format(chunk: np.ndarray, sample_fmt: str) -> np.ndarray:
    planar = sample_fmt.endswith("p")
    base = sample_fmt.rstrip("p")
    if base == "s16":
        data = np.clip(np.round(chunk * 32767), -32768, 32767).astype(np.int16)
    elif base == "s32":
        data = np.clip(np.round(chunk.astype(np.float64) * 2147483647), -2147483648, 2147483647).astype(np.int32)
    elif base == "u8":
        data = np.clip(np.round(chunk * 127 + 128), 0, 255).astype(np.uint8)
    else:
        data = chunk.astype(np.float32)
    return np.ascontiguousarray(data if planar else data.T.reshape(1, -1))


def espeak(text: str, seed: int = 0) -> np.ndarray:
    """Spoken `text` from espeak-ng (installed by ./run.sh test) at 16 kHz, trimmed to where the
    voice is (|x| above 2 % of the peak), so its ends are the true speech boundaries."""
    import subprocess
    import tempfile

    import soundfile as sf
    import soxr

    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        voice = ["en", "en-us", "en-gb"][seed % 3]
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", f.name, text], check=True)
        x, rate = sf.read(f.name, dtype="float32")
    x = soxr.resample(x, rate, 16000).astype(np.float32)
    idx = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max())
    return x[idx[0] : idx[-1] + 1]
