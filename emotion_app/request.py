"""What one analysis request asks for: `RequestOptions`, parsed from form fields, flags or JSON.

Each kind of option has one parser, `Kind.from_fields(mapping)` (fields.py has the field parsers):
it takes strings ("0.5", "true") or typed values, reads only the names it owns, and takes every
default from the dataclass, so defaults are written once. A bad value raises `OptionError` naming
the field and what is allowed; the REST API answers it with 422, the CLI exits 2 and the page
shows the message.

The kinds: `AnalysisOptions` (frame smoothing, insights, charts; analysis/options.py),
`SegmentOptions` (long recordings; audio/segmenter.py) and `RequestOptions` here, which holds
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
| speakers=channels/auto/N (+ names)        | segments with their speaker (segment=vad implied; auto/N: window too) |
| speakers=channels with segment=window     | refused: channels are cut by each channel's own VAD |
| turns (a turns file, + names)             | a conversation on the file's turns: no VAD or windows (a segment field is refused) |
| labels (a label set: names or iemocap4)   | every mode: every probability renormalised over the set (labelset.py) |
| sentiment, sentiment_map                  | every mode: a sentiment block beside each reading (sentiment.py) |
| speakers or turns with granularity=frame  | refused, as for segment=vad/window                   |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .analysis.options import FRAME_FIELDS, AnalysisOptions
from .audio.segmenter import SEGMENT_FIELDS, VAD_FIELDS, WINDOW_FIELDS, SegmentOptions
from .constants import GRANULARITIES, Granularity
from .fields import OptionError, given, parse_bool, parse_choice, parse_heads
from .labelset import LabelSet
from .speakers.options import SpeakerOptions
from .speakers.turns import TurnsFile


@dataclass(frozen=True)
class RequestOptions:
    """What one analysis request asks for. `segment` None: the input whole (long input is chunked)."""

    granularity: Granularity = "utterance"
    extract_embedding: bool = False
    segment: SegmentOptions | None = None
    analysis: AnalysisOptions = field(default_factory=AnalysisOptions)
    heads: tuple | None = None  # custom heads: None all the engine's, else names (field `head`) or Head objects
    speakers: SpeakerOptions | None = None  # who speaks (a conversation); None: voices not told apart
    turns: TurnsFile | None = None  # turns someone already has: the segments, with their speakers and text
    labels: LabelSet | None = None  # the label set of every result; None: all the model's labels

    FIELDS = ("granularity", "extract_embedding", "segment", "head", *SpeakerOptions.FIELDS, "turns", "turns_name", "labels")

    @classmethod
    def from_fields(cls, mapping: Mapping | None = None, **defaults) -> RequestOptions:
        """From form fields / flags: granularity, extract_embedding, segment (vad|window|none) and the
        fields of AnalysisOptions and SegmentOptions. `defaults` are used where `mapping` gives nothing
        (a caller's own defaults, e.g. charts=False for the CLI)."""
        values = {**given(defaults, defaults), **given(mapping, [*cls.FIELDS, *AnalysisOptions.FIELDS, *SEGMENT_FIELDS])}
        granularity = parse_choice(values.get("granularity", cls.granularity), "granularity", GRANULARITIES, "bad_granularity")
        embedding = parse_bool(values.get("extract_embedding", cls.extract_embedding), "extract_embedding")
        turns = TurnsFile.of(values["turns"], values.get("turns_name")) if "turns" in values else None
        speakers = SpeakerOptions.from_fields(values, turns=turns is not None)
        mode = parse_choice(values.get("segment", "none"), "segment", ("none", "vad", "window"))
        if turns is not None and (mode != "none" or any(k in values for k in SEGMENT_FIELDS)):
            raise OptionError("a turns file gives the segments itself: drop segment and its fields, or drop the turns file.")
        if speakers is not None and speakers.mode == "channels" and mode == "window":
            raise OptionError("speakers=channels cuts each channel by its own voice activity: use segment=vad (or leave it out).")
        if speakers is not None and speakers.mode != "turns" and mode == "none":
            mode = "vad"  # speakers are told apart on speech segments
        frame_only = [k for k in FRAME_FIELDS if k in given(mapping, FRAME_FIELDS)]
        segmented = mode != "none" or turns is not None
        if segmented and granularity == "frame":
            how = f"segment={mode}" if turns is None and "segment" in values else ("a turns file" if turns else "speakers")
            raise OptionError(
                f"granularity=frame cannot be combined with {how}: a segmented recording gives one result per "
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
        if turns is not None:
            segment = SegmentOptions("none")  # the turns are the segments
        heads = parse_heads(values["head"]) if "head" in values else None
        labels = LabelSet.parse(values.get("labels"))
        return cls(granularity, embedding, segment, AnalysisOptions.from_fields(values), heads, speakers, turns, labels)

    def with_turns(self, turns: TurnsFile | None) -> RequestOptions:
        """This request on `turns` (None: each input's own, found beside it by the batch): the turns
        are the segments, with the speakers' names kept."""
        if self.granularity == "frame":
            raise OptionError("granularity=frame cannot be combined with a turns file: a turn gives one result; drop one.")
        names = self.speakers.names if self.speakers is not None else ()
        return replace(self, segment=SegmentOptions("none"), speakers=SpeakerOptions("turns", None, names), turns=turns)

    def to_dict(self) -> dict:
        return {
            "granularity": self.granularity,
            "extract_embedding": self.extract_embedding,
            "segment": self.segment.to_dict() if self.segment is not None else None,
            "analysis": self.analysis.to_dict(),
            "heads": None if self.heads is None else [getattr(h, "name", h) for h in self.heads],
            "speakers": self.speakers.to_dict() if self.speakers is not None else None,
            "turns": self.turns.name if self.turns is not None else None,
            "labels": self.labels.to_list() if self.labels is not None else None,
        }
