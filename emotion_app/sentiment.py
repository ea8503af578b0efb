"""Sentiment from emotions: `{label: positive|negative|neutral, score in [-1, 1]}` for any
probabilities over emotion labels (a clip, a segment, a speaker, a live hop).

Each emotion counts towards one polarity (DEFAULT_MAPPING below; a user's own mapping comes as a
small JSON object, `{"surprised": "positive", ...}`, its missing labels keeping the default):

    P(positive) = sum of p over the positive emotions, P(negative) and P(neutral) likewise
    score = P(positive) - P(negative)          (in [-1, 1]; 0 when they balance)
    label = the polarity with the largest P    (ties go to neutral)

The probabilities are renormalised over the labels given first (a label set's subset sums to 1
anyway). The default reads the 9 emotions of emotion2vec+ as they are usually grouped for valence:
happy positive; angry, disgusted, fearful, sad negative; neutral neutral; surprised neutral (its
valence goes either way: a mapping file can say otherwise); other and unknown neutral (no claim).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .fields import OptionError, read_json

POLARITIES = ("positive", "negative", "neutral")
DEFAULT_MAPPING = MappingProxyType(
    {
        "angry": "negative",
        "disgusted": "negative",
        "fearful": "negative",
        "happy": "positive",
        "neutral": "neutral",
        "other": "neutral",
        "sad": "negative",
        "surprised": "neutral",
        "unknown": "neutral",
    }
)
MAX_MAPPING_BYTES = 16 * 1024


@dataclass(frozen=True)
class Sentiment:
    """How emotions count towards sentiment; `of(probabilities)` gives the block."""

    mapping: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MAPPING))

    @classmethod
    def parse(cls, enabled, mapping=None) -> Sentiment | None:
        """The `sentiment` field (true/false) and `sentiment_map` (a JSON object, as text or a dict).
        A mapping alone turns sentiment on."""
        from .fields import parse_bool

        on = parse_bool(enabled, "sentiment") if enabled not in (None, "") else mapping not in (None, "")
        if not on:
            return None
        return cls({**DEFAULT_MAPPING, **_read_mapping(mapping)}) if mapping not in (None, "") else cls()

    def of(self, probabilities: Mapping[str, float]) -> dict:
        """{label, score, positive, negative, neutral} of label -> probability."""
        total = sum(float(p) for p in probabilities.values()) or 1.0
        mass = dict.fromkeys(POLARITIES, 0.0)
        for key, p in probabilities.items():
            mass[self.mapping.get(key, "neutral")] += float(p) / total
        label = "neutral"
        if mass["positive"] > max(mass["negative"], mass["neutral"]):
            label = "positive"
        elif mass["negative"] > max(mass["positive"], mass["neutral"]):
            label = "negative"
        return {
            "label": label,
            "score": round(mass["positive"] - mass["negative"], 4),
            **{k: round(v, 4) for k, v in mass.items()},
        }

    def to_dict(self) -> dict:
        return dict(self.mapping)


def _read_mapping(value) -> dict[str, str]:
    if isinstance(value, Mapping):
        data = dict(value)
    else:
        text = str(value)
        if len(text.encode("utf-8")) > MAX_MAPPING_BYTES:
            raise OptionError(f"sentiment_map: at most {MAX_MAPPING_BYTES // 1024} KB of JSON", "bad_sentiment_map")
        try:
            data = read_json(text)
        except ValueError as exc:
            where = f"{exc.msg} at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise OptionError(
                f'sentiment_map: not JSON ({where}); write it as {{"surprised": "positive"}}', "bad_sentiment_map"
            ) from None
    if not isinstance(data, dict):
        raise OptionError('sentiment_map: a JSON object is needed, like {"surprised": "positive"}', "bad_sentiment_map")
    bad = {k: v for k, v in data.items() if k not in DEFAULT_MAPPING or v not in POLARITIES}
    if bad:
        k, v = next(iter(bad.items()))
        what = (
            f"{k!r} is not an emotion label ({', '.join(DEFAULT_MAPPING)})"
            if k not in DEFAULT_MAPPING
            else (f"{k!r}: {v!r} is not one of {', '.join(POLARITIES)}")
        )
        raise OptionError(f"sentiment_map: {what}", "bad_sentiment_map")
    return {str(k): str(v) for k, v in data.items()}
