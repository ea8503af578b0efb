"""scores.png: a result's scores as horizontal bars, highest on top, one fixed colour per emotion,
drawn with PIL on a canvas rather than as a matplotlib figure per request.

A figure took about 100 ms to lay out and draw (its texts above all) on every request of the page
and the REST API: most of a request's time with a fast model, and the web front's main cost. Here
the bars, axes and ticks are rectangles and lines, and each text is rendered once by matplotlib
(the same fonts and fallbacks as every chart: charts.chart_label) and kept: a chart takes a few ms.
"""

from __future__ import annotations

import functools
import io

from ..constants import label_color

WIDTH, HEIGHT, DPI = 640, 360, 100  # as the figures: 6.4 x 3.6 in at 100 dpi
LABEL_PT, VALUE_PT = 10, 9
TICK = 5  # px: a tick's length (3.5 pt)
GAP = 5  # px between a tick and its label (3.5 pt)
BLACK = (0, 0, 0, 255)
X_TICKS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@functools.lru_cache(maxsize=2048)  # the labels, the ticks and the values "0.0%" ... "100.0%": a few MB
def text_image(text: str, points: float):
    """`text` in black on a transparent ground, cropped to its layout box (as matplotlib aligns text)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    from .charts import _setup

    _setup()
    fig = Figure(figsize=(WIDTH / DPI * 2, 1.0), dpi=DPI)
    fig.patch.set_alpha(0)
    canvas = FigureCanvasAgg(fig)
    artist = fig.text(0.01, 0.5, text, fontsize=points, va="center")
    canvas.draw()
    box = artist.get_window_extent(canvas.get_renderer())
    rgba = np.asarray(canvas.buffer_rgba())
    height = rgba.shape[0]
    top, bottom = max(0, int(height - box.y1)), min(height, int(np.ceil(height - box.y0)))
    left, right = max(0, int(box.x0)), min(rgba.shape[1], int(np.ceil(box.x1)))
    return Image.fromarray(rgba[top:bottom, left:right].copy(), "RGBA")


def scores_png(probabilities: dict[str, float], lang: str = "en") -> bytes:
    """The bars of `probabilities` (label key -> probability, any number of labels) as PNG bytes."""
    from PIL import Image, ImageDraw

    from .charts import chart_label

    items = sorted(probabilities.items(), key=lambda kv: -kv[1])
    labels = [text_image(chart_label(k, lang), LABEL_PT) for k, _ in items]
    ticks = [text_image(f"{x:.1f}", LABEL_PT) for x in X_TICKS]
    title = text_image("probability" if lang == "en" else "概率", LABEL_PT)
    x0 = max((im.width for im in labels), default=0) + 2 * GAP + TICK  # the axes' left edge
    x1 = WIDTH - 2 * GAP - ticks[-1].width // 2  # ... and right edge, room for the last tick's label
    y0, y1 = GAP, HEIGHT - (GAP + TICK + GAP + ticks[0].height + title.height + GAP)  # top, the x axis
    image = Image.new("RGBA", (WIDTH, HEIGHT), (255, 255, 255, 255))
    draw = ImageDraw.Draw(image)

    def x_of(p: float) -> int:
        return round(x0 + min(max(p, 0.0), 1.0) * (x1 - x0))

    def put(text, x: int, y: int) -> None:  # `text`'s top left at (x, y), inside the canvas
        image.alpha_composite(text, (max(0, min(x, WIDTH - text.width)), max(0, min(y, HEIGHT - text.height))))

    pitch = (y1 - y0) / max(1, len(items))  # one row per label; the bar 0.8 of it, as matplotlib's barh
    for row, ((key, p), label) in enumerate(zip(items, labels)):
        middle = y0 + (row + 0.5) * pitch
        if p > 0:
            draw.rectangle((x0, round(middle - 0.4 * pitch), x_of(p), round(middle + 0.4 * pitch)), fill=label_color(key))
        draw.line((x0 - TICK, round(middle), x0, round(middle)), fill=BLACK)
        put(label, x0 - TICK - GAP - label.width, round(middle - label.height / 2))
        value = text_image(f"{p * 100:.1f}%", VALUE_PT)
        put(value, x_of(min(p, 0.88) + 0.01), round(middle - value.height / 2))
    draw.line((x0, y0, x0, y1), fill=BLACK)  # the left and bottom spines
    draw.line((x0, y1, x1, y1), fill=BLACK)
    for x, tick in zip(X_TICKS, ticks):
        draw.line((x_of(x), y1, x_of(x), y1 + TICK), fill=BLACK)
        put(tick, x_of(x) - tick.width // 2, y1 + TICK + GAP)
    put(title, (x0 + x1 - title.width) // 2, y1 + TICK + GAP + ticks[0].height)
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="png")
    return buf.getvalue()
