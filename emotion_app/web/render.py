"""HTML and table views of a result for the page: pure functions of result.json's dict."""

from __future__ import annotations

import html

import numpy as np

from ..constants import COLORS, LABEL_BY_KEY, LABEL_KEYS
from .i18n import t, warning_message

MAX_TIMELINE_POINTS = 1500  # per emotion: enough for the eye, light for the browser


def label_text(key: str, lang: str) -> str:
    label = LABEL_BY_KEY[key]
    return f"{label.emoji} {label.zh} {key}" if lang == "zh" else f"{label.emoji} {key} {label.zh}"


def label_html(key: str, lang: str) -> str:
    """label_text with the emoji in its own span, so it gets a colour-emoji font."""
    label = LABEL_BY_KEY[key]
    names = f"{label.zh} {key}" if lang == "zh" else f"{key} {label.zh}"
    return f'<span class="ea-emo">{label.emoji}</span> {html.escape(names)}'


def emotion_card(result: dict, lang: str = "en") -> str:
    if not result.get("emotion"):  # a recording without speech
        notes = "".join(
            f'<div class="ea-warning">{html.escape(warning_message(w["code"], w["message"], lang))}</div>'
            for w in result.get("warnings", [])
        )
        return f'<div class="ea-card">{notes}</div>'
    key = result["emotion"]
    label = LABEL_BY_KEY[key]
    warnings = "".join(
        f'<div class="ea-warning"><span class="ea-emo">⚠️</span> {html.escape(warning_message(w["code"], w["message"], lang))}'
        "</div>"
        for w in result.get("warnings", [])
    )
    return (
        f'<div class="ea-card" style="border-color:{COLORS[key]}">'
        f'<div class="ea-emoji ea-emo">{label.emoji}</div>'
        f'<div class="ea-names"><span class="ea-zh">{label.zh}</span> <span class="ea-en">{key}</span></div>'
        f'<div class="ea-conf">{t("confidence", lang)} <b>{result["confidence"] * 100:.1f}%</b></div>'
        f"{mixed_line(result, lang)}{warnings}</div>"
    )


def mixed_line(result: dict, lang: str = "en") -> str:
    m = result.get("mixed")
    if not m:
        return ""
    if m["mixed"]:
        names = " + ".join(label_html(k, lang) for k in m["emotions"])
        return f'<div class="ea-mixed">{t("mixed", lang)}: {names} ({t("margin", lang)} {m["margin"] * 100:.1f}%)</div>'
    return f'<div class="ea-mixed">{t("margin", lang)}: {m["margin"] * 100:.1f}%</div>'


def score_bars(result: dict, lang: str = "en") -> str:
    """All 9 scores as horizontal bars, sorted by score (full-precision probabilities)."""
    probs = sorted(result["probabilities"].items(), key=lambda kv: -kv[1])
    rows = "".join(
        f'<div class="ea-row" data-emotion="{k}"><span class="ea-label">{label_html(k, lang)}</span>'
        f'<span class="ea-track"><span class="ea-bar" style="width:{p * 100:.2f}%;background:{COLORS[k]}"></span></span>'
        f'<span class="ea-pct">{p * 100:.1f}%</span></div>'
        for k, p in probs
    )
    return f'<div class="ea-scores">{rows}</div>'


def segments(result: dict) -> list[tuple[float, float, str]]:
    """(start, end, emotion) runs: the smoothed segments, or runs of the raw frame emotions."""
    if result.get("segments") is not None:
        return [(s["start"], s["end"], s["emotion"]) for s in result["segments"]]
    runs: list[tuple[float, float, str]] = []
    for f in result.get("frames") or []:
        if runs and runs[-1][2] == f["emotion"]:
            runs[-1] = (runs[-1][0], f["end"], f["emotion"])
        else:
            runs.append((f["start"], f["end"], f["emotion"]))
    return runs


def dominant_band(result: dict, lang: str = "en") -> str:
    """The dominant emotion over time as coloured spans on the timeline (gaps: no speech)."""
    frames = result.get("frames") or []
    if not frames and "segments" not in result:
        return f'<div class="ea-note">{t("frame_only", lang)}</div>'
    total = (frames[-1]["end"] if frames else result.get("duration_s")) or 1.0
    parts = "".join(
        f'<span class="ea-seg" title="{html.escape(label_text(e, lang))} {s:.2f}-{end:.2f} s" '
        f'style="left:{s / total * 100:.3f}%;width:{(end - s) / total * 100:.3f}%;background:{COLORS[e]}"></span>'
        for s, end, e in segments(result)
    )
    legend = "".join(
        f'<span class="ea-key"><span class="ea-dot" style="background:{COLORS[k]}"></span>{label_html(k, lang)}</span>'
        for k in LABEL_KEYS
    )
    axis = f'<div class="ea-axis"><span>0 s</span><span>{total:.2f} s</span></div>'
    return f'<div class="ea-band">{parts}</div>{axis}<div class="ea-legend">{legend}</div>'


def timeline_table(result: dict, lang: str = "en", view: str = "smoothed"):
    """Long-format DataFrame (time, probability, emotion) of the frame scores (`view`: smoothed or
    raw), thinned to a light size.

    None without frames: a plot that starts from an empty DataFrame (object columns) draws no
    lines after later updates in Gradio 6.31, one that starts from None does.
    """
    import pandas as pd

    frames = result.get("frames") or []
    if not frames:
        return None
    step = max(1, int(np.ceil(len(frames) / MAX_TIMELINE_POINTS)))
    picked = frames[::step]
    times = [f["start"] for f in picked]
    field = "smoothed_scores" if view == "smoothed" and "smoothed_scores" in picked[0] else "scores"
    rows = {"time": [], "probability": [], "emotion": []}
    for key in result["probabilities"]:
        rows["time"] += times
        rows["probability"] += [f[field][key] for f in picked]
        rows["emotion"] += [label_text(key, lang)] * len(picked)
    return pd.DataFrame(rows)


def segments_table(result: dict, lang: str = "en"):
    """The smoothed segments as a DataFrame for the page (None outside frame mode)."""
    import pandas as pd

    if not result.get("segments"):
        return None
    cols = [t(c, lang) for c in ("col_start", "col_end", "col_emotion", "col_confidence")]
    rows = [(s["start"], s["end"], label_text(s["emotion"], lang), f"{s['confidence'] * 100:.1f}%") for s in result["segments"]]
    return pd.DataFrame(rows, columns=cols)


def summary_html(result: dict, lang: str = "en") -> str:
    """The summary of frame mode (share of time, changes, trends, the reading from frames) or of a
    segmented recording (share of speech time, coverage, transitions)."""
    s = result.get("summary")
    if not s:
        return ""
    share = sorted(((k, v) for k, v in s["share"].items() if v > 0), key=lambda kv: -kv[1])
    parts = "".join(
        f'<span class="ea-share" style="width:{v * 100:.3f}%;background:{COLORS[k]}" '
        f'title="{html.escape(label_text(k, lang))}"></span>'
        for k, v in share
    )
    legend = ", ".join(f"{label_html(k, lang)} {v * 100:.0f}%" for k, v in share)
    rows = [
        (t("share", lang), f'<div class="ea-shares">{parts}</div>{legend}'),
        (t("segments_n", lang), f"{s['num_segments']} · {t('changes_per_min', lang)} {s['changes_per_minute']:.1f}"),
    ]
    if s.get("utterance_from_frames"):
        u = s["utterance_from_frames"]
        rows.append((t("from_frames", lang), f"{label_html(u['emotion'], lang)} {u['confidence'] * 100:.0f}% ({u['method']})"))
    if s.get("trend_per_minute"):
        rising = max(s["trend_per_minute"].items(), key=lambda kv: kv[1])
        rows.append((t("rising", lang), f"{label_html(rising[0], lang)} {rising[1]:+.3f}/min"))
    if "coverage" in s:
        rows.append((t("speech", lang), f"{s['speech_s']:.1f} s ({s['coverage'] * 100:.0f}%)"))
        top = list(s["transitions"].items())[:5]
        moves = ", ".join(
            f"{label_html(a, lang)} → {label_html(b, lang)} ×{n}" for (a, b), n in ((k.split("->"), n) for k, n in top)
        )
        rows.append((t("transitions", lang), moves or "-"))
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="ea-summary">{body}</table>'


def processing_log(result: dict, lang: str = "en") -> str:
    a = result["audio"]
    m = result["model"]
    lines = [
        f"{t('log_file', lang)}: {result['file']}",
        f"{t('log_format', lang)}: {a['container'] or '-'} / {a['codec'] or '-'}",
        f"{t('log_source', lang)}: {t('channels', lang, rate=a['sample_rate'], channels=a['channels'])}",
        f"{t('log_duration', lang)}: {result['duration_s']:.2f} s",
        f"{t('log_resampled', lang)}: "
        + (t("resampled_yes", lang, rate=a["sample_rate"]) if a["resampled"] else t("resampled_no", lang)),
        f"{t('log_device', lang)}: {m.get('id')} / {m.get('device')} ({m.get('dtype')})",
        f"{t('log_time', lang)}: {result['timings'].get('inference', result['timings'].get('total', 0)):.2f} s",
        f"{t('log_folder', lang)}: {result['output_dir']}",
    ]
    if result.get("warnings"):
        lines.append(
            f"{t('log_warnings', lang)}: " + "; ".join(warning_message(w["code"], w["message"], lang) for w in result["warnings"])
        )
    return "\n".join(lines)
