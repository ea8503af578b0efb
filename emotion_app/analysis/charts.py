"""Charts as matplotlib figures (Agg, no screen): shown on the page and saved as PNG (conversation,
radar, similarity, confusion; an output folder's scores.png and timeline.png: charts_png.py).

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

logger = logging.getLogger(__name__)

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "WenQuanYi Zen Hei", "SimHei", "PingFang SC")
EMOJI_FONTS = ("Symbola", "Noto Emoji", "Segoe UI Emoji")


@functools.lru_cache(maxsize=1)
def setup_fonts() -> tuple[bool, bool]:
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
    has_cjk, has_emoji = setup_fonts()
    label = LABEL_BY_KEY.get(key)
    if label is None:
        return key
    parts = [label.emoji] if has_emoji else []
    names = [label.zh, key] if lang == "zh" else [key, label.zh]
    parts += [n for n in names if has_cjk or n == key]
    return " ".join(parts)


def _figure(width: float, height: float, **kw):
    setup_fonts()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained", **kw)


def conversation_chart(segments: list[dict], duration_s: float, lang: str = "en", title: str = ""):
    """One lane per speaker (in order of first appearance): each segment a bar coloured by its
    emotion, so who speaks when, over whom (overlaps sit one above the other) and feeling what can be
    read at a glance; a legend of the emotions that occur."""
    from matplotlib.patches import Patch

    names = list(dict.fromkeys(s.get("speaker") for s in sorted(segments, key=lambda s: s["start"])))
    rows = {n: i for i, n in enumerate(names)}
    fig = _figure(9.6, 1.2 + 0.55 * max(1, len(names)))
    ax = fig.add_subplot()
    for s in segments:
        y = len(names) - 1 - rows[s.get("speaker")]
        ax.broken_barh([(s["start"], s["end"] - s["start"])], (y - 0.38, 0.76), color=COLORS.get(s["emotion"], "#888"), lw=0)
    ax.set_yticks(range(len(names)), [str(n) if n is not None else "?" for n in reversed(names)])
    ax.set_xlim(0, max(duration_s, max((s["end"] for s in segments), default=1.0)))
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.set_xlabel("time (s)" if lang == "en" else "时间（秒）")
    ax.spines[["top", "right"]].set_visible(False)
    present = list(dict.fromkeys(s["emotion"] for s in segments))
    handles = [Patch(color=COLORS.get(k, "#888"), label=chart_label(k, lang)) for k in present]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    return fig


def radar_chart(named: list[tuple[str, dict[str, float]]], lang: str = "en", title: str = ""):
    """Score distributions of several clips on one radar (one polygon per clip). The radius runs
    to just above the highest score, so small scores are not crammed at the centre."""
    keys = list(named[0][1]) if named else []
    angles = np.linspace(0, 2 * np.pi, len(keys), endpoint=False)
    top = max((max(p.values()) for _, p in named), default=1.0)
    rmax = min(1.0, max(0.1, np.ceil(top * 1.1 * 10) / 10))
    fig = _figure(7.2, 6.4)
    ax = fig.add_subplot(projection="polar")
    ax.tick_params(axis="x", pad=14)
    for name, probs in named:
        v = np.array([probs[k] for k in keys])
        ax.plot(np.append(angles, angles[0]), np.append(v, v[0]), lw=1.8, label=name)
        ax.fill(angles, v, alpha=0.12)
    ax.set_xticks(angles, [chart_label(k, lang) for k in keys], fontsize=9)
    ax.set_ylim(0, rmax)
    ticks = np.linspace(0, rmax, 5)[1:]
    ax.set_yticks(ticks, [f"{x * 100:.0f}%" for x in ticks], fontsize=8, color="#444")
    ax.set_rlabel_position(90 / max(1, len(keys)))
    if title:
        ax.set_title(title, pad=24)
    fig.legend(loc="outside lower center", ncols=min(3, max(1, len(named))), fontsize=9, frameon=False)
    return fig


def similarity_chart(names: list[str], matrix: np.ndarray, lang: str = "en", title: str = ""):
    """A cosine-similarity matrix as a heatmap with the values written in. The colour scale spans
    the values off the diagonal (to 1), so close similarities such as 0.96 and 0.99 differ."""
    n = len(names)
    off = matrix[~np.eye(n, dtype=bool)] if n > 1 else np.array([1.0])
    low = float(min(off.min(), 0.99))
    low = max(-1.0, low - 0.05 * (1 - low))
    fig = _figure(3.2 + 0.9 * n, 2.0 + 0.8 * n)
    ax = fig.add_subplot()
    im = ax.imshow(matrix, vmin=low, vmax=1, cmap="viridis")
    ax.set_xticks(range(n), names, rotation=30, ha="right", fontsize=9)
    ax.set_yticks(range(n), names, fontsize=9)
    middle, digits = (low + 1) / 2, 3 if low > 0.9 else 2  # close values get a third decimal
    for i in range(n):
        for j in range(n):
            color = "black" if matrix[i, j] > middle else "white"
            ax.text(j, i, f"{matrix[i, j]:.{digits}f}", ha="center", va="center", fontsize=9, color=color)
    bar = fig.colorbar(im, ax=ax, shrink=0.9, fraction=0.08, pad=0.04)
    bar.set_label("cosine similarity" if lang == "en" else "余弦相似度", fontsize=9)
    if title:
        ax.set_title(title)
    return fig


def confusion_chart(labels: list[str], matrix: np.ndarray, lang: str = "en", title: str = ""):
    """A confusion matrix (rows: true labels, columns: predicted) with counts and row shares."""
    n = len(labels)
    rows = matrix.sum(1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=np.float64), where=rows > 0)
    fig = _figure(2.4 + 0.8 * n, 1.8 + 0.7 * n)
    ax = fig.add_subplot()
    im = ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
    names = [chart_label(k, lang) for k in labels]
    ax.set_xticks(range(n), names, rotation=30, ha="right", fontsize=9)
    ax.set_yticks(range(n), names, fontsize=9)
    for i in range(n):
        for j in range(n):
            color = "white" if share[i, j] > 0.6 else "black"
            ax.text(j, i, f"{int(matrix[i, j])}\n{share[i, j] * 100:.0f}%", ha="center", va="center", fontsize=8, color=color)
    ax.set_xlabel("predicted" if lang == "en" else "预测")
    ax.set_ylabel("true" if lang == "en" else "真实")
    fig.colorbar(im, ax=ax, shrink=0.8, label="share of the row" if lang == "en" else "占该行比例")
    ax.set_title(title)
    return fig


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
