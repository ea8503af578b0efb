"""Constants of the emotion2vec+ models, with their units, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

SAMPLE_RATE = 16_000  # Hz: the model's input rate
FRAME_HOP = 320  # samples between frames (20 ms at 16 kHz)
FRAME_RATE = SAMPLE_RATE // FRAME_HOP  # 50 frames per second
FRAME_S = FRAME_HOP / SAMPLE_RATE  # 0.02 s between frame starts
RECEPTIVE_FIELD = 400  # samples seen by one frame (25 ms at 16 kHz)

DEFAULT_MODEL = "iic/emotion2vec_plus_large"
DEFAULT_WINDOW_S = 30.0  # seconds of audio the model sees at once; longer input is chunked
DEFAULT_MAX_DURATION_S = 2 * 3600.0  # audio longer than this is refused
SHORT_AUDIO_S = 1.0  # below this, results are flagged as unreliable
SMOOTHING_METHODS = ("none", "majority", "moving_average", "ewma")  # see smoothing.py
SILENCE_PEAK = 1e-4  # peak amplitude (-80 dBFS) below which audio counts as silent

# The engine's choices, each a type and its tuple of values (for checks, CLI choices and messages).
Granularity = Literal["utterance", "frame"]  # one result per input, or 50 Hz frame scores as well
GRANULARITIES: tuple[Granularity, ...] = get_args(Granularity)
Dtype = Literal["auto", "fp32", "fp16", "bf16", "int8"]  # model/devices.py says which runs where
DTYPES: tuple[Dtype, ...] = get_args(Dtype)
Backend = Literal["torch", "onnx"]
BACKENDS: tuple[Backend, ...] = get_args(Backend)
Hub = Literal["ms", "hf"]  # ModelScope, Hugging Face
HUBS: tuple[Hub, ...] = get_args(Hub)


@dataclass(frozen=True)
class Label:
    """One emotion class: English key, Chinese name and emoji."""

    key: str
    zh: str
    emoji: str


LABELS: tuple[Label, ...] = (
    Label("angry", "生气", "😠"),
    Label("disgusted", "厌恶", "🤢"),
    Label("fearful", "恐惧", "😨"),
    Label("happy", "开心", "😊"),
    Label("neutral", "中立", "😐"),
    Label("other", "其他", "🤔"),
    Label("sad", "难过", "😢"),
    Label("surprised", "吃惊", "😲"),
    Label("unknown", "未知", "❓"),
)
LABEL_KEYS: tuple[str, ...] = tuple(label.key for label in LABELS)
LABEL_BY_KEY: dict[str, Label] = {label.key: label for label in LABELS}

# One fixed colour per emotion, used by every view (page, charts, PNGs).
COLORS = {
    "angry": "#e4572e",
    "disgusted": "#76b041",
    "fearful": "#8e6fc1",
    "happy": "#f6c026",
    "neutral": "#9aa5b1",
    "other": "#4aa3a2",
    "sad": "#3f7cc9",
    "surprised": "#f08bb8",
    "unknown": "#5c5c5c",
}

# Labels other than the nine (a fine-tuned model's own, finetune/) take one of these, by their name.
OTHER_COLORS = ("#8e6cbf", "#c97b3f", "#2f9e8f", "#b0487a", "#6b8e23", "#4f6d9a", "#a0522d", "#d4a017")


def label_color(key: str) -> str:
    """The colour of a label: the nine's own (COLORS), another label's picked by its name (stable
    across runs and processes: a CRC, not Python's salted hash)."""
    import zlib

    return COLORS.get(key) or OTHER_COLORS[zlib.crc32(key.encode("utf-8")) % len(OTHER_COLORS)]


def label_for_token(token: str) -> Label:
    """Map a tokens.txt entry ("开心/happy", "<unk>", "angry") to its Label."""
    if token == "<unk>":
        return LABEL_BY_KEY["unknown"]
    key = token.split("/")[-1].strip().lower()
    if key in LABEL_BY_KEY:
        return LABEL_BY_KEY[key]
    zh = token.split("/")[0].strip()
    return Label(key, zh, "❔")
