"""Mono diarization: who speaks when, from speaker embeddings of windows of the speech segments.

FunASR's speaker pipeline, natively: each VAD segment is cut into 1.5 s windows every 0.75 s
(`SpeakerModel.window_ranges`, as FunASR's sv_chunk), each window gets a CAM++ embedding, all
windows of the recording are clustered into speakers (cluster.py), and each segment is split where
its windows' speaker changes, at the middle of the two windows' overlap. A stretch shorter than
`MIN_TURN_S` between two changes is given to the speaker before it (one short window is more often
noise than a turn). Speakers are numbered in order of first appearance.

`turns_of(spans, windows, labels)` is the pure part: spans and window positions in samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..constants import SAMPLE_RATE

MIN_TURN_S = 1.0  # a speaker change that lasts less than this is not a turn


@dataclass(frozen=True)
class Window:
    """One embedded window: of segment `segment` (an index into the spans), samples [start, end)."""

    segment: int
    start: int
    end: int


def turns_of(
    spans: list[tuple[int, int]], windows: list[Window], labels: np.ndarray, min_turn_s: float = MIN_TURN_S
) -> list[tuple[int, int, int]]:
    """(start, end, speaker) turns in samples: each span cut where its windows' labels change, the
    speakers renumbered 0, 1, ... in order of first appearance. A span without windows keeps the
    label of the nearest window before it (or after it)."""
    by_segment: dict[int, list[tuple[Window, int]]] = {}
    for w, label in zip(windows, labels):
        by_segment.setdefault(w.segment, []).append((w, int(label)))
    turns: list[tuple[int, int, int]] = []
    last_label = int(labels[0]) if len(labels) else 0
    min_turn = int(min_turn_s * SAMPLE_RATE)
    for k, (a, b) in enumerate(spans):
        ws = sorted(by_segment.get(k, []), key=lambda item: item[0].start)
        if not ws:
            turns.append((a, b, last_label))
            continue
        cuts = [a]
        owners = [ws[0][1]]
        for (w0, l0), (w1, l1) in zip(ws, ws[1:]):
            if l1 != l0:
                cuts.append(int(min(max((w1.start + min(w0.end, b)) // 2, a), b)))
                owners.append(l1)
        cuts.append(b)
        pieces = [(cuts[i], cuts[i + 1], owners[i]) for i in range(len(owners)) if cuts[i + 1] > cuts[i]]
        merged: list[tuple[int, int, int]] = []
        for start, end, who in pieces:
            if merged and (merged[-1][2] == who or end - start < min_turn):
                merged[-1] = (merged[-1][0], end, merged[-1][2])
            elif not merged and end - start < min_turn and len(pieces) > 1:
                merged.append((start, end, pieces[1][2]))  # a short first piece joins the next speaker
            else:
                merged.append((start, end, who))
        turns.extend(merged)
        last_label = merged[-1][2]
    return _renumbered(turns)


def _renumbered(turns: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    order: dict[int, int] = {}
    for _, _, who in sorted(turns):
        order.setdefault(who, len(order))
    return [(a, b, order[who]) for a, b, who in turns]
