"""The output folder's charts as PNG, drawn with numpy and PIL rather than as a matplotlib figure per
request: scores.png (the scores as horizontal bars, highest on top) and timeline.png (frame mode:
the probabilities stacked over time, the dominant emotion as a band underneath, the segment
boundaries dashed), one fixed colour per emotion.

A figure took about 100 ms (scores) and 230-300 ms (timeline) to lay out and draw, its texts above
all, on every request of the page and the REST API: most of a request's time with a fast model,
and the web front's main cost. Here the stacked areas are filled column by column (each pixel takes
the colours of the shares it covers, so the edges are smooth), bars, axes and ticks are rectangles
and lines, each label, tick and title is rendered once by matplotlib (the fonts and fallbacks of
every chart: charts.chart_label) and kept, and the numbers on the bars are written by PIL.
"""

from __future__ import annotations

import functools
import io
import math
import threading

import numpy as np

from ..constants import FRAME_S, label_color

DPI = 100  # as the figures: their inches x 100 px
LABEL_PT, VALUE_PT, LEGEND_PT = 10, 9, 8
TICK = 5  # px: a tick's length (3.5 pt)
GAP = 5  # px between a tick and its label (3.5 pt)
BLACK = (0, 0, 0, 255)
WHITE = (255, 255, 255, 255)
SHARES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # the probability axis' ticks
LABEL_PX = 256  # the widest a label is drawn (a longer one is shortened with "…"): 40 % of scores.png


@functools.lru_cache(maxsize=512)  # the labels, the ticks, the axes' titles: a few MB at most
def text_image(text: str, points: float):
    """`text` in black on a transparent ground, cropped to its layout box (as matplotlib aligns text)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    from .charts import setup_fonts

    setup_fonts()
    fig = Figure(figsize=(12.8, 1.0), dpi=DPI)
    fig.patch.set_alpha(0)
    canvas = FigureCanvasAgg(fig)
    artist = fig.text(0.01, 0.5, text, fontsize=points, va="center", parse_math=False)
    canvas.draw()
    box = artist.get_window_extent(canvas.get_renderer())
    rgba = np.asarray(canvas.buffer_rgba())
    height = rgba.shape[0]
    top, bottom = max(0, int(height - box.y1)), min(height, int(np.ceil(height - box.y0)))
    left, right = max(0, int(box.x0)), min(rgba.shape[1], int(np.ceil(box.x1)))
    return Image.fromarray(rgba[top:bottom, left:right].copy(), "RGBA")


def fitted(text: str, points: float, most: int = LABEL_PX):
    """text_image of `text`, shortened with "…" to at most `most` px wide (a fine-tuned model's
    labels have no length limit)."""
    image, cut = text_image(text, points), len(text)
    while image.width > most and cut > 1:
        cut = max(1, min(cut - 1, cut * most // image.width))
        image = text_image(text[:cut] + "…", points)
    return image


_fonts = threading.local()  # a FreeType face is not for two threads at once: one per request thread


def digits_font(points: float):
    """DejaVu Sans (matplotlib's own font, always there) for the numbers written on each chart: drawn
    by PIL at once, where a value rendered by matplotlib cost 2-3 ms the first time it was seen."""
    fonts = _fonts.__dict__.setdefault("by_size", {})
    if points not in fonts:
        from matplotlib import font_manager
        from PIL import ImageFont

        fonts[points] = ImageFont.truetype(font_manager.findfont("DejaVu Sans"), points * DPI / 72)
    return fonts[points]


def finite(value: float) -> float:
    """`value`, or 0 where it is not a number (NaN, infinite): drawn as nothing."""
    return value if math.isfinite(value) else 0.0


def rgb(key: str) -> tuple[int, int, int]:
    color = label_color(key)
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


class Canvas:
    """A white image to draw on: PIL's lines and rectangles, and texts placed by their box."""

    def __init__(self, width: int, height: int):
        from PIL import Image, ImageDraw

        self.image = Image.new("RGBA", (width, height), WHITE)
        self.draw = ImageDraw.Draw(self.image)

    def put(self, text, x: float, y: float) -> None:
        """`text` (a text_image) with its top left at (x, y), kept inside the canvas."""
        x = max(0, min(round(x), self.image.width - text.width))
        y = max(0, min(round(y), self.image.height - text.height))
        self.image.alpha_composite(text, (x, y))

    def x_ticks(self, ticks: list[tuple[float, object]], y: int) -> None:
        """Tick marks down from the axis at `y`, each (x, text) with its text centred under it."""
        for x, text in ticks:
            self.draw.line((round(x), y, round(x), y + TICK), fill=BLACK)
            self.put(text, x - text.width / 2, y + TICK + GAP)

    def y_ticks(self, ticks: list[tuple[float, object]], x: int) -> None:
        """Tick marks left of the axis at `x`, each (y, text) with its text right-aligned before it."""
        for y, text in ticks:
            self.draw.line((x - TICK, round(y), x, round(y)), fill=BLACK)
            self.put(text, x - TICK - GAP - text.width, y - text.height / 2)

    def png(self) -> bytes:
        buf = io.BytesIO()
        self.image.convert("RGB").save(buf, format="png")
        return buf.getvalue()


def scores_png(probabilities: dict[str, float], lang: str = "en") -> bytes:
    """The bars of `probabilities` (label key -> probability, any number of labels), 640 x 360 px."""
    from .charts import chart_label

    items = sorted(((k, float(p)) for k, p in probabilities.items()), key=lambda kv: -finite(kv[1]))
    labels = [fitted(chart_label(k, lang), LABEL_PT) for k, _ in items]
    ticks = [text_image(f"{x:.1f}", LABEL_PT) for x in SHARES]
    title = text_image("probability" if lang == "en" else "概率", LABEL_PT)
    canvas = Canvas(640, 360)
    x0 = max((im.width for im in labels), default=0) + 2 * GAP + TICK  # the axes' left edge
    x1 = canvas.image.width - 2 * GAP - ticks[-1].width // 2  # ... and right edge, room for the last tick's label
    y0, y1 = GAP, canvas.image.height - (3 * GAP + TICK + ticks[0].height + title.height)  # top, the x axis

    def x_of(p: float) -> float:
        return x0 + min(max(finite(p), 0.0), 1.0) * (x1 - x0)

    pitch = (y1 - y0) / max(1, len(items))  # one row per label; the bar 0.8 of it, as matplotlib's barh
    middles = [y0 + (row + 0.5) * pitch for row in range(len(items))]
    for (key, p), middle in zip(items, middles):
        if finite(p) > 0:
            canvas.draw.rectangle((x0, round(middle - 0.4 * pitch), round(x_of(p)), round(middle + 0.4 * pitch)), fill=rgb(key))
        at = (round(x_of(min(finite(p), 0.88) + 0.01)), round(middle))
        canvas.draw.text(at, f"{p * 100:.1f}%", font=digits_font(VALUE_PT), fill=BLACK, anchor="lm")
    canvas.y_ticks(list(zip(middles, labels)), x0)
    canvas.draw.line((x0, y0, x0, y1), fill=BLACK)  # the left and bottom spines
    canvas.draw.line((x0, y1, x1, y1), fill=BLACK)
    canvas.x_ticks([(x_of(x), tick) for x, tick in zip(SHARES, ticks)], y1)
    canvas.put(title, (x0 + x1 - title.width) / 2, y1 + TICK + GAP + ticks[0].height)
    return canvas.png()


def time_ticks(end: float) -> list[float]:
    """The time axis' ticks from 0 to `end` s, at most 9 intervals of 1, 2, 2.5 or 5 x 10^k s
    (matplotlib's automatic ticks on a 9.6-inch axis)."""
    from matplotlib.ticker import MaxNLocator

    values = MaxNLocator(nbins=9, steps=[1, 2, 2.5, 5, 10]).tick_values(0.0, end)
    return [float(v) for v in values if -1e-9 <= v <= end * (1 + 1e-9)]


def columns(times: np.ndarray, probs: np.ndarray, end: float, width: int, frame_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(width, V) probabilities, one row per pixel column, and (width,) the frame at each column's
    middle. With fewer frames than columns, the frames' lines (points at `times`, as matplotlib's
    stackplot draws them) read at the columns' middles; else the mean of the frames in each column."""
    middles = (np.arange(width) + 0.5) * end / width
    nearest = np.clip(np.searchsorted(times + frame_s, middles, side="right"), 0, len(times) - 1)
    column = np.clip((times / end * width).astype(np.int64), 0, width - 1)
    counts = np.bincount(column, minlength=width)
    if len(times) >= width and counts.all():
        sums = np.stack([np.bincount(column, weights=probs[:, v], minlength=width) for v in range(probs.shape[1])], 1)
        return sums / counts[:, None], nearest
    return np.stack([np.interp(middles, times, probs[:, v]) for v in range(probs.shape[1])], 1), nearest


def stacked_areas(shares: np.ndarray, height: int, palette: np.ndarray) -> np.ndarray:
    """(height, width, 3) RGB of `shares` (width, V) stacked from the bottom: each pixel the mix of
    the colours whose band covers it, in proportion to the part covered, white above the stack."""
    top = (np.clip(np.cumsum(shares, axis=1), 0.0, 1.0) * height).astype(np.float32)  # (width, V), px from the bottom
    bottom = np.concatenate([np.zeros((len(shares), 1), np.float32), top[:, :-1]], axis=1)
    rows = np.arange(height, dtype=np.float32)[None, :, None]  # the pixel row [r, r + 1) from the bottom
    cover = np.minimum(top[:, None, :], rows + 1)
    cover -= np.maximum(bottom[:, None, :], rows)
    np.clip(cover, 0.0, 1.0, out=cover)  # (width, height, V): the part of each pixel each label covers
    mixed = cover @ palette.astype(np.float32)  # (width, height, 3)
    mixed += (1.0 - cover.sum(-1))[..., None] * 255.0
    return np.clip(mixed, 0, 255).astype(np.uint8).transpose(1, 0, 2)[::-1]


def dashed(area: np.ndarray, x: int) -> None:
    """A dashed vertical line in `area` (H, W, 3) at column `x`: black at 60 % over what is there."""
    if 0 <= x < area.shape[1]:
        on = (np.arange(area.shape[0]) % 6) < 4  # 4 px on, 2 off (matplotlib's "--" at 0.8 pt)
        area[on, x] = (area[on, x] * 0.4).astype(np.uint8)


def timeline_png(
    times: np.ndarray, probs: np.ndarray, labels, dominant: np.ndarray, boundaries=(), lang: str = "en", frame_s: float = FRAME_S
) -> bytes:
    """The frames' probabilities (T, V) at `times` stacked over time in the labels' order, the
    `dominant` (T,) label's colour as a band underneath, `boundaries` (s) dashed; 960 x 420 px."""
    from PIL import Image

    from .charts import chart_label

    times, dominant = np.asarray(times, dtype=np.float64), np.asarray(dominant)
    probs = np.nan_to_num(np.asarray(probs, dtype=np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    end = float(times[-1]) + frame_s if len(times) else 1.0
    en = lang == "en"
    names = [fitted(chart_label(k, lang), LEGEND_PT, LABEL_PX * 3 // 4) for k in labels]
    share_ticks = [text_image(f"{x:.1f}", LABEL_PT) for x in SHARES]
    seconds = time_ticks(end)
    second_ticks = [text_image(f"{x:g}", LABEL_PT) for x in seconds]
    ylabel = text_image("probability" if en else "概率", LABEL_PT).rotate(90, expand=True)
    xlabel = text_image("time (s)" if en else "时间（秒）", LABEL_PT)
    band_label = text_image("dominant" if en else "主要", LABEL_PT)
    canvas = Canvas(960, 420)
    patch = (20, 7)  # a legend entry's colour patch
    legend = patch[0] + GAP + max((im.width for im in names), default=0)
    x0 = max(3 * GAP + ylabel.width + max(im.width for im in share_ticks) + TICK, band_label.width + 2 * GAP)
    x1 = canvas.image.width - 3 * GAP - legend
    y0, y3 = GAP, canvas.image.height - (2 * GAP + TICK + second_ticks[0].height + xlabel.height)
    y1 = y0 + round((y3 - y0 - 3 * GAP) * 6 / 7)  # the areas' bottom; the band from y2 to y3 (6:1)
    y2 = y1 + 3 * GAP
    width = x1 - x0
    palette = np.array([rgb(k) for k in labels], dtype=np.float64)
    if len(times):
        shares, nearest = columns(times, probs, end, width, frame_s)
        areas = stacked_areas(shares, y1 - y0, palette)
        band = np.repeat(palette[dominant[nearest]].astype(np.uint8)[None], y3 - y2, axis=0)
    else:
        areas = np.full((y1 - y0, width, 3), 255, np.uint8)
        band = np.full((y3 - y2, width, 3), 255, np.uint8)
    for b in (b for b in boundaries if math.isfinite(b)):
        for area in (areas, band):
            dashed(area, int(b / end * width))
    canvas.image.paste(Image.fromarray(np.ascontiguousarray(areas)), (x0, y0))
    canvas.image.paste(Image.fromarray(np.ascontiguousarray(band)), (x0, y2))
    for box in ((x0, y0, x1, y1), (x0, y2, x1, y3)):
        canvas.draw.rectangle(box, outline=BLACK)
    canvas.y_ticks([(y1 - s * (y1 - y0), tick) for s, tick in zip(SHARES, share_ticks)], x0)
    canvas.put(ylabel, GAP, (y0 + y1 - ylabel.height) / 2)
    canvas.put(band_label, x0 - GAP - band_label.width, (y2 + y3 - band_label.height) / 2)
    at = [(x0 + s / end * width, tick) for s, tick in zip(seconds, second_ticks)]
    for x, _ in at:  # the areas' axis shares the time ticks, without their labels
        canvas.draw.line((round(x), y1, round(x), y1 + TICK), fill=BLACK)
    canvas.x_ticks(at, y3)
    canvas.put(xlabel, (x0 + x1 - xlabel.width) / 2, y3 + TICK + GAP + second_ticks[0].height)
    row = min(max((im.height for im in names), default=0) + 4, (y3 - y0) / max(1, len(names)))  # many labels: closer
    left = x1 + 2 * GAP
    for i, (key, name) in enumerate(zip(labels, names)):  # the legend, at the areas' top right
        middle = y0 + (i + 0.5) * row
        low, high = round(middle - patch[1] / 2), round(middle + patch[1] / 2)
        canvas.draw.rectangle((left, low, left + patch[0], high), fill=rgb(key))
        canvas.put(name, left + patch[0] + GAP, middle - name.height / 2)
    return canvas.png()
