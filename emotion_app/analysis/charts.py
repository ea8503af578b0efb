"""Charts as matplotlib figures (Agg, no screen): shown on the page and saved as PNG.

Labels carry the emoji and the Chinese name when a font on the machine has those glyphs
(Symbola, Noto Sans CJK: ./run.sh installs them); otherwise they fall back to the English name,
so a chart never shows missing-glyph boxes.
"""

from __future__ import annotations

import functools
import io
import logging

import numpy as np

from ..constants import COLORS, LABEL_BY_KEY
from .smoothing import runs

logger = logging.getLogger(__name__)

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "WenQuanYi Zen Hei", "SimHei", "PingFang SC")
EMOJI_FONTS = ("Symbola", "Noto Emoji", "Segoe UI Emoji")
MAX_POINTS = 2000  # timeline points drawn: block means beyond that


@functools.lru_cache(maxsize=1)
def _setup() -> tuple[bool, bool]:
    """Select the Agg backend and a font fallback chain; returns (has_cjk, has_emoji)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import font_manager, rcParams

    names = {f.name for f in font_manager.fontManager.ttflist}
    cjk = next((n for n in CJK_FONTS if n in names), None)
    emoji = next((n for n in EMOJI_FONTS if n in names), None)
    rcParams["font.family"] = ["DejaVu Sans", *([cjk] if cjk else []), *([emoji] if emoji else [])]
    rcParams["axes.unicode_minus"] = False
    if not (cjk and emoji):
        missing = [n for n, f in (("CJK", cjk), ("emoji", emoji)) if not f]
        logger.info("charts: no %s font; labels without them", " or ".join(missing))
    return cjk is not None, emoji is not None


def chart_label(key: str, lang: str = "en") -> str:
    has_cjk, has_emoji = _setup()
    label = LABEL_BY_KEY.get(key)
    if label is None:
        return key
    parts = [label.emoji] if has_emoji else []
    names = [label.zh, key] if lang == "zh" else [key, label.zh]
    parts += [n for n in names if has_cjk or n == key]
    return " ".join(parts)


def _figure(width: float, height: float, **kw):
    _setup()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained", **kw)


def scores_chart(probabilities: dict[str, float], lang: str = "en", title: str = ""):
    """Horizontal bars of the 9 scores, highest on top, one fixed colour per emotion."""
    items = sorted(probabilities.items(), key=lambda kv: kv[1])
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot()
    ax.barh([chart_label(k, lang) for k, _ in items], [p for _, p in items], color=[COLORS.get(k, "#888") for k, _ in items])
    for y, (_, p) in enumerate(items):
        ax.text(min(p, 0.88) + 0.01, y, f"{p * 100:.1f}%", va="center", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability" if lang == "en" else "概率")
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def _thin(times: np.ndarray, values: np.ndarray, dominant: np.ndarray):
    step = max(1, int(np.ceil(len(times) / MAX_POINTS)))
    if step == 1:
        return times, values, dominant
    n = len(times) // step * step
    return times[:n:step], values[:n].reshape(-1, step, values.shape[1]).mean(1), dominant[:n:step]


def timeline_chart(
    times: np.ndarray,
    probs: np.ndarray,
    labels,
    dominant: np.ndarray,
    boundaries=(),
    lang: str = "en",
    title: str = "",
    frame_s: float = 0.02,
):
    """Stacked areas of the per-frame probabilities over time, the dominant emotion as a coloured
    band underneath and the segment boundaries as dashed lines."""
    fig = _figure(9.6, 4.2)
    ax, band = fig.subplots(2, 1, sharex=True, height_ratios=[6, 1])
    t, p, d = _thin(np.asarray(times), np.asarray(probs), np.asarray(dominant))
    ax.stackplot(t, p.T, colors=[COLORS.get(k, "#888") for k in labels], labels=[chart_label(k, lang) for k in labels])
    end = float(times[-1]) + frame_s if len(times) else 1.0
    ax.set_xlim(0, end)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability" if lang == "en" else "概率")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    for a, b, k in _spans(np.asarray(dominant), frame_s):
        band.axvspan(a, b, color=COLORS.get(labels[k], "#888"), lw=0)
    for x in boundaries:
        for axis in (ax, band):
            axis.axvline(x, color="black", lw=0.8, ls="--", alpha=0.6)
    band.set_yticks([])
    band.set_xlabel("time (s)" if lang == "en" else "时间（秒）")
    band.set_ylabel("dominant" if lang == "en" else "主要", rotation=0, ha="right", va="center")
    return fig


def _spans(dominant: np.ndarray, frame_s: float):
    return [(a * frame_s, b * frame_s, k) for a, b, k in runs(dominant)]


def radar_chart(named: list[tuple[str, dict[str, float]]], lang: str = "en", title: str = ""):
    """Score distributions of several clips on one radar (one polygon per clip)."""
    keys = list(named[0][1]) if named else []
    angles = np.linspace(0, 2 * np.pi, len(keys), endpoint=False)
    fig = _figure(7.2, 6.0)
    ax = fig.add_subplot(projection="polar")
    ax.tick_params(axis="x", pad=12)
    for name, probs in named:
        v = np.array([probs[k] for k in keys])
        ax.plot(np.append(angles, angles[0]), np.append(v, v[0]), lw=1.8, label=name)
        ax.fill(angles, v, alpha=0.12)
    ax.set_xticks(angles, [chart_label(k, lang) for k in keys], fontsize=9)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    fig.legend(loc="outside lower center", ncols=min(4, max(1, len(named))), fontsize=9, frameon=False)
    return fig


def similarity_chart(names: list[str], matrix: np.ndarray, lang: str = "en", title: str = ""):
    """A cosine-similarity matrix as a heatmap with the values written in."""
    n = len(names)
    fig = _figure(2.2 + 0.9 * n, 1.6 + 0.8 * n)
    ax = fig.add_subplot()
    im = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(n), names, rotation=30, ha="right", fontsize=9)
    ax.set_yticks(range(n), names, fontsize=9)
    for i in range(n):
        for j in range(n):
            color = "white" if abs(matrix[i, j]) > 0.6 else "black"
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=9, color=color)
    fig.colorbar(im, ax=ax, shrink=0.8, label="cosine similarity" if lang == "en" else "余弦相似度")
    ax.set_title(title)
    return fig


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
