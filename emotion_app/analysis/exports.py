"""Exports of a frame analysis as text: frame table CSV, segments CSV / JSON, WebVTT track."""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from ..constants import FRAME_S, LABEL_BY_KEY


def _csv(header: list[str], rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def frames_csv(probs: np.ndarray, labels, smoothed_dominant: np.ndarray, frame_s: float = FRAME_S) -> str:
    """time (frame start, s), the 9 raw probabilities, raw dominant, smoothed dominant."""
    raw = probs.argmax(1) if len(probs) else []
    rows = (
        [f"{i * frame_s:.2f}", *(f"{p:.6f}" for p in row), labels[r], labels[s]]
        for i, (row, r, s) in enumerate(zip(probs, raw, smoothed_dominant))
    )
    return _csv(["time", *labels, "dominant", "smoothed_dominant"], rows)


def segments_csv(segments: list[dict]) -> str:
    """start, end, emotion, confidence, and the 9 scores when the segments carry them."""
    keys = list(segments[0].get("scores") or {}) if segments else []
    rows = (
        [f"{s['start']:.3f}", f"{s['end']:.3f}", s["emotion"], f"{s['confidence']:.4f}", *(s["scores"][k] for k in keys)]
        for s in segments
    )
    return _csv(["start", "end", "emotion", "confidence", *keys], rows)


def segments_json(segments: list[dict]) -> str:
    return json.dumps(segments, ensure_ascii=False, indent=1)


def vtt_time(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def segments_vtt(segments: list[dict]) -> str:
    """A WebVTT subtitle track: one cue per segment, '<emoji> <emotion> <中文> (<confidence>%)'."""
    cues = ["WEBVTT", ""]
    for i, s in enumerate(segments, 1):
        label = LABEL_BY_KEY.get(s["emotion"])
        text = f"{label.emoji} {s['emotion']} {label.zh}" if label else s["emotion"]
        cues += [str(i), f"{vtt_time(s['start'])} --> {vtt_time(s['end'])}", f"{text} ({s['confidence'] * 100:.0f}%)", ""]
    return "\n".join(cues)


def segment_files(segments: list[dict]) -> dict[str, str]:
    """segments.csv, segments.json and segments.vtt of an output folder."""
    return {
        "segments.csv": segments_csv(segments),
        "segments.json": segments_json(segments),
        "segments.vtt": segments_vtt(segments),
    }
