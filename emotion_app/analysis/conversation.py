"""Conversations: who felt what, when. Per-speaker readings and the conversation's shape from the
segments of a recording that carry a `speaker`; and the turns as CSV, WebVTT and SRT.

`conversation_report(segments, labels, duration_s)` gives (speakers, conversation) for result.json.
A segment is a dict with `start`, `end` (s), `speaker` (a name, or None when nobody was assigned),
`probabilities` (label -> probability), `emotion`, `confidence`, and optionally `text`, `channel`.
Pure functions, numpy only. Seconds are rounded to 3 decimals, shares and probabilities to 4.

Definitions (the constants are `ConversationOptions` fields, defaults in brackets):

- A speaker's speech is the union of their segments. talk_s: its length. share_of_talk: talk_s
  over the sum of all speakers' talk_s (so the shares add up to 1 even when people overlap).
- turns: how often the speaker took the floor: the runs of their stretches of speech (below) in
  order of start time, a run ending where another speaker's stretch starts. So a backchannel
  counts as a turn of its own, and the next stretch of the speaker it overlapped starts a new turn.
- emotion, confidence, probabilities: the talk-time-weighted mean of the speaker's segments'
  probabilities (each segment weighs its duration), its top label and that label's mean probability.
  share: for each label, the part of the speaker's talk time in segments whose top emotion it is.
- conversation talk_s: the union of all segments (speakers or not); silence_s: duration_s - talk_s;
  overlap_s: the time during which two or more speakers speak at once.
- An interruption of A by B: B starts speaking while A is speaking (strictly inside a stretch of
  A's speech), A stops within `interruption_s` [2.0 s] after B's start, and B is still speaking
  when A stops (B's stretch of speech ends after A's). `at` is B's start, `overlap_s` A's end minus
  B's start. A backchannel ("mm-hm") during which A goes on talking for longer than interruption_s,
  or that ends before A does, is no interruption. A stretch of speech is a speaker's segments
  merged where they touch or overlap.
- Escalation, per speaker: each segment's negative share is the sum of its probabilities of the
  `negative_labels` [angry, disgusted, fearful, sad] (those the model has). Over the speaker's
  segments in time order it is smoothed by a talk-time-weighted exponential moving average: the
  first segment sets the value, each next segment of duration d seconds moves it toward its own
  negative share by the fraction 1 - exp(-d / smoothing_s) [8 s] (smoothing_s 0: no smoothing),
  so that one short outburst moves it little and several seconds of negative speech move it
  far, whatever the segmentation (e.g. from 0.1, 8 s of speech with a negative share of 0.9 bring
  it to 0.1 + (1 - e^-1) x 0.8 = 0.61, in one segment or in four; 1 s brings it to 0.19). An
  escalation is the smoothed value rising from below `escalation_threshold` [0.5] to or above it;
  `from` and `to` are the smoothed values before and after that segment, `at` its start. After an
  escalation another one counts only once the value has fallen below escalation_threshold -
  `hysteresis` [0.1], so jitter around the threshold is one escalation. A speaker whose first
  segment is already at or above the threshold has not escalated (there is nothing to rise from);
  that speaker escalates once the value has fallen below escalation_threshold - hysteresis and
  risen to the threshold again.
"""

from __future__ import annotations

import bisect
import csv
import html
import io
import math
from dataclasses import asdict, dataclass

import numpy as np

from ..constants import LABEL_BY_KEY
from ..sentiment import DEFAULT_MAPPING
from .exports import vtt_time

# the default sentiment mapping's negative emotions (a user's sentiment_map changes the sentiment
# blocks, not what counts as an escalation: that stays comparable between runs)
NEGATIVE_LABELS = tuple(k for k, polarity in DEFAULT_MAPPING.items() if polarity == "negative")


@dataclass(frozen=True)
class ConversationOptions:
    """The constants of the definitions in the module docstring."""

    negative_labels: tuple[str, ...] = NEGATIVE_LABELS  # summed into a segment's negative share
    escalation_threshold: float = 0.5  # smoothed negative share that counts as escalated
    hysteresis: float = 0.1  # the value must fall below threshold - hysteresis before another escalation counts
    smoothing_s: float = 8.0  # s of the speaker's talk: time constant of the moving average; 0: none
    interruption_s: float = 2.0  # s: A must stop within this long after B starts for an interruption

    def __post_init__(self):
        labels = self.negative_labels
        if isinstance(labels, str) or not all(isinstance(k, str) and k for k in labels) or not labels:
            raise ValueError(f"negative_labels must be a non-empty list of label names, not {labels!r}")
        object.__setattr__(self, "negative_labels", tuple(dict.fromkeys(labels)))
        if not 0 < self.escalation_threshold < 1:
            raise ValueError(f"escalation_threshold must be between 0 and 1, not {self.escalation_threshold!r}")
        if not 0 <= self.hysteresis < self.escalation_threshold:
            raise ValueError(f"hysteresis must be from 0 to below escalation_threshold, not {self.hysteresis!r}")
        if not 0 <= self.smoothing_s <= 600:
            raise ValueError(f"smoothing_s must be from 0 to 600 s, not {self.smoothing_s!r}")
        if not 0 < self.interruption_s <= 60:
            raise ValueError(f"interruption_s must be above 0 and at most 60 s, not {self.interruption_s!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["negative_labels"] = list(self.negative_labels)
        return d


@dataclass(frozen=True)
class _Seg:
    start: float  # s
    end: float  # s
    speaker: str | None
    probabilities: np.ndarray  # (V,) in the order of `labels`
    emotion: str

    @property
    def duration(self) -> float:
        return self.end - self.start


def conversation_report(
    segments: list[dict], labels: tuple[str, ...], duration_s: float, options: ConversationOptions | None = None
) -> tuple[list[dict], dict]:
    """(speakers, conversation) of a recording's segments; see the module docstring for every number.

    speakers: one dict per speaker in order of first appearance: name, talk_s, share_of_talk,
    turns, segments, emotion, confidence, probabilities, share, interruptions (made),
    interrupted (suffered). conversation: duration_s, num_speakers, talk_s, silence_s, overlap_s,
    interruptions [{by, of, at, overlap_s}], escalations [{speaker, from, to, at}], options."""
    options = options or ConversationOptions()
    labels = tuple(labels)
    negative = [i for i, k in enumerate(labels) if k in options.negative_labels]
    if not negative:
        raise ValueError(f"none of the negative labels {list(options.negative_labels)} is among the labels {list(labels)}")
    if not (math.isfinite(duration_s) and duration_s >= 0):
        raise ValueError(f"duration_s must be 0 s or more, not {duration_s!r}")
    segs = sorted((_parsed(s, i, labels) for i, s in enumerate(segments)), key=lambda s: (s.start, s.end))
    names = list(dict.fromkeys(s.speaker for s in segs if s.speaker is not None))
    own = {n: [s for s in segs if s.speaker == n] for n in names}
    speech = {n: _union([(s.start, s.end) for s in own[n]]) for n in names}
    interruptions = _interruptions(speech, options.interruption_s)
    talk = {n: _length(speech[n]) for n in names}
    total_talk = sum(talk.values())
    turns = _turns(speech)

    speakers = []
    for n in names:
        probs, share = _weighted(own[n], labels)
        top = int(np.argmax(probs))
        speakers.append(
            {
                "name": n,
                "talk_s": round(talk[n], 3),
                "share_of_talk": round(talk[n] / total_talk, 4) if total_talk else 0.0,
                "turns": turns[n],
                "segments": len(own[n]),
                "emotion": labels[top],
                "confidence": round(float(probs[top]), 4),
                "probabilities": {k: round(float(p), 4) for k, p in zip(labels, probs)},
                "share": share,
                "interruptions": sum(1 for i in interruptions if i["by"] == n),
                "interrupted": sum(1 for i in interruptions if i["of"] == n),
            }
        )
    talk_all = _length(_union([(s.start, s.end) for s in segs]))
    escalations = sorted(
        (e for n in names for e in _escalations(own[n], negative, options)), key=lambda e: (e["at"], names.index(e["speaker"]))
    )
    conversation = {
        "duration_s": round(duration_s, 3),
        "num_speakers": len(names),
        "talk_s": round(talk_all, 3),
        "silence_s": round(max(duration_s - talk_all, 0.0), 3),
        "overlap_s": round(_overlap(speech), 3),
        "interruptions": interruptions,
        "escalations": escalations,
        "options": options.to_dict(),
    }
    return speakers, conversation


def _parsed(s: dict, i: int, labels: tuple[str, ...]) -> _Seg:
    try:
        start, end = float(s["start"]), float(s["end"])
        probs = s["probabilities"]
        p = np.array([float(probs[k]) for k in labels], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"segment {i} needs start, end (s) and probabilities of {', '.join(labels)} ({e!r})") from e
    if not (math.isfinite(start) and math.isfinite(end) and end >= start):
        raise ValueError(f"segment {i}: start {start!r} and end {end!r} must be seconds with end >= start")
    speaker = s.get("speaker")
    speaker = None if speaker is None or not str(speaker).strip() else str(speaker)
    emotion = s.get("emotion") or labels[int(np.argmax(p))]
    return _Seg(start, end, speaker, p, emotion)


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted, disjoint intervals covering the spans; touching spans merge."""
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _length(spans: list[tuple[float, float]]) -> float:
    return float(sum(b - a for a, b in spans))


def _overlap(speech: dict[str, list[tuple[float, float]]]) -> float:
    """Seconds during which two or more speakers speak (each speaker's speech already a disjoint union)."""
    events = sorted((t, d) for spans in speech.values() for a, b in spans for t, d in ((a, 1), (b, -1)))  # ends first at a tie
    total, active, last = 0.0, 0, 0.0
    for t, d in events:
        if active >= 2:
            total += t - last
        active, last = active + d, t
    return total


def _turns(speech: dict[str, list[tuple[float, float]]]) -> dict[str, int]:
    """Runs of each speaker's stretches of speech in order of start."""
    order = sorted((a, n) for n, spans in speech.items() for a, _ in spans)
    turns = dict.fromkeys(speech, 0)
    previous = None
    for _, n in order:
        if n != previous:
            turns[n] += 1
        previous = n
    return turns


def _interruptions(speech: dict[str, list[tuple[float, float]]], within_s: float) -> list[dict]:
    """Each speaker's stretches of speech are disjoint and sorted, so the only stretch of A that can
    hold B's start is A's last one starting before it."""
    starts = {n: [a for a, _ in spans] for n, spans in speech.items()}
    found = []
    for by, spans_b in speech.items():
        for b0, b1 in spans_b:
            for of, spans_a in speech.items():
                j = bisect.bisect_left(starts[of], b0) - 1
                if of == by or j < 0:
                    continue
                a0, a1 = spans_a[j]
                if a0 < b0 < a1 <= b0 + within_s and b1 > a1:
                    found.append({"by": by, "of": of, "at": round(b0, 3), "overlap_s": round(a1 - b0, 3)})
    return sorted(found, key=lambda i: (i["at"], i["by"], i["of"]))


def _weighted(segs: list[_Seg], labels: tuple[str, ...]) -> tuple[np.ndarray, dict[str, float]]:
    """Talk-time-weighted mean probabilities, and each label's share of the talk time by top emotion."""
    w = np.array([s.duration for s in segs], dtype=np.float64)
    if w.sum() <= 0:  # only zero-length segments: each counts the same
        w = np.ones(len(segs))
    probs = (np.stack([s.probabilities for s in segs]) * w[:, None]).sum(0) / w.sum()
    share = dict.fromkeys(labels, 0.0)
    for s, weight in zip(segs, w):
        share[s.emotion] = share.get(s.emotion, 0.0) + weight
    return probs, {k: round(v / w.sum(), 4) for k, v in share.items()}


def _negative_curve(segs: list[_Seg], negative: list[int], smoothing_s: float) -> np.ndarray:
    """The smoothed negative share after each of one speaker's segments (in time order)."""
    out, y = [], None
    for s in segs:
        x = float(s.probabilities[negative].sum())
        if y is None or smoothing_s == 0:
            y = x
        else:
            y += (1.0 - math.exp(-max(s.duration, 0.0) / smoothing_s)) * (x - y)
        out.append(y)
    return np.array(out)


def _escalations(segs: list[_Seg], negative: list[int], options: ConversationOptions) -> list[dict]:
    curve = _negative_curve(segs, negative, options.smoothing_s)
    threshold, rearm = options.escalation_threshold, options.escalation_threshold - options.hysteresis
    found, armed = [], bool(len(curve)) and curve[0] < threshold
    for i in range(1, len(curve)):
        if armed and curve[i] >= threshold:
            found.append(
                {
                    "speaker": segs[i].speaker,
                    "from": round(float(curve[i - 1]), 3),
                    "to": round(float(curve[i]), 3),
                    "at": round(segs[i].start, 3),
                }
            )
            armed = False
        elif not armed and curve[i] < rearm:
            armed = True
    return found


# ---------------------------------------------------------------------------------------------
# exports


def _in_order(segments: list[dict]) -> list[dict]:
    return sorted(segments, key=lambda s: (s["start"], s["end"]))


def _confidence(s: dict) -> float:
    if s.get("confidence") is not None:
        return float(s["confidence"])
    return float(max(s["probabilities"].values()))


def _one_line(text) -> str:
    return " ".join(str(text or "").split())


def turns_csv(segments: list[dict], labels) -> str:
    """speaker, start, end (s), text, emotion, confidence, the labels' scores (3 decimals): a row per segment, in time order."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["speaker", "start", "end", "text", "emotion", "confidence", *labels])
    for s in _in_order(segments):
        scores = s.get("scores") or {k: round(float(p), 3) for k, p in s["probabilities"].items()}
        w.writerow(
            [
                s.get("speaker") or "",
                f"{s['start']:.3f}",
                f"{s['end']:.3f}",
                _one_line(s.get("text")),
                s["emotion"],
                f"{_confidence(s):.4f}",
                *(scores.get(k, "") for k in labels),
            ]
        )
    return buf.getvalue()


def conversation_vtt(segments: list[dict]) -> str:
    """WebVTT, one cue per segment in time order: `<v Speaker>😠 angry 生气 (87%)`, then the text when known.
    speakers.turns.read_turns reads it back (speaker, times; its text is the emotion line and the text)."""
    cues = ["WEBVTT", ""]
    for i, s in enumerate(_in_order(segments), 1):
        label = LABEL_BY_KEY.get(s["emotion"])
        reading = f"{label.emoji} {s['emotion']} {label.zh}" if label else s["emotion"]
        reading = html.escape(f"{reading} ({_confidence(s) * 100:.0f}%)", quote=False)
        speaker = _one_line(s.get("speaker"))
        voice = f"<v {html.escape(speaker, quote=False)}>" if speaker else ""
        text = html.escape(_one_line(s.get("text")), quote=False)
        cues += [str(i), f"{vtt_time(s['start'])} --> {vtt_time(s['end'])}", voice + reading, *([text] if text else []), ""]
    return "\n".join(cues)


def srt_time(seconds: float) -> str:
    """hh:mm:ss,ttt."""
    return vtt_time(seconds).replace(".", ",")


def conversation_srt(segments: list[dict]) -> str:
    """SRT, one subtitle per segment in time order: `Speaker: angry (87%)`, then the text when known.
    speakers.turns.read_turns reads the speaker back when the name is name-like (e.g. S1, SPEAKER_00, Ann Lee)."""
    blocks = []
    for i, s in enumerate(_in_order(segments), 1):
        speaker = _one_line(s.get("speaker"))
        reading = f"{s['emotion']} ({_confidence(s) * 100:.0f}%)"
        text = _one_line(s.get("text")).replace("-->", "->")
        lines = [str(i), f"{srt_time(s['start'])} --> {srt_time(s['end'])}", f"{speaker}: {reading}" if speaker else reading]
        blocks.append("\n".join([*lines, *([text] if text else [])]) + "\n")
    return "\n".join(blocks)


def conversation_files(segments: list[dict], labels, duration_s: float, charts: bool = True, lang: str = "en") -> dict:
    """A conversation's files in an output folder: turns.csv, conversation.vtt, conversation.srt and
    (with `charts`) conversation.png, one lane per speaker."""
    files: dict[str, str | bytes] = {
        "turns.csv": turns_csv(segments, labels),
        "conversation.vtt": conversation_vtt(segments),
        "conversation.srt": conversation_srt(segments),
    }
    if charts and segments:
        from . import charts as drawing

        files["conversation.png"] = drawing.png_bytes(drawing.conversation_chart(segments, duration_s, lang))
    return files
