"""The live sessions of one server: their number, their time limit, their take on disk, and the
scheduler that scores their windows on the shared engine.

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
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import EmotionAppError
from ..outputs import new_temp_folder
from .options import LiveOptions, StreamFormat
from .scheduler import LiveScheduler
from .session import LiveSession, Window

logger = logging.getLogger(__name__)

DEFAULT_MAX_SESSIONS = 8
DEFAULT_MAX_MINUTES = 10.0
TAKE_NAME = "live.wav"  # the take's name in result.json


class LiveBusyError(EmotionAppError):
    """All live slots are taken."""

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
    ):
        self.engine = engine
        self.outputs_dir = Path(outputs_dir)
        self.max_sessions = max_sessions
        engine_limit = getattr(getattr(engine, "options", None), "max_duration_s", None)
        self.max_seconds = min(max_seconds, engine_limit) if engine_limit else max_seconds  # the take is analysed whole
        self.scheduler = LiveScheduler(engine, max_batch=max_batch)
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
        """A new session, or LiveBusyError when `max_sessions` are running. `request` (RequestOptions):
        its label set and sentiment apply to the hops too. With `idle_expiry_s`,
        the session is discarded when another one opens after it received no audio that long
        (the page's sessions: a closed tab may never say goodbye)."""
        session = None
        with self._lock:
            now = time.monotonic()
            expired = [s for s, expiry in self._sessions.values() if expiry is not None and now - s.last_active > expiry]
            for old in expired:
                del self._sessions[old.id]
            if len(self._sessions) < self.max_sessions:
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
        for old in expired:
            logger.info("live session %d expired after %.0f s without audio", old.id, now - old.last_active)
            self._close(old)
        if session is None:
            message = f"The server is already running its maximum of {self.max_sessions} live sessions; try again later."
            raise LiveBusyError(message)
        logger.info("live session %d opened (%d Hz %s, %d running)", session.id, fmt.sample_rate, fmt.format, self.active)
        return session

    def submit(self, session: LiveSession, window: Window) -> Future:
        """Score `window` (fairly batched with the other sessions'); the future gives (V,) probabilities."""
        return self.scheduler.submit(session.id, window.samples, window.due)

    def feed(self, session: LiveSession, samples: np.ndarray) -> list[tuple[Window, Future]]:
        """`session.feed(samples)`, each window that fell due submitted for scoring."""
        return [(window, self.submit(session, window)) for window in session.feed(samples)]

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
        with self._lock:
            known = self._sessions.pop(session.id, None) is not None
        self._close(session)
        if known:
            logger.info("live session %d closed after %.1f s of audio", session.id, session.seconds)

    def discard_soon(self, session: LiveSession) -> None:
        """`discard`, in the hub's threads: for callers on an event loop (Gradio's state cleanup)."""
        self.executor.submit(self.discard, session)

    def _close(self, session: LiveSession) -> None:
        self.scheduler.drop(session.id)
        session.discard()
