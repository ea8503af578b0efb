"""Charts for the page as HTML: the frame timeline as an inline SVG, and matplotlib figures as PNG
images with real alt text.

The timeline is drawn here rather than by gr.LinePlot: Gradio 6.31's plot drops its lines when its
data is replaced by data with other category names (the language switch), cannot label a time
axis in m:ss, and garbles emoji in its legend. The SVG stretches to the page width (lines keep
their width), its axes are HTML, and hovering a column shows the time and every emotion's
probability there (an SVG <title> per column, which screen readers read as well).
"""

from __future__ import annotations

import base64
import html

import numpy as np

from ...analysis.report import Report
from ...constants import FRAME_S, label_color
from ..i18n import t
from .render import clock, duration_text, label_text, legend_key, time_axis

WIDTH, HEIGHT = 1000, 240  # the SVG's own coordinates; it is stretched to the page
MAX_POINTS = 800  # per line: block means beyond that
COLUMNS = 160  # hover columns across the plot
SHOWN = 0.05  # an emotion gets a line once its probability reaches this somewhere


def _thin(probs: np.ndarray) -> tuple[np.ndarray, int]:
    """Block means of at most MAX_POINTS rows, and the block length in frames."""
    step = max(1, int(np.ceil(len(probs) / MAX_POINTS)))
    n = len(probs) // step * step
    thin = probs[:n].reshape(-1, step, probs.shape[1]).mean(1) if n else probs
    if n < len(probs):
        thin = np.vstack([thin, probs[n:].mean(0, keepdims=True)])
    return thin, step


def timeline_html(report: Report | None, lang: str = "en", view: str = "smoothed") -> str:
    """The per-frame scores over time (`view`: smoothed or raw): one line per emotion that reaches
    5 %, hover columns with the values, an m:ss axis and a legend of the lines. Empty without frames."""
    probs = report.frame_probabilities(view) if report is not None else None
    if probs is None or not len(probs):
        return ""
    probs, labels, duration = np.asarray(probs, dtype=np.float64), list(report.labels), report.duration_s or len(probs) * FRAME_S
    thin, step = _thin(probs)
    frame_s = duration / len(probs)
    times = (np.arange(len(thin)) * step + step / 2) * frame_s
    shown = [i for i in np.argsort(-probs.mean(0)) if probs[:, i].max() >= SHOWN]
    x = np.clip(times / duration, 0, 1) * WIDTH
    lines = "".join(
        f'<polyline class="ea-line" data-emotion="{html.escape(labels[i])}" stroke="{label_color(labels[i])}" points="'
        + " ".join(f"{a:.1f},{(1 - p) * HEIGHT:.1f}" for a, p in zip(x, thin[:, i]))
        + '"/>'
        for i in shown
    )
    grid = "".join(f'<line class="ea-grid" x1="0" x2="{WIDTH}" y1="{y}" y2="{y}"/>' for y in (0, HEIGHT / 2, HEIGHT))
    top = ", ".join(label_text(labels[i], lang) for i in shown[:3])
    alt = t("timeline_alt", lang, duration=duration_text(duration, lang), top=top)
    svg = (
        f'<svg class="ea-svg" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" role="img" '
        f'aria-label="{html.escape(alt)}">{grid}{lines}{_columns(probs, labels, shown, duration, lang)}</svg>'
    )
    legend = "".join(legend_key(labels[i], lang) for i in shown)
    return (
        f'<figure class="ea-timeline"><figcaption>{t("timeline", lang)}</figcaption>'
        f'<div class="ea-plot"><div class="ea-yaxis" aria-hidden="true"><span>100%</span><span>50%</span><span>0%</span></div>'
        f'<div class="ea-area">{svg}{time_axis(duration)}</div></div>'
        f'<div class="ea-axis-title" aria-hidden="true">{t("axis_time", lang)} (m:ss) · '
        f'{t("axis_probability", lang)}</div><div class="ea-legend">{legend}</div></figure>'
    )


def _columns(probs: np.ndarray, labels: list[str], shown: list[int], duration: float, lang: str) -> str:
    """Transparent hover columns, each titled with its time and the probabilities of the lines."""
    n = min(COLUMNS, len(probs))
    edges = np.linspace(0, len(probs), n + 1).astype(int)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        mean = probs[a:b].mean(0)
        start, end = a / len(probs) * duration, b / len(probs) * duration
        values = " · ".join(f"{label_text(labels[i], lang)} {mean[i] * 100:.0f}%" for i in sorted(shown, key=lambda i: -mean[i]))
        x0, w = start / duration * WIDTH, (end - start) / duration * WIDTH
        out.append(
            f'<rect class="ea-col" x="{x0:.1f}" y="0" width="{w:.2f}" height="{HEIGHT}">'
            f"<title>{clock(start)}–{clock(end)}: {html.escape(values)}</title></rect>"
        )
    return "".join(out)


def image_html(png: bytes, alt: str, caption: str) -> str:
    """A PNG as an <img> with its alt text, under a caption."""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure class="ea-figure"><figcaption>{html.escape(caption)}</figcaption>'
        f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}"></figure>'
    )
