"""The Long recording tab's conversation view: who spoke when and feeling what, one lane per speaker
(overlaps show as lanes busy at once), a table per speaker, and the interruptions and escalations.
Pure functions of a typed Report (analysis/report.py)."""

from __future__ import annotations

import html

from ...analysis.report import Report
from ...constants import COLORS
from ..i18n import t
from .render import clock, duration_text, label_html, label_text, legend_key, time_axis


def conversation_html(report: Report | None, lang: str = "en") -> str:
    """Lanes, the speakers' table and the events; "" for a recording without speakers."""
    conversation = report.conversation if report is not None else None
    if conversation is None or not report.segments:
        return ""
    return (
        f'<div class="ea-conversation" data-speakers="{len(report.speakers)}">'
        f"{lanes_html(report, lang)}{speakers_table(report, lang)}{events_html(report, lang)}</div>"
    )


def lanes_html(report: Report, lang: str = "en") -> str:
    segments = report.segments
    names = [s.name for s in report.speakers]
    total = report.duration_s or max(s.end for s in segments) or 1.0
    rows = []
    for name in names:
        spans = "".join(
            f'<span class="ea-seg" data-start="{s.start}" title="{html.escape(name)} · {clock(s.start)}–{clock(s.end)} · '
            f'{html.escape(label_text(s.emotion, lang))}" style="left:{s.start / total * 100:.3f}%;'
            f'width:{(s.end - s.start) / total * 100:.3f}%;background:{COLORS.get(s.emotion, "#888")}"></span>'
            for s in segments
            if s.speaker == name
        )
        said = "; ".join(f"{clock(s.start)}–{clock(s.end)} {label_text(s.emotion, lang)}" for s in segments if s.speaker == name)[
            :600
        ]
        alt = html.escape(f"{name}: {said}")
        rows.append(
            f'<div class="ea-lane" data-speaker="{html.escape(name)}"><div class="ea-lane-name">{html.escape(name)}</div>'
            f'<div class="ea-band ea-lane-band" role="img" aria-label="{alt}">{spans}</div></div>'
        )
    present = list(dict.fromkeys(s.emotion for s in segments))
    legend = "".join(legend_key(k, lang) for k in present)
    return (
        f'<div class="ea-band-title">{t("conv_lanes", lang)}</div><div class="ea-lanes">{"".join(rows)}</div>'
        f'<div class="ea-lane-axis">{time_axis(total)}</div><div class="ea-legend">{legend}</div>'
    )


def speakers_table(report: Report, lang: str = "en") -> str:
    """One row per speaker; on a phone each row is a card of "column: value" lines (style.css)."""
    keys = ("conv_speaker", "conv_talk", "conv_share", "conv_turns", "conv_emotion", "conv_interrupts", "conv_interrupted")
    names = [html.escape(t(k, lang)) for k in keys]
    head = "".join(f"<th>{n}</th>" for n in names)
    rows = []
    for s in report.speakers:
        values = (
            duration_text(s.talk_s, lang), f"{s.share_of_talk * 100:.0f}%", str(s.turns),
            f"{label_html(s.emotion, lang)} {s.confidence * 100:.0f}%", str(s.interruptions), str(s.interrupted),
        )  # fmt: skip
        emotion_cell = ' class="ea-speaker-emotion"'
        cells = "".join(
            f'<td data-label="{n}"{emotion_cell if k == "conv_emotion" else ""}>{v}</td>'
            for k, n, v in zip(keys[1:], names[1:], values)
        )
        rows.append(f'<tr data-speaker="{html.escape(s.name)}"><th>{html.escape(s.name)}</th>{cells}</tr>')
    return f'<table class="ea-summary ea-speakers"><tr>{head}</tr>{"".join(rows)}</table>'


def events_html(report: Report, lang: str = "en") -> str:
    c = report.conversation
    shape = t(
        "conv_shape",
        lang,
        talk=duration_text(c.talk_s, lang),
        silence=duration_text(c.silence_s, lang),
        overlap=duration_text(c.overlap_s, lang),
    )
    events = [
        (i.at, t("conv_interruption", lang, by=html.escape(i.by), of=html.escape(i.of), overlap=f"{i.overlap_s:.1f}"))
        for i in c.interruptions
    ]
    events += [
        (e.at, t("conv_escalation", lang, speaker=html.escape(e.speaker), before=f"{e.before:.2f}", after=f"{e.after:.2f}"))
        for e in c.escalations
    ]
    items = "".join(f"<li>{clock(at)} {text}</li>" for at, text in sorted(events))
    listed = f'<ul class="ea-events">{items}</ul>' if items else f'<div class="ea-note">{t("conv_no_events", lang)}</div>'
    return f'<div class="ea-note">{shape}</div>{listed}'
