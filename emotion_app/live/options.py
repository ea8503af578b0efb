"""What a live session is told: the meter's options (`LiveOptions`), the audio's wire format
(`StreamFormat`), the WebSocket's settings message (`parse_settings`) and raw frames -> samples.

The meter scores the last `window_s` of audio every `hop_s`; smoothing is causal (it only looks
back), as a live meter cannot see the future:

- `ewma`: s[k] = alpha * p[k] + (1 - alpha) * s[k-1] over the hops' probability vectors.
- `vote`: the label that wins most of the last `votes` hops (a tie goes to the higher mean
  probability); the scores are the mean of those hops.
- `none`: each hop as the model gave it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from ..audio.samples import downmix, to_float
from ..errors import AudioError, EmotionAppError
from ..fields import OptionError, checked, given, parse_choice, parse_float, parse_int, read_json
from ..request import RequestOptions

SMOOTHING = ("ewma", "vote", "none")
FORMATS = {"pcm_s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}  # wire format -> sample type
RATE_RANGE = (8_000, 192_000)  # Hz accepted from clients
MAX_CHANNELS = 8
WINDOW_RANGE = (0.5, 10.0)  # s: the model sees at most 10 s per hop
MIN_HOP_S = 0.1  # s: shorter hops would only burn the CPU
MAX_VOTES = 15
NO_LIVE_FIELDS = ("turns", "turns_name")  # /api/predict's fields that a live take cannot have: a turns file
MAX_FRAME_BYTES = 1 << 20  # one binary message: 1 MiB (5.5 s of 48 kHz stereo s16); more is refused from its header


class FrameError(EmotionAppError):
    """A binary audio frame that cannot be samples of the announced format."""

    code = "bad_frame"


@dataclass(frozen=True)
class LiveOptions:
    """The meter: the window scored at each hop, in s, and the causal smoothing of the hops."""

    window_s: float = 3.0
    hop_s: float = 0.5
    smoothing: str = "ewma"
    alpha: float = 0.5  # ewma: weight of the newest hop
    votes: int = 3  # vote: hops that vote

    FIELDS = ("window_s", "hop_s", "smoothing", "alpha", "votes")

    def __post_init__(self):
        lo, hi = WINDOW_RANGE
        if not lo <= self.window_s <= hi:
            raise ValueError(f"window_s must be from {lo:g} to {hi:g} s, not {self.window_s!r}")
        if not MIN_HOP_S <= self.hop_s <= self.window_s:
            raise ValueError(f"hop_s must be from {MIN_HOP_S:g} s to window_s ({self.window_s:g} s), not {self.hop_s!r}")
        if self.smoothing not in SMOOTHING:
            raise ValueError(f"smoothing must be one of {', '.join(SMOOTHING)}, not {self.smoothing!r}")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], not {self.alpha!r}")
        if not 1 <= self.votes <= MAX_VOTES:
            raise ValueError(f"votes must be from 1 to {MAX_VOTES}, not {self.votes!r}")

    @classmethod
    def from_fields(cls, mapping: Mapping | None = None) -> LiveOptions:
        """From form fields or JSON values (numbers may be strings); missing fields keep the defaults."""
        v, d = given(mapping, cls.FIELDS), cls()
        return checked(
            cls,
            parse_float(v.get("window_s", d.window_s), "window_s"),
            parse_float(v.get("hop_s", d.hop_s), "hop_s"),
            parse_choice(v.get("smoothing", d.smoothing), "smoothing", SMOOTHING),
            parse_float(v.get("alpha", d.alpha), "alpha"),
            parse_int(v.get("votes", d.votes), "votes"),
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StreamFormat:
    """Raw audio as a client sends it: interleaved little-endian samples at `sample_rate` Hz."""

    sample_rate: int
    format: str = "pcm_s16le"
    channels: int = 1

    FIELDS = ("sample_rate", "format", "channels")

    def __post_init__(self):
        lo, hi = RATE_RANGE
        if not lo <= self.sample_rate <= hi:
            raise AudioError(f"sample_rate must be from {lo} to {hi} Hz, not {self.sample_rate!r}", "bad_rate")
        if self.format not in FORMATS:
            raise OptionError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise OptionError(f"channels must be from 1 to {MAX_CHANNELS}, not {self.channels!r}")

    @property
    def frame_bytes(self) -> int:
        """Bytes of one sample of every channel."""
        return FORMATS[self.format].itemsize * self.channels

    @classmethod
    def from_fields(cls, mapping: Mapping) -> StreamFormat:
        v = given(mapping, cls.FIELDS)
        if "sample_rate" not in v:
            raise OptionError("sample_rate is required: the rate of the audio you will send, in Hz (8000-192000)")
        rate = parse_int(v["sample_rate"], "sample_rate")
        channels = parse_int(v.get("channels", 1), "channels")
        return cls(rate, parse_choice(v.get("format", cls.format), "format", FORMATS), channels)


@dataclass(frozen=True)
class StreamSettings:
    """The WebSocket's first message, parsed: the wire format, the meter, the final analysis."""

    format: StreamFormat
    live: LiveOptions
    request: RequestOptions  # how the whole take is analysed at the end, as /api/predict's fields
    lang: str = "en"


def analysis_fields() -> tuple[str, ...]:
    """The fields `settings["analysis"]` may hold: those of /api/predict but a turns file, which a
    JSON message cannot carry (a string there would be a path on the server)."""
    from ..analysis.options import AnalysisOptions
    from ..audio.segmenter import SEGMENT_FIELDS

    fields = (*RequestOptions.FIELDS, *AnalysisOptions.FIELDS, *SEGMENT_FIELDS)
    return tuple(f for f in fields if f not in NO_LIVE_FIELDS)


def parse_settings(text: str | bytes | None) -> StreamSettings:
    """The settings message: a JSON object with `sample_rate` (required), `format`, `channels`,
    the LiveOptions fields, `analysis` (an object of /api/predict fields) and `lang`. Unknown keys
    are refused, so a misspelt option is never silently ignored."""
    if not isinstance(text, str):
        raise EmotionAppError("The first message must be the settings as JSON text, before any audio.", "bad_settings")
    try:
        data = read_json(text)
    except ValueError as exc:
        raise EmotionAppError(f"The settings message is not valid JSON: {exc}", "bad_settings") from None
    if not isinstance(data, dict):
        raise EmotionAppError("The settings message must be a JSON object.", "bad_settings")
    known = {*StreamFormat.FIELDS, *LiveOptions.FIELDS, "analysis", "lang"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise EmotionAppError(f"Unknown settings: {', '.join(unknown)}; known: {', '.join(sorted(known))}.", "bad_settings")
    analysis = data.get("analysis") or {}
    if not isinstance(analysis, dict):
        raise EmotionAppError("analysis must be an object of /api/predict's fields.", "bad_settings")
    stray = sorted(set(analysis) - set(analysis_fields()))
    if stray:
        why = " (a live take has no turns file)" if set(stray) & set(NO_LIVE_FIELDS) else ""
        raise EmotionAppError(f"Unknown analysis fields: {', '.join(stray)}{why}.", "bad_settings")
    lang = parse_choice(data.get("lang", "en"), "lang", ("en", "zh"))
    fmt, live = StreamFormat.from_fields(data), LiveOptions.from_fields(data)
    return StreamSettings(fmt, live, RequestOptions.from_fields(analysis), lang)


def decode_frame(data: bytes, fmt: StreamFormat) -> np.ndarray:
    """One binary message -> (n,) float32 mono samples at `fmt.sample_rate` (channels averaged).
    A message must hold whole samples of every channel: a split sample would shift the rest."""
    if len(data) > MAX_FRAME_BYTES:
        raise FrameError(f"An audio message may hold at most {MAX_FRAME_BYTES} bytes; send smaller pieces.", "frame_too_large")
    if len(data) % fmt.frame_bytes:
        raise FrameError(
            f"An audio message of {len(data)} bytes is not a whole number of {fmt.format} samples of {fmt.channels} "
            f"channel(s) ({fmt.frame_bytes} bytes each); send whole samples in every message."
        )
    x = to_float(np.frombuffer(data, dtype=FORMATS[fmt.format]))
    if fmt.channels > 1:
        x = downmix(x.reshape(-1, fmt.channels), channel_axis=1)
    if not np.isfinite(x).all():
        raise FrameError("The audio contains NaN or infinite samples.")
    return x
