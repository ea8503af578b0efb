"""Options given by people (form fields, CLI flags, JSON) -> validated, frozen dataclasses.

Each kind of option has one parser, `Kind.from_fields(mapping)`: it takes strings ("0.5", "true")
or typed values, reads only the names it owns, and takes every default from the dataclass, so
defaults are written once. A bad value raises `OptionError` naming the field and what is allowed;
the REST API answers it with 422, the CLI exits 2 and the page shows the message.

The kinds: `AnalysisOptions` (frame smoothing, insights, charts; analysis/options.py),
`SegmentOptions` (long recordings; recordings/segmenter.py) and `RequestOptions` here, which holds
one request's mode (granularity, embedding, segmentation) with the other two and refuses
combinations that would silently ignore something:

| given                                    | outcome                                              |
|------------------------------------------|------------------------------------------------------|
| granularity=frame with segment=vad/window | refused: a segmented recording has one result per segment, not frames |
| extract_embedding with segment=vad/window | works: embedding.npy holds one mean feature per segment, (S, D) |
| a frame option (smoothing, max_inline_frames) without granularity=frame | refused             |
| a VAD field without segment=vad           | refused (threshold, min_speech_s, min_silence_s, max_segment_s, speech_pad_s) |
| window_s / hop_s without segment=window   | refused                                              |
| mixed_threshold, charts                   | apply to every mode                                  |
| head (names of loaded heads, all, none)   | every mode: each custom head's reading beside the 9-class result |
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .errors import EmotionAppError

GRANULARITIES = ("utterance", "frame")
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


class OptionError(EmotionAppError, ValueError):
    """An option's value is out of range or two options conflict (the message names them)."""

    code = "bad_option"


def given(mapping: Mapping | None, names: Iterable[str]) -> dict:
    """The entries of `mapping` named in `names` that carry a value (None and "" mean not given)."""
    mapping = mapping or {}
    return {k: mapping[k] for k in names if k in mapping and mapping[k] is not None and str(mapping[k]).strip() != ""}


def parse_bool(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise OptionError(f"{name} must be true or false, not {value!r}")


def parse_float(value, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OptionError(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise OptionError(f"{name} must be a finite number, not {value!r}")
    return number


def parse_int(value, name: str) -> int:
    number = parse_float(value, name)
    if not number.is_integer():
        raise OptionError(f"{name} must be a whole number, not {value!r}")
    return int(number)


def parse_choice(value, name: str, choices: Iterable[str], code: str | None = None) -> str:
    choices = tuple(choices)
    text = str(value).strip()
    if text not in choices:
        raise OptionError(f"{name} must be one of {', '.join(choices)}, not {value!r}", code)
    return text


def parse_heads(value) -> tuple[str, ...] | None:
    """The `head` field: "all" (None: every loaded head), "none" (no head) or head names, comma-separated
    or as a list. Whether each name is loaded is the engine's to say (OptionError naming the loaded ones)."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    names = tuple(str(v).strip() for v in items if str(v).strip())
    if names in ((), ("all",)):
        return None
    return () if names == ("none",) else names


def checked(make, *args, **kwargs):
    """Build a dataclass whose __post_init__ raises ValueError; the error becomes an OptionError."""
    try:
        return make(*args, **kwargs)
    except OptionError:
        raise
    except (TypeError, ValueError) as exc:
        raise OptionError(str(exc)) from None


def _analysis_default():
    from .analysis.options import AnalysisOptions

    return AnalysisOptions()


@dataclass(frozen=True)
class RequestOptions:
    """What one analysis request asks for. `segment` None: the input whole (long input is chunked)."""

    granularity: str = "utterance"
    extract_embedding: bool = False
    segment: object = None  # SegmentOptions | None (typed loosely to keep this module light)
    analysis: object = field(default_factory=_analysis_default)  # AnalysisOptions
    heads: tuple | None = None  # custom heads: None all the engine's, else names (field `head`) or Head objects

    FIELDS = ("granularity", "extract_embedding", "segment", "head")

    @classmethod
    def from_fields(cls, mapping: Mapping | None = None, **defaults) -> RequestOptions:
        """From form fields / flags: granularity, extract_embedding, segment (vad|window|none) and the
        fields of AnalysisOptions and SegmentOptions. `defaults` are used where `mapping` gives nothing
        (a caller's own defaults, e.g. charts=False for the CLI)."""
        from .analysis.options import FRAME_FIELDS, AnalysisOptions
        from .recordings.segmenter import SEGMENT_FIELDS, VAD_FIELDS, WINDOW_FIELDS, SegmentOptions

        values = {**given(defaults, defaults), **given(mapping, [*cls.FIELDS, *AnalysisOptions.FIELDS, *SEGMENT_FIELDS])}
        granularity = parse_choice(values.get("granularity", cls.granularity), "granularity", GRANULARITIES, "bad_granularity")
        embedding = parse_bool(values.get("extract_embedding", cls.extract_embedding), "extract_embedding")
        mode = parse_choice(values.get("segment", "none"), "segment", ("none", "vad", "window"))
        frame_only = [k for k in FRAME_FIELDS if k in given(mapping, FRAME_FIELDS)]
        if mode != "none" and granularity == "frame":
            raise OptionError(
                f"granularity=frame cannot be combined with segment={mode}: a segmented recording gives one result per "
                "segment. Use segment=none for per-frame scores, or granularity=utterance with segmentation."
            )
        if frame_only and granularity != "frame":
            raise OptionError(f"{', '.join(frame_only)}: frame options apply to granularity=frame only; set it or drop them.")
        unused = {
            "none": [*VAD_FIELDS, *WINDOW_FIELDS],
            "vad": list(WINDOW_FIELDS),
            "window": list(VAD_FIELDS),
        }[mode]
        stray = [k for k in unused if k in given(mapping, unused)]
        if stray:
            needs = "segment=vad" if stray[0] in VAD_FIELDS else "segment=window"
            raise OptionError(f"{', '.join(stray)}: these apply to {needs} only; set it or leave them out.")
        segment = SegmentOptions.from_fields(values, mode) if mode != "none" else None
        heads = parse_heads(values["head"]) if "head" in values else None
        return cls(granularity, embedding, segment, AnalysisOptions.from_fields(values), heads)

    def to_dict(self) -> dict:
        return {
            "granularity": self.granularity,
            "extract_embedding": self.extract_embedding,
            "segment": self.segment.to_dict() if self.segment is not None else None,
            "analysis": self.analysis.to_dict(),
            "heads": None if self.heads is None else [getattr(h, "name", h) for h in self.heads],
        }
