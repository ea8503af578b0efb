"""A watch on the server's event loop: how late it runs, and where it was stuck when it was.

The server is one event loop thread: anything that blocks it (a thread lock, a file or model call,
a long computation) stops every page, upload and live take at once. `LoopWatchdog` runs a probe
task on the loop that sleeps `interval_s` and measures how late it wakes up (the stall), and a
monitor thread that, when the probe has not woken for `warn_s`, logs the loop thread's stack once
per stall: the log names the line that blocked. `/api/health` reports the worst stall since the
start; tests assert on `max_stall_s` under load (tests/test_live_load.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass

logger = logging.getLogger(__name__)

INTERVAL_S = 0.05  # the probe's sleep
WARN_S = 0.25  # a stall this long is logged, with the loop thread's stack


@dataclass(frozen=True)
class Stall:
    at: float  # time.monotonic() when the probe woke up late
    seconds: float
    stack: str  # where the loop thread was, when the monitor caught it (else "")


class LoopWatchdog:
    """The probe (`run`, a task on the loop) and its monitor thread; `lifespan` starts both."""

    def __init__(self, interval_s: float = INTERVAL_S, warn_s: float = WARN_S):
        self.interval_s, self.warn_s = interval_s, warn_s
        self.ticks = 0  # probe wake-ups since the last reset
        self.max_stall_s = 0.0  # the longest since the last reset
        self.stalls: deque[Stall] = deque(maxlen=50)  # the last stalls over warn_s
        self.slow = 0  # stalls over warn_s since the last reset
        self.observers: list = []  # functions of each probe's lag (s, >= 0), on the loop: the metrics
        self._beat = time.monotonic()  # the probe's last wake-up (written on the loop, read by the monitor)
        self._loop_thread: int | None = None
        self._caught: str = ""  # the stack the monitor saw during the current stall
        self._stop = threading.Event()

    def reset(self) -> None:
        """Forget the figures so far (a test measures one stretch of load)."""
        self.ticks, self.max_stall_s, self.slow, self._caught = 0, 0.0, 0, ""
        self.stalls.clear()

    def report(self) -> str:
        lines = [f"{self.ticks} ticks, longest stall {self.max_stall_s * 1000:.0f} ms"]
        lines += [f"stall of {s.seconds * 1000:.0f} ms\n{s.stack}" for s in self.stalls]
        return "\n".join(lines)

    async def run(self) -> None:
        """The probe: on the loop until cancelled."""
        loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        while True:
            before = loop.time()
            self._beat = time.monotonic()
            await asyncio.sleep(self.interval_s)
            stall = loop.time() - before - self.interval_s
            self._beat = time.monotonic()
            self.ticks += 1
            self.max_stall_s = max(self.max_stall_s, stall)
            for observe in self.observers:
                observe(max(0.0, stall))
            if stall > self.warn_s:
                self.slow += 1
                self.stalls.append(Stall(self._beat, stall, self._caught))
                where = f" at:\n{self._caught}" if self._caught else ""
                logger.warning("the event loop was blocked for %.0f ms%s", stall * 1000, where)
            self._caught = ""

    def _monitor(self) -> None:
        """In its own thread: catch the loop thread's stack while the probe is overdue."""
        while not self._stop.wait(self.interval_s):
            overdue = time.monotonic() - self._beat - self.interval_s
            if overdue > self.warn_s and not self._caught and self._loop_thread is not None:
                self._caught = self._stacks()

    def _stacks(self) -> str:
        """The loop thread's stack in full, then the innermost frames of every other thread: a loop
        waiting in `select` past its timeout is waiting for the GIL, which one of those holds."""
        names = {t.ident: t.name for t in threading.enumerate()}
        frames = sys._current_frames()
        loop = frames.get(self._loop_thread)
        out = ["".join(traceback.format_stack(loop)) if loop is not None else ""]
        for ident, frame in frames.items():
            if ident not in (self._loop_thread, threading.get_ident()):
                top = "".join(traceback.format_stack(frame, limit=3))
                out.append(f"-- thread {names.get(ident, ident)}:\n{top}")
        return "\n".join(out)

    @contextlib.asynccontextmanager
    async def lifespan(self):
        self._stop.clear()
        probe = asyncio.create_task(self.run())
        monitor = threading.Thread(target=self._monitor, name="emotion-app-watchdog", daemon=True)
        monitor.start()
        try:
            yield
        finally:
            self._stop.set()
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe

    def health(self) -> dict:
        """What /api/health says about the loop."""
        return {
            "max_stall_ms": round(self.max_stall_s * 1000, 1),  # the longest wait of the probe past its time
            "stalls": self.slow,  # probes later than stall_ms
            "stall_ms": self.warn_s * 1000,
            "probes": self.ticks,
        }
