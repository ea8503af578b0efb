"""Options given by people (form fields, CLI flags, JSON) -> typed values: the field parsers.

Each kind of option has one parser, `Kind.from_fields(mapping)` (request.py, analysis/options.py,
audio/segmenter.py, live/options.py); they all read their fields with these functions. Strings
("0.5", "true") and typed values are accepted alike; a bad value raises `OptionError` naming the
field and what is allowed (the REST API answers it with 422, the CLI exits 2, the page shows it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping

from .errors import EmotionAppError

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
MAX_JSON_INT_DIGITS = 18  # a longer integer in JSON is read as a float (read_json)


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
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past float's range
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


def read_json(text: str | bytes):
    """json.loads for JSON that a user sent, raising ValueError (json.JSONDecodeError, with its line,
    for bad syntax) for anything unreadable, as a caller's own error says. Python's own limits would
    raise others: nesting deeper than its recursion limit (RecursionError), an integer of more than
    4300 digits (ValueError) or one past float's range, which overflows where it is compared to a
    float; so an integer of more than MAX_JSON_INT_DIGITS digits is read as a float (inf past 1e308,
    which the parsers' finite checks refuse)."""
    try:
        return json.loads(text, parse_int=_json_int)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _json_int(digits: str) -> int | float:
    return int(digits) if len(digits.lstrip("-")) <= MAX_JSON_INT_DIGITS else float(digits)


def checked(make, *args, **kwargs):
    """Build a dataclass whose __post_init__ raises ValueError; the error becomes an OptionError."""
    try:
        return make(*args, **kwargs)
    except OptionError:
        raise
    except (TypeError, ValueError) as exc:
        raise OptionError(str(exc)) from None
