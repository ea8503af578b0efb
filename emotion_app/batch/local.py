"""Many files: run the inputs of a batch (inputs.py) through the engine, group by group.

Used by `python -m emotion_app batch` and the page's batch tab. Every input gets one record, built
by analysis.build.build_report like any other result; one bad file (or archive member) becomes an error
in its row and never stops the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime

from ..analysis.build import build_report
from ..analysis.report import Report
from ..engine import Engine
from ..errors import EmotionAppError, ErrorText
from ..longform import analyze_long
from ..request import RequestOptions
from ..speakers.turns import TurnsFile
from .inputs import BatchInput, Extractor

logger = logging.getLogger(__name__)

GROUP = 32  # inputs decoded and sent to the engine together (sorted by length inside)


def named_error(name: str, message: str, code: str | None = None) -> ErrorText:
    """`message` starting with the row name `name` (error rows name their file), keeping the error's `code`."""
    return ErrorText(message if message.startswith(name) else f"{name}: {message}", code)


def iter_batch(
    engine: Engine,
    inputs: list[BatchInput],
    request: RequestOptions,
    *,
    extractor: Extractor | None = None,
    progress: Callable[[int], None] | None = None,
    group: int = GROUP,
) -> Iterator[tuple[int, Report | None, str | None]]:
    """(index, Report or None, error or None) per input, in input order, group by group.
    Archive members are extracted by `extractor` when their group comes, and removed after it.
    A request on turns without a turns file (`RequestOptions.with_turns(None)`) reads each file's
    turns beside it (call.wav: call.rttm, call.vtt, call.srt or call.json; none: an error row)."""
    for lo in range(0, len(inputs), group):
        idx = range(lo, min(lo + group, len(inputs)))
        for i in idx:
            if extractor is not None:
                extractor.materialise(inputs[i])
        outcomes = _run_group(engine, [inputs[i] for i in idx], request)
        for i, (result, error) in zip(idx, outcomes):
            if extractor is not None:
                extractor.release(inputs[i])
            yield i, result, error
            if progress:
                progress(1)


def _run_group(engine: Engine, items: list[BatchInput], request: RequestOptions) -> list[tuple[Report | None, str | None]]:
    """(result, error) for each item of one group."""
    out: list[tuple[Report | None, str | None]] = [(None, item.error) for item in items]
    ready = [k for k, item in enumerate(items) if item.error is None]
    now = datetime.now()
    if request.segment is not None:
        for k in ready:
            name = items[k].name
            try:
                turns = request.turns
                if request.speakers is not None and request.speakers.mode == "turns" and turns is None:
                    turns = TurnsFile.beside(items[k].path, name)
                rec = analyze_long(
                    engine, items[k].path, request.segment, name=name, heads=request.heads, speakers=request.speakers,
                    turns=turns, labels=request.labels,
                )  # fmt: skip
                out[k] = (build_report(rec, request.analysis, file=name, timestamp=now), None)
            except EmotionAppError as exc:
                out[k] = (None, named_error(name, exc.message, exc.code))
        return out
    results = engine.predict_batch(
        [items[k].path for k in ready], granularity=request.granularity, errors="return", names=[items[k].name for k in ready],
        heads=request.heads, labels=request.labels,
    )  # fmt: skip
    for k, res in zip(ready, results):
        name = items[k].name
        if isinstance(res, EmotionAppError):
            out[k] = (None, named_error(name, res.message, res.code))
        else:
            out[k] = (build_report(res, request.analysis, file=name, timestamp=now), None)
    return out
