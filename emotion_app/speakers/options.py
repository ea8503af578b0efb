"""Who speaks in a recording, as a request asks: `SpeakerOptions`, parsed from form fields or flags.

- `channels`: one speaker per channel of a stereo (or N-channel) call; VAD per channel.
- `auto`: mono diarization, the number of speakers estimated (CAM++ embeddings, clustering).
- a number N (2-10): mono diarization into exactly N speakers.
- `turns`: the turns of a file someone already has (RTTM, WebVTT, SRT, whisper JSON): set by the
  request's `turns` field, not by this one.

`names` (comma-separated) names the speakers in order: the channels (default ch1, ch2, ...), or the
speakers found, in order of first appearance (default S1, S2, ...; a turns file's own names are kept
unless `names` renames them in order of appearance).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..fields import OptionError, given

MODES = ("channels", "auto", "count", "turns")
MAX_SPEAKERS = 10
MAX_NAME = 40  # characters of one name


@dataclass(frozen=True)
class SpeakerOptions:
    mode: str  # channels | auto | count | turns
    count: int | None = None  # mode count: how many speakers
    names: tuple[str, ...] = ()

    FIELDS = ("speakers", "names")

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(
                f"speakers must be channels, auto or a number of speakers from 2 to {MAX_SPEAKERS}, not {self.mode!r}"
            )
        if self.mode == "count" and not (self.count and 1 <= self.count <= MAX_SPEAKERS):
            raise ValueError(f"the number of speakers must be from 1 to {MAX_SPEAKERS}, not {self.count!r}")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"names must differ from each other: {', '.join(self.names)}")

    @property
    def diarize(self) -> bool:
        """Whether the speakers are found from the voices (CAM++)."""
        return self.mode in ("auto", "count")

    def name(self, index: int, default: str | None = None) -> str:
        """The name of speaker `index` (from 0, in order of appearance or channel order)."""
        if index < len(self.names):
            return self.names[index]
        if default is not None:
            return default
        return f"ch{index + 1}" if self.mode == "channels" else f"S{index + 1}"

    def to_dict(self) -> dict:
        return {"mode": self.mode, "count": self.count, "names": list(self.names)}

    @classmethod
    def from_fields(cls, mapping: Mapping | None, turns: bool = False) -> SpeakerOptions | None:
        """`speakers` (channels, auto, a number, none) and `names`; with `turns` (a turns file was
        given) the mode is `turns`. None when neither asks for speakers."""
        v = given(mapping, cls.FIELDS)
        names = parse_names(v.get("names", ()))
        value = str(v.get("speakers", "none")).strip().lower()
        if turns:
            if value not in ("none", "turns"):
                raise OptionError(f"speakers={value} cannot be combined with a turns file: the turns say who speaks; drop one.")
            return cls("turns", None, names)
        if value == "none":
            if names:
                raise OptionError("names need speakers=channels, auto or a number (or a turns file); set one or drop names.")
            return None
        if value in ("channels", "auto"):
            return _checked(value, None, names)
        try:
            count = int(value)
        except ValueError:
            raise OptionError(
                f"speakers must be channels, auto, a number of speakers from 1 to {MAX_SPEAKERS} or none, not {v['speakers']!r}"
            ) from None
        return _checked("count", count, names)


def _checked(mode: str, count: int | None, names: tuple[str, ...]) -> SpeakerOptions:
    try:
        return SpeakerOptions(mode, count, names)
    except ValueError as exc:
        raise OptionError(str(exc)) from None


def parse_names(value) -> tuple[str, ...]:
    """`Agent,Customer` (or a list) -> ("Agent", "Customer"): trimmed, empty ones refused."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    names = tuple(str(n).strip() for n in items)
    if not names or names == ("",):
        return ()
    if any(not n for n in names):
        raise OptionError(f"names must be comma-separated and not empty: {value!r}")
    if any(len(n) > MAX_NAME or any(c in n for c in "\n\r\t<>") for n in names):
        raise OptionError(f"a name may have at most {MAX_NAME} characters and no line breaks, tabs or < >: {value!r}")
    return names
