"""HTML of your own heads' readings (a Report's `heads`) for the Analyze tab: pure functions."""

from __future__ import annotations

import html

from ...analysis.report import Report
from ..i18n import t

HEAD_COLORS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac")


def head_label_html(key: str, info: dict, lang: str) -> str:
    """A custom head's label with its emoji and Chinese name when its labels.json gives them."""
    emoji = f'<span class="ea-emo">{html.escape(info["emoji"])}</span> ' if info.get("emoji") else ""
    names = [info["zh"], key] if lang == "zh" and info.get("zh") else [key, *([info["zh"]] if info.get("zh") else [])]
    return emoji + html.escape(" ".join(names))


def heads_html(report: Report, lang: str = "en") -> str:
    """Each custom head's reading: a small card with its top label and confidence, and its scores as
    bars, highest first ("" without heads)."""
    blocks = []
    for name, h in (report.heads or {}).items():
        infos, probabilities = h.labels or {}, h.probabilities or {}
        colours = {k: HEAD_COLORS[i % len(HEAD_COLORS)] for i, k in enumerate(infos)}
        rows = "".join(
            f'<div class="ea-head-row" style="display:flex;align-items:center;gap:8px;margin:3px 0">'
            f'<span class="ea-label">{head_label_html(k, infos.get(k, {}), lang)}</span>'
            f'<span class="ea-track"><span class="ea-bar" style="width:{p * 100:.2f}%;background:{colours[k]}"></span></span>'
            f'<span class="ea-pct">{p * 100:.1f}%</span></div>'
            for k, p in sorted(probabilities.items(), key=lambda kv: -kv[1])
        )
        top = h.emotion
        blocks.append(
            f'<div class="ea-head" data-head="{html.escape(name)}" '
            f'style="border:2px solid {colours[top]};border-radius:12px;padding:8px 12px;margin-top:10px">'
            f"<div><b>{html.escape(name)}</b>: {head_label_html(top, infos.get(top, {}), lang)} · "
            f"{t('confidence', lang)} <b>{h.confidence * 100:.1f}%</b></div>{rows}</div>"
        )
    return f'<div class="ea-heads">{"".join(blocks)}</div>' if blocks else ""
