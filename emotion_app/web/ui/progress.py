"""Progress of the page's long actions, in the page's words: the stage, a count ("Segments 3/12",
"Files 2/9") and an estimate of the time left.

The service reports `progress(fraction, stage)`; a stage may end with a count (`"segments 3/12"`).
One model call (the Analyze tab's whole file) reports nothing while it runs, so for it the time
left comes from the file's length and the pace this server has shown (`Pace`), ticking on a
thread until the call returns.
"""

from __future__ import annotations

import contextvars
import re
import threading
import time
from pathlib import Path

from ...errors import EmotionAppError
from ..i18n import t
from .render import duration_text

STAGES = {
    "start": "progress_start",
    "decode": "progress_decode",
    "model": "progress_model",
    "voice activity": "progress_vad",
    "speakers": "progress_speakers",
    "segments": "progress_segments",
    "files": "progress_files",
    "done": "progress_done",
}
COUNTED = re.compile(r"^(.*?)(?: (\d+)/(\d+))?$")  # "segments 3/12" -> ("segments", "3", "12")
TICK_S = 0.5  # how often the estimate moves during one model call


class Pace:
    """Seconds the model takes per second of audio on this server: a guess for the device first,
    then learned from the page's own runs. One per page; holds no user data."""

    def __init__(self, device: str = "cpu"):
        self.ratio = 0.02 if str(device).startswith("cuda") else 0.3

    def estimate(self, duration_s: float | None) -> float | None:
        return duration_s * self.ratio if duration_s else None

    def learn(self, duration_s: float | None, seconds: float | None) -> None:
        if duration_s and duration_s >= 5 and seconds and seconds > 0:
            self.ratio = 0.5 * self.ratio + 0.5 * seconds / duration_s


class Reporter:
    """The service's `progress(fraction, stage)` shown on a gr.Progress (`progress(fraction, desc=...)`).

    The time left is extrapolated from the fraction done so far; with `model_s` (the expected length
    of one model call) the stage "model" starts a ticker that moves the bar and counts down until
    the reporter is closed. Use as a context manager.
    """

    def __init__(self, progress, lang: str, model_s: float | None = None, span: tuple[float, float] = (0.05, 0.95)):
        # None: nothing shown (direct calls). Not `progress or ...`: a gr.Progress has a length, 0 at first
        self.progress = progress if progress is not None else (lambda fraction, desc: None)
        self.lang, self.model_s, self.span = lang, model_s, span
        self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __call__(self, fraction: float, stage: str, left_s: float | None = None) -> None:
        name, done, total = COUNTED.match(stage).groups()
        desc = t(STAGES[name], self.lang) if name in STAGES else name
        if total:
            desc += f" {done}/{total}"
        left_s = self.time_left(fraction) if left_s is None else left_s
        if left_s is not None:
            desc += " · " + t("time_left", self.lang, time=duration_text(left_s, self.lang, 0))
        with self._lock:
            self.progress(min(max(fraction, 0.0), 1.0), desc=desc)
        if name == "model" and self.model_s and self._ticker is None:
            self._start_ticker(fraction)

    def time_left(self, fraction: float) -> float | None:
        """Seconds left at the pace so far (None until there is a pace to go by)."""
        elapsed = time.monotonic() - self.t0
        if fraction < 0.03 or fraction >= 1 or elapsed < 1.0:
            return None
        return elapsed * (1 - fraction) / fraction

    def _start_ticker(self, start: float) -> None:
        end, began = max(self.span[1], start), time.monotonic()

        def tick():
            while not self._stop.wait(TICK_S):
                elapsed = time.monotonic() - began
                share = min(elapsed / self.model_s, 0.97)
                self(start + (end - start) * share, "model", left_s=max(self.model_s - elapsed, 1.0))

        # gr.Progress finds its event through context variables: the thread runs in a copy of ours
        self._ticker = threading.Thread(target=contextvars.copy_context().run, args=(tick,), daemon=True)
        self._ticker.start()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()


def declared_duration(path) -> float | None:
    """The duration (s) a file's header declares, read without decoding; None when the header has
    none or the file cannot be opened (the analysis then says why)."""
    from ...audio.source import open_source

    if not path:
        return None
    try:
        src = open_source(str(Path(path)), max_duration_s=float("inf"))
        with src.blocks():
            return src.declared_s
    except (EmotionAppError, OSError, ValueError):
        return None
