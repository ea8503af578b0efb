"""`emotion-app predict FILE...`: one result per file, as a line or (--json) result.json's content."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .args import OFF, add_head_arg, add_model_args, add_request_args, engine_from, fail, request_from


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="predict the emotion of audio files (one result per file)")
    p.add_argument(
        "files", nargs="+", metavar="FILE", help="audio or video files (WAV, MP3, M4A, FLAC, OGG, OPUS, WEBM, MP4, ...)"
    )
    add_model_args(p)
    add_request_args(p)
    p.add_argument(
        "--embedding",
        dest="extract_embedding",
        action="store_true",
        default=OFF,
        help="also compute embeddings (not printed; Python API)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per file")
    add_head_arg(p)
    p.set_defaults(func=run)


def human(report) -> str:
    """One line per file (a Report, analysis/report.py): the top emotion, custom heads, length,
    segments, and for a conversation each speaker's emotion and share of the talk."""
    warn = "".join(f"  [{w.message}]" for w in report.warnings)
    if report.emotion is None:
        return f"{report.file}: no speech found  {report.duration_s:.1f} s{warn}"
    seg = f", {_count(len(report.segments), 'segment')}" if report.granularity == "segments" else ""
    head = f"{report.emoji} {report.emotion} ({report.label_zh}) {report.confidence:.1%}"
    heads = "".join(f"  [{name}: {h.emotion} {h.confidence:.1%}]" for name, h in (report.heads or {}).items())
    mood = _sentiment(report.sentiment)
    who = "".join(
        f"\n  {s.name}: {s.emotion} {s.confidence:.1%}, {s.share_of_talk:.0%} of the talk, {_count(s.turns, 'turn')}"
        + (f", interrupted {s.interruptions}x" if s.interruptions else "")
        + (f", {_sentiment(s.sentiment).strip()}" if s.sentiment else "")
        for s in report.speakers or ()
    )
    return f"{report.file}: {head}{heads}{mood}  {report.duration_s:.1f} s{seg}{warn}{who}"


def _count(n: int, noun: str) -> str:
    """'1 turn', '3 turns'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _sentiment(block) -> str:
    return f"  sentiment {block.label} {block.score:+.2f}" if block else ""


def run(args) -> int:
    from ..batch.inputs import BatchInput
    from ..batch.local import iter_batch
    from ..errors import EmotionAppError

    try:
        request = request_from(args)
        if request.turns is not None and len(args.files) > 1 and request.turns.format != "rttm":
            return fail(
                f"--turns {request.turns.name} gives the turns of one recording: give one FILE with it, or an RTTM whose"
                " lines name each file's recording (batch: --turns beside each file)"
            )
        engine = engine_from(args)
    except EmotionAppError as exc:
        return fail(exc.message)
    inputs = [BatchInput(path, path=Path(path)) for path in args.files]
    failed = 0
    for _, report, error in iter_batch(engine, inputs, request, group=max(8, 8 * engine.batch_size)):
        if error:
            failed += 1
            print(f"error: {error}", file=sys.stderr, flush=True)
        elif args.json:
            print(json.dumps(report.to_json(), ensure_ascii=False), flush=True)
        else:
            print(human(report), flush=True)
    return 1 if failed else 0
