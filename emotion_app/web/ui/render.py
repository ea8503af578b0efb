"""HTML and table views of a result for the page: pure functions of a typed Report (analysis/report.py).

Times are shown as m:ss (positions) or "8.1 s" / m:ss (lengths), never as raw seconds.
"""

from __future__ import annotations

import html

from ...analysis.report import FrameSummary, Report
from ...analysis.schema import to_json
from ...constants import FRAME_S, LABEL_BY_KEY, label_color
from ..i18n import t, warning_message

BAND_LABELS = 40  # segments named in the band's text alternative


def clock(seconds: float, decimals: int = 1) -> str:
    """A position in the audio: 0:13.5, 5:25.8, 1:02:03.0 (`decimals` places of seconds)."""
    seconds = max(0.0, float(seconds))
    scale = 10**decimals
    total = round(seconds * scale)
    whole, frac = divmod(total, scale)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    tail = f".{frac:0{decimals}d}" if decimals else ""
    return f"{hours}:{minutes:02d}:{secs:02d}{tail}" if hours else f"{minutes}:{secs:02d}{tail}"


def duration_text(seconds: float, lang: str = "en", decimals: int = 1) -> str:
    """A length: "8.1 s" (`decimals` places) under a minute, m:ss beyond."""
    if seconds < 59.5:
        return t("seconds", lang, value=f"{seconds:.{decimals}f}")
    return clock(seconds, 0)


def label_text(key: str, lang: str) -> str:
    """One of the nine with its emoji and Chinese name; another label (a fine-tuned model's) as written."""
    label = LABEL_BY_KEY.get(key)
    if label is None:
        return key
    return f"{label.emoji} {label.zh} {key}" if lang == "zh" else f"{label.emoji} {key} {label.zh}"


def label_short(key: str, lang: str) -> str:
    """The emoji and the name in the page's language (table headers)."""
    label = LABEL_BY_KEY.get(key)
    return f"{label.emoji} {label.zh if lang == 'zh' else key}" if label is not None else key


def label_html(key: str, lang: str) -> str:
    """label_text with the emoji in its own span, so it gets a colour-emoji font."""
    label = LABEL_BY_KEY.get(key)
    if label is None:
        return html.escape(key)
    names = f"{label.zh} {key}" if lang == "zh" else f"{key} {label.zh}"
    return f'<span class="ea-emo">{label.emoji}</span> {html.escape(names)}'


def legend_key(key: str, lang: str) -> str:
    """An emotion's colour dot and name, for a legend."""
    dot = f'<span class="ea-dot" style="background:{label_color(key)}"></span>'
    return f'<span class="ea-key">{dot}{label_html(key, lang)}</span>'


def note_card(text: str) -> str:
    """A placeholder where the result goes ("upload, then press Start")."""
    return f'<div class="ea-placeholder"><div class="ea-note">{html.escape(text)}</div></div>'


def working_card(lang: str) -> str:
    return f'<div class="ea-placeholder" aria-busy="true"><div class="ea-note">{t("working", lang)}</div></div>'


def error_card(message: str, lang: str) -> str:
    """The error of the last run, where its result would have gone."""
    return (
        f'<div class="ea-error" role="alert"><div class="ea-error-title"><span class="ea-emo">❌</span> '
        f"{t('error_title', lang)}</div><div>{html.escape(message)}</div></div>"
    )


def emotion_card(report: Report, lang: str = "en") -> str:
    warnings = "".join(
        f'<div class="ea-warning"><span class="ea-emo">⚠️</span> {html.escape(warning_message(w.code, w.message, lang))}</div>'
        for w in report.warnings
    )
    if not report.emotion:  # a recording without speech
        return f'<div class="ea-card">{warnings}</div>'
    key = report.emotion
    label = LABEL_BY_KEY.get(key)  # None: a fine-tuned model's own label, shown as written
    names = (
        f'<div class="ea-emoji ea-emo">{label.emoji}</div><div class="ea-names"><span class="ea-zh">{label.zh}</span> '
        f'<span class="ea-en">{key}</span></div>'
        if label is not None
        else f'<div class="ea-names"><span class="ea-en">{html.escape(key)}</span></div>'
    )
    return (
        f'<div class="ea-card" style="border-color:{label_color(key)}">{names}'
        f'<div class="ea-conf">{t("confidence", lang)} <b>{report.confidence * 100:.1f}%</b></div>'
        f"{mixed_line(report, lang)}{sentiment_line(to_json(report.sentiment), lang)}{warnings}</div>"
    )


def sentiment_line(block: dict | None, lang: str = "en") -> str:
    """The sentiment of a reading: its label and score (-1 to +1), when it was asked for."""
    if not block:
        return ""
    return f'<div class="ea-mixed">{t("sentiment", lang)}: <b>{t("s_" + block["label"], lang)}</b> ({block["score"]:+.2f})</div>'


def mixed_line(report: Report, lang: str = "en") -> str:
    m = report.mixed
    if not m:
        return ""
    if m.mixed:
        names = " + ".join(label_html(k, lang) for k in m.emotions)
        return f'<div class="ea-mixed">{t("mixed", lang)}: {names} ({t("margin", lang)} {m.margin * 100:.1f}%)</div>'
    return f'<div class="ea-mixed">{t("margin", lang)}: {m.margin * 100:.1f}%</div>'


def score_bars(report: Report, lang: str = "en") -> str:
    """All 9 scores as horizontal bars, sorted by score (full-precision probabilities)."""
    probs = sorted(report.probabilities.items(), key=lambda kv: -kv[1])
    rows = "".join(
        f'<div class="ea-row" data-emotion="{html.escape(k)}"><span class="ea-label">{label_html(k, lang)}</span>'
        f'<span class="ea-track" aria-hidden="true">'
        f'<span class="ea-bar" style="width:{p * 100:.2f}%;background:{label_color(k)}"></span></span>'
        f'<span class="ea-pct">{p * 100:.1f}%</span></div>'
        for k, p in probs
    )
    return f'<div class="ea-scores">{rows}</div>'


def segments(report: Report) -> list[tuple[float, float, str]]:
    """(start, end, emotion) runs: the smoothed segments (frame mode) or a recording's segments."""
    return [(s.start, s.end, s.emotion) for s in report.segments or []]


def time_ticks(total: float, most: int = 6) -> list[float]:
    """Round positions (s) for a time axis of `total` seconds: at most `most` + 1 of them."""
    steps = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
    step = next((s for s in steps if total / s <= most), 3600 * (int(total / 3600 / most) + 1))
    return [i * step for i in range(int(total / step + 1e-9) + 1)]


def time_axis(total: float) -> str:
    """Tick labels (m:ss) under a time line of `total` seconds, placed by percentage."""
    ticks = "".join(
        f'<span style="left:{x / total * 100:.3f}%">{clock(x, 0 if x == int(x) else 1)}</span>' for x in time_ticks(total)
    )
    return f'<div class="ea-ticks" aria-hidden="true">{ticks}</div>'


def dominant_band(report: Report, lang: str = "en") -> str:
    """The dominant emotion over time as coloured spans (gaps: no speech), its time axis, a legend
    of the emotions that occur, and the spans in words for screen readers. Empty without segments."""
    if report.segments is None:
        return ""
    runs = segments(report)
    frames = report.frame_probabilities()
    total = (len(frames) * FRAME_S if frames is not None and len(frames) else report.duration_s) or 1.0
    parts = "".join(
        f'<span class="ea-seg" title="{html.escape(label_text(e, lang))} {clock(s)}–{clock(end)}" '
        f'style="left:{s / total * 100:.3f}%;width:{(end - s) / total * 100:.3f}%;background:{label_color(e)}"></span>'
        for s, end, e in runs
    )
    spoken = "; ".join(f"{clock(s)}–{clock(end)} {label_text(e, lang)}" for s, end, e in runs[:BAND_LABELS])
    alt = f"{t('dominant', lang)}: {spoken or '-'}" + (" …" if len(runs) > BAND_LABELS else "")
    present = sorted({e for _, _, e in runs}, key=lambda k: -sum(b - a for a, b, e in runs if e == k))
    legend = "".join(legend_key(k, lang) for k in present)
    return (
        f'<div class="ea-band-title">{t("dominant", lang)}</div>'
        f'<div class="ea-band" role="img" aria-label="{html.escape(alt)}">{parts}</div>'
        f'{time_axis(total)}<div class="ea-legend">{legend}</div>'
    )


def segments_table(report: Report, lang: str = "en"):
    """The segments as a DataFrame for the page, times as m:ss (None without segments)."""
    import pandas as pd

    if not report.segments:
        return None
    cols = [t(c, lang) for c in ("col_start", "col_end", "col_emotion", "col_confidence")]
    rows = [(clock(s.start), clock(s.end), label_text(s.emotion, lang), f"{s.confidence * 100:.1f}%") for s in report.segments]
    if report.conversation is not None:  # a conversation: who speaks, and what was said when known
        cols.insert(0, t("col_speaker", lang))
        rows = [(s.speaker or "-", *row) for s, row in zip(report.segments, rows)]
        if any(s.text for s in report.segments):
            cols.append(t("col_text", lang))
            rows = [(*row, s.text or "") for s, row in zip(report.segments, rows)]
    return pd.DataFrame(rows, columns=cols)


def summary_html(report: Report, lang: str = "en") -> str:
    """The summary of frame mode (share of time, changes, trends, the reading from frames) or of a
    segmented recording (share of speech time, coverage, transitions)."""
    s = report.summary
    if not s:
        return ""
    share = sorted(((k, v) for k, v in s.share.items() if v > 0), key=lambda kv: -kv[1])
    parts = "".join(
        f'<span class="ea-share" style="width:{v * 100:.3f}%;background:{label_color(k)}" '
        f'title="{html.escape(label_text(k, lang))}"></span>'
        for k, v in share
    )
    legend = ", ".join(f"{label_html(k, lang)} {v * 100:.0f}%" for k, v in share)
    rows = [
        (t("share", lang), f'<div class="ea-shares" aria-hidden="true">{parts}</div>{legend}'),
        (t("segments_n", lang), f"{s.num_segments} · {t('changes_per_min', lang)} {s.changes_per_minute:.1f}"),
    ]
    if isinstance(s, FrameSummary):
        if u := s.utterance_from_frames:
            how = t(f"from_{u.method}", lang) if u.method in ("vote", "mean") else u.method
            rows.append((t("from_frames", lang), f"{label_html(u.emotion, lang)} {u.confidence * 100:.0f}% ({how})"))
        if s.trend_per_minute:
            rising = max(s.trend_per_minute.items(), key=lambda kv: kv[1])
            rows.append((t("rising", lang), f"{label_html(rising[0], lang)} {rising[1] * 100:+.1f}% {t('per_min', lang)}"))
    else:
        rows.append((t("speech", lang), f"{duration_text(s.speech_s, lang)} ({s.coverage * 100:.0f}%)"))
        moves = ", ".join(
            f"{label_html(a, lang)} → {label_html(b, lang)} ×{n}"
            for (a, b), n in ((k.split("->"), n) for k, n in list(s.transitions.items())[:5])
        )
        rows.append((t("transitions", lang), moves or "-"))
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="ea-summary">{body}</table>'


def processing_log(report: Report, lang: str = "en") -> str:
    a, m, timings = report.audio, report.model, report.timings
    lines = [
        f"{t('log_file', lang)}: {report.file}",
        f"{t('log_format', lang)}: {a.container or '-'} / {a.codec or '-'}",
        f"{t('log_source', lang)}: {t('channels', lang, rate=a.sample_rate, channels=a.channels)}",
        f"{t('log_duration', lang)}: {duration_text(round(report.duration_s, 3), lang, 2)}",
        f"{t('log_resampled', lang)}: "
        + (t("resampled_yes", lang, rate=a.sample_rate) if a.resampled else t("resampled_no", lang)),
        f"{t('log_device', lang)}: {m.get('id')} / {m.get('device')} ({m.get('dtype')})",
        f"{t('log_time', lang)}: " + duration_text(timings.get("inference", timings.get("total", 0)), lang, 2),
        f"{t('log_folder', lang)}: {report.output_dir}",
    ]
    if report.warnings:
        lines.append(
            f"{t('log_warnings', lang)}: " + "; ".join(warning_message(w.code, w.message, lang) for w in report.warnings)
        )
    return "\n".join(lines)
