"""The Live tab's views: pure functions of the last hop, the chart history and the segments.

The strip chart is an inline SVG drawn here (nine polylines over the last 60 s), which is light
enough to redraw at every hop and needs no plotting round trip.
"""

from __future__ import annotations

import html

import numpy as np

from ...analysis.report import Report
from ...constants import COLORS, LABEL_BY_KEY
from ...live.session import Hop, Run
from ...results import label_of
from ..i18n import t
from .render import sentiment_line

CHART_W, CHART_H = 720, 180  # SVG user units
SEGMENT_ROWS = 8  # the latest segments listed under the band


def _label(key: str, lang: str) -> str:
    label = label_of(key)
    names = f"{label.zh} {key}" if lang == "zh" else f"{key} {label.zh}"
    return f'<span class="ea-emo">{label.emoji}</span> {html.escape(names)}'


def meter_html(latest: Hop | None, lang: str = "en", sentiment=None) -> str:
    """The current (smoothed) emotion, its confidence, and the last window's own reading; with
    `sentiment` (sentiment.py), the meter's sentiment."""
    if latest is None:
        return f'<div class="ea-card ea-live-meter" data-hop="-1"><div class="ea-note">{t("live_waiting", lang)}</div></div>'
    emotion = latest.smoothed_emotion
    label = label_of(emotion)
    mood = sentiment.of(dict(zip(latest.labels, map(float, latest.smoothed)))) if sentiment is not None else None
    raw = f"{t('live_this_window', lang)}: {_label(latest.emotion, lang)} {latest.confidence * 100:.0f}%"
    return (
        f'<div class="ea-card ea-live-meter" data-hop="{latest.index}" data-t-end="{round(latest.t_end, 3)}" '
        f'style="border-color:{COLORS.get(emotion, "#888")}">'
        f'<div class="ea-emoji ea-emo">{label.emoji}</div>'
        f'<div class="ea-names"><span class="ea-zh">{html.escape(label.zh)}</span> '
        f'<span class="ea-en">{html.escape(emotion)}</span></div>'
        f'<div class="ea-conf">{t("confidence", lang)} <b>{latest.smoothed_confidence * 100:.1f}%</b></div>'
        f"{sentiment_line(mood, lang)}"
        f'<div class="ea-note">{raw} · {latest.t_start:.1f}-{latest.t_end:.1f} s</div></div>'
    )


def chart_html(history, labels, span_s: float, lang: str = "en") -> str:
    """The smoothed scores of the hops in `history` [(t_end, (V,) scores)] over the last `span_s`."""
    points = list(history)
    title = f'<div class="ea-note">{t("live_chart", lang, span=f"{span_s:g}")}</div>'
    if not points:
        return f'{title}<svg class="ea-live-chart" data-points="0" viewBox="0 0 {CHART_W} {CHART_H}"></svg>'
    t_last = points[-1][0]
    t0 = max(0.0, t_last - span_s)
    scale = CHART_W / max(span_s, 1e-9)
    times = np.array([p[0] for p in points if p[0] >= t0])
    scores = np.stack([p[1] for p in points if p[0] >= t0])  # (N, V)
    xs = (times - t0) * scale
    lines = []
    for k, key in enumerate(labels):
        ys = (1.0 - scores[:, k]) * (CHART_H - 4) + 2
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
        lines.append(
            f'<polyline data-emotion="{html.escape(key)}" points="{path}" fill="none" '
            f'stroke="{COLORS.get(key, "#888")}" stroke-width="2"><title>{html.escape(key)}</title></polyline>'
        )
    grid = "".join(
        f'<line x1="0" x2="{CHART_W}" y1="{(1 - v) * (CHART_H - 4) + 2:.1f}" y2="{(1 - v) * (CHART_H - 4) + 2:.1f}" '
        'stroke="rgba(127,127,127,.25)" stroke-width="1"/>'
        for v in (0.0, 0.5, 1.0)
    )
    legend = "".join(
        f'<span class="ea-key"><span class="ea-dot" style="background:{COLORS.get(k, "#888")}"></span>{_label(k, lang)}</span>'
        for k in labels
        if k in LABEL_BY_KEY
    )
    axis = f'<div class="ea-axis"><span>{t0:.1f} s</span><span>{t_last:.1f} s</span></div>'
    svg = (
        f'<svg class="ea-live-chart" data-points="{len(times)}" viewBox="0 0 {CHART_W} {CHART_H}" '
        f'preserveAspectRatio="none" style="width:100%;height:{CHART_H}px">{grid}{"".join(lines)}</svg>'
    )
    return f'{title}{svg}{axis}<div class="ea-legend">{legend}</div>'


def segments_html(segments: list[Run], lang: str = "en") -> str:
    """The segments so far as a band over the take, and the latest ones as a table."""
    if not segments:
        return ""
    total = segments[-1].end or 1.0
    band = "".join(
        f'<span class="ea-seg" title="{html.escape(s.emotion)} {s.start:.1f}-{s.end:.1f} s" '
        f'style="left:{s.start / total * 100:.3f}%;width:{(s.end - s.start) / total * 100:.3f}%;'
        f'background:{COLORS.get(s.emotion, "#888")}"></span>'
        for s in segments
    )
    head = "".join(f"<th>{t(k, lang)}</th>" for k in ("live_col_start", "live_col_end", "live_col_emotion", "confidence"))
    rows = "".join(
        f"<tr><td>{s.start:.1f}</td><td>{s.end:.1f}</td><td>{_label(s.emotion, lang)}</td><td>{s.confidence * 100:.0f}%</td></tr>"
        for s in reversed(segments[-SEGMENT_ROWS:])
    )
    return (
        f'<div class="ea-note">{t("live_segments", lang, n=len(segments))}</div>'
        f'<div class="ea-band ea-live-band">{band}</div>'
        f'<table class="ea-live-segments"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
    )


def status_html(seconds: float, limit_s: float, hops: int, latest: Hop | None, limit_reached: bool, lang: str = "en") -> str:
    """One line: how long the take is, hops scored, the last hop's server latency."""
    if limit_reached:
        return f'<div class="ea-warning">{t("live_limit", lang, minutes=f"{limit_s / 60:g}")}</div>'
    latency = f"{latest.latency_ms:.0f}" if latest else "-"
    text = t("live_status", lang, seconds=f"{seconds:.1f}", limit=f"{limit_s:g}", hops=hops, latency=latency)
    slowed = latest is not None and latest.slowed
    if slowed:  # the server stretched the hops: it is loaded, and the meter reads less often
        text += f' · <span class="ea-warning ea-live-slowed">{t("live_slowed", lang, hop=f"{latest.hop_s:.1f}")}</span>'
    return (
        f'<div class="ea-note ea-live-status" data-hops="{hops}" data-seconds="{seconds:.2f}" '
        f'data-slowed="{int(slowed)}">● {text}</div>'
    )


def take_log(report: Report, lang: str = "en") -> str:
    """The whole take's reading and where it was written, for the log box."""
    lines = [f"{t('live_take', lang)}: {report.duration_s:.2f} s"]
    if report.emotion:
        label = report.label
        lines.append(f"{label.emoji} {report.emotion} {label.zh} ({report.confidence * 100:.1f}%)")
    lines.append(f"{t('live_folder', lang)}: {report.output_dir}")
    return "\n".join(lines)
