"""The live sessions of one server: their number, their time limit, their take on disk, the
scheduler that scores their windows on the shared engine, and what the engine can carry
(capacity.py: hops stretch past it, and a take that would push the others past it is refused).

Both the page's Live tab and the `/api/stream` WebSocket open sessions here, so
`--max-live-sessions` counts them together. A session's take is spilled into a `.tmp-*` folder
inside the outputs folder: the retention sweeper removes what a killed process leaves there, and
`finish` turns the take into an ordinary output folder (service.analyze, as for an upload).

Threads: every method here may block (the hub's and the sessions' locks, resampling, the take's
WAV file, the model for `finish`), so none is called on an event loop. The page calls them from
Gradio's worker threads; the WebSocket runs each call in `executor`, the hub's own threads (never
the pool that uploads wait in), and awaits the result. `active` alone reads without a lock.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import EmotionAppError
from ..outputs import new_temp_folder
from .capacity import LATE_S, MAX_STRETCH, REFERENCE_WINDOW, Capacity, Demand, demand_of, measure_cost
from .options import LiveOptions, StreamFormat
from .scheduler import LiveScheduler
from .session import LiveSession, Window

logger = logging.getLogger(__name__)

DEFAULT_MAX_SESSIONS = 8
DEFAULT_MAX_MINUTES = 10.0
TAKE_NAME = "live.wav"  # the take's name in result.json
MAX_WAITING = 4  # windows of one session waiting for the model (a client faster than real time); past it no window is cut


class LiveBusyError(EmotionAppError):
    """All live slots are taken, or the engine cannot carry another take."""

    code = "busy"


class LiveHub:
    """Opens, scores, finishes and discards live sessions (thread-safe)."""

    def __init__(
        self,
        engine,
        outputs_dir: Path,
        *,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        max_seconds: float = DEFAULT_MAX_MINUTES * 60,
        max_batch: int = 16,
        cost: float | None = None,
    ):
        """`cost`: the model's seconds per second of window audio (capacity.py); None: measured now."""
        self.engine = engine
        self.outputs_dir = Path(outputs_dir)
        self.max_sessions = max_sessions
        engine_limit = getattr(getattr(engine, "options", None), "max_duration_s", None)
        self.max_seconds = min(max_seconds, engine_limit) if engine_limit else max_seconds  # the take is analysed whole
        self.capacity = Capacity(measure_cost(engine) if cost is None else cost)
        self.scheduler = LiveScheduler(engine, max_batch=max_batch, on_batch=self._observed)
        self.counters: Counter[str] = Counter()  # stretched, refused, closed_<code>: read by /api/health
        self._demand = Demand()
        # Two calls of one connection may run at once (reading audio, recording a hop): two threads
        # per session, so a session never waits for a thread another session holds.
        self.executor = ThreadPoolExecutor(max_workers=2 * max(1, max_sessions) + 2, thread_name_prefix="live")
        self._lock = threading.Lock()
        self._sessions: dict[int, tuple[LiveSession, float | None]] = {}  # id -> (session, idle expiry s)

    @property
    def active(self) -> int:
        """Sessions running now (no lock: safe to read anywhere, the event loop included)."""
        return len(self._sessions)

    def open(self, options: LiveOptions, fmt: StreamFormat, *, idle_expiry_s: float | None = None, request=None) -> LiveSession:
        """A new session, or LiveBusyError when `max_sessions` are running or the engine cannot carry
        another take with every meter's delay bounded (capacity.py). `request` (RequestOptions):
        its label set and sentiment apply to the hops too. With `idle_expiry_s`,
        the session is discarded when another one opens after it received no audio that long
        (the page's sessions: a closed tab may never say goodbye)."""
        session, change = None, None
        with self._lock:
            now = time.monotonic()
            expired = [s for s, expiry in self._sessions.values() if expiry is not None and now - s.last_active > expiry]
            for old in expired:
                del self._sessions[old.id]
            if expired:
                self._demand = demand_of(s.options for s, _ in self._sessions.values())
            demand = self._demand.plus(options.window_s, options.hop_s)
            full = len(self._sessions) >= self.max_sessions
            if not full and (not self._sessions or self.capacity.admits(demand)):  # the first take always: it slows no one
                folder = new_temp_folder(self.outputs_dir)
                try:
                    session = LiveSession(
                        options, fmt, self.engine.labels, folder, self.max_seconds,
                        label_set=request.labels if request is not None else None,
                        sentiment=request.analysis.sentiment if request is not None else None,
                    )  # fmt: skip
                except BaseException:
                    shutil.rmtree(folder, ignore_errors=True)
                    raise
                self._sessions[session.id] = (session, idle_expiry_s)
                self._demand = demand
                change = self._restretch()
            if session is None:
                self.counters["refused"] += 1
        self._log_stretch(change)
        for old in expired:
            logger.info("live session %d expired after %.0f s without audio", old.id, now - old.last_active)
            self._close(old)
        if session is None:
            if full:
                message = f"The server is already running its maximum of {self.max_sessions} live sessions; try again later."
            else:
                message = (
                    f"The server's live meter is at capacity ({self.active} takes running; more would delay every meter "
                    "past its bound); try again later."
                )
            logger.warning("live take refused as busy: %s", message)
            raise LiveBusyError(message)
        logger.info("live session %d opened (%d Hz %s, %d running)", session.id, fmt.sample_rate, fmt.format, self.active)
        return session

    def submit(self, session: LiveSession, window: Window) -> Future:
        """Score `window` (fairly batched with the other sessions'); the future gives (V,) probabilities."""
        return self.scheduler.submit(session.id, window.samples, window.due, window.end)

    def feed(self, session: LiveSession, samples: np.ndarray) -> list[tuple[Window, Future]]:
        """`session.feed(samples)` with the hops stretched as the load asks and at most MAX_WAITING
        windows of the session waiting for the model; each window cut is submitted for scoring."""
        room = MAX_WAITING - session.unrecorded  # waiting, in the model, or scored and not yet recorded
        windows = session.feed(samples, stretch=self.capacity.stretch, room=room)
        return [(window, self.submit(session, window)) for window in windows]

    def end(self, session: LiveSession) -> list[tuple[Window, Future]]:
        """`session.end()`, the tail's windows submitted for scoring."""
        return [(window, self.submit(session, window)) for window in session.end()]

    def finish(self, session: LiveSession, request=None, *, lang: str = "en"):
        """End the take and analyse it whole as an upload (`request`: RequestOptions; None: the
        defaults); returns service.Analysis. The session is discarded either way."""
        from ..service import analyze

        try:
            session.end()  # a caller that wants the tail's hop ends the session first
            if session.discarded:
                raise EmotionAppError("The live take was discarded (closed or idle too long).", "discarded")
            if session.samples == 0:
                raise EmotionAppError("No audio was received: send audio before ending the take.", "no_audio")
            return analyze(self.engine, session.wav_path, request, outputs_dir=self.outputs_dir, name=TAKE_NAME, lang=lang)
        finally:
            self.discard(session)

    def discard(self, session: LiveSession) -> None:
        """Drop the session's queued windows, delete its take and free its slot (idempotent)."""
        change = None
        with self._lock:
            known = self._sessions.pop(session.id, None) is not None
            if known:
                self._demand = demand_of(s.options for s, _ in self._sessions.values())
                change = self._restretch()
        self._log_stretch(change)
        self._close(session)
        if known:
            logger.info("live session %d closed after %.1f s of audio", session.id, session.seconds)

    def discard_soon(self, session: LiveSession) -> None:
        """`discard`, in the hub's threads: for callers on an event loop (Gradio's state cleanup)."""
        self.executor.submit(self.discard, session)

    def _close(self, session: LiveSession) -> None:
        self.scheduler.drop(session.id)
        session.discard()

    def closed_abnormally(self, code: int | str, session: LiveSession | None) -> None:
        """Count and log a live connection closed with an error code (the server's or the client's), or
        dropped for not reading (`code` "slow_consumer"). Called on the event loop: no lock, a count."""
        self.counters[f"closed_{code}"] += 1
        logger.warning("live connection%s closed abnormally: %s", f" of session {session.id}" if session else "", code)

    def health(self) -> dict:
        """The live meter for /api/health: sessions, capacity, load, stretch and counters. Reads plain
        values only, no lock: safe on the event loop."""
        at_full, admitted = self.capacity.sessions()
        demand = self._demand
        return {
            "sessions": self.active,
            "max_sessions": self.max_sessions,
            "capacity": {
                "every_hop": at_full,
                "admitted": min(admitted, self.max_sessions),
                **dict(zip(("window_s", "hop_s"), REFERENCE_WINDOW)),
            },
            "sliding": self.scheduler.slides,  # each take's conv features slid from hop to hop (model/sliding.py)
            "cost_ms_per_s": round(self.capacity.measured * 1000, 2),  # model ms per s of window audio, at start-up
            "recent_cost_ms_per_s": round(self.capacity.cost * 1000, 2),  # the same over the last batches
            "load": round(self.capacity.load(demand), 3),
            "stretch": self.capacity.stretch,
            "max_stretch": MAX_STRETCH,
            "counters": dict(self.counters),
        }

    def _observed(self, seconds: float, audio_s: float, late_due: float | None) -> None:
        """The scheduler's report of each batch: the measured cost moves, and the stretch with it."""
        with self._lock:
            self.capacity.observe(seconds, audio_s, late_due)
            change = self._restretch()
        self._log_stretch(change)

    def _restretch(self) -> tuple[int, int, bool] | None:
        """Under the lock: the stretch for the current demand; (before, after, late) when it changed."""
        before, late = self.capacity.stretch, self.capacity.backlog
        after = self.capacity.update(self._demand)
        if after > before:
            self.counters["stretched"] += 1
        return (before, after, late) if after != before else None

    def _log_stretch(self, change: tuple[int, int, bool] | None) -> None:
        """Outside the lock: a warning when the hops stretched, a line when they came back."""
        if change is None:
            return
        before, after, late = change
        if after > before:
            logger.warning(
                "live meter slowed: hops stretched x%d for %d sessions (model load %.2f at the asked hops%s)",
                after, self._demand.sessions, self.capacity.load(self._demand),
                f"; windows waited over {LATE_S:g} s for the model" if late else "",
            )  # fmt: skip
        else:
            logger.info("live meter catching up: hops stretched x%d (was x%d)", after, before)
