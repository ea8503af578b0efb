"""The server's memory budget: heavy work admitted against a number of megabytes, never past it.

Each request's peak is estimated before its heavy work starts, from its kind and its audio's
length (the header's duration; `estimate_mb`), and reserved from the budget (`MemoryBudget.hold`)
until the work ends. A request that does not fit waits, in a bounded queue (`max_waiting`
requests, each at most `wait_s`), for earlier ones to finish; past that it is refused with
`MemoryBusy` (HTTP 503 with Retry-After, in the caller's language), and the server logs a warning.
Work already admitted is never stopped. One request larger than the whole budget is refused at
once (`too_long`: it could never run here).

The costs (COSTS) are what a request holds beyond the loaded model, which is resident whatever
runs: a fixed part (one model batch's activations, the VAD, CAM++ and their buffers; measured on
the full-size plus_large layout, docs/benchmarks.md) and a part per minute of audio (the decoded
samples, the results, the processed audio and the windows; `bench/bench_memory.py`). The default
budget is the machine's memory (MemTotal) less a share for the system and the server's own RSS
(the model) when the budget is made, with a floor (`default_budget_mb`).

`hold` blocks its thread while it waits: it is called from worker threads (service.analyze and
analyze_batch, for the REST API, the MCP tools and the page's tabs), never on the event loop.
`health()` reads the counters without the lock, so the event loop may call it (a snapshot that
may be a request behind).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import EmotionAppError

logger = logging.getLogger(__name__)

FLOOR_MB = 1024.0  # the smallest default budget
SYSTEM_SHARE = 0.2  # of MemTotal, left to the system and other processes by the default budget
WAIT_S = 60.0  # the longest a request waits in the queue for memory
MAX_WAITING = 4  # requests waiting at once; more are refused at once
RETRY_AFTER_S = 30  # the Retry-After of a refusal
UNKNOWN_BYTES_PER_S = 2000.0  # an input without a declared duration: its bytes read as 16 kbit/s audio


@dataclass(frozen=True)
class Cost:
    """What one request of a kind holds beyond the loaded model, in MB: `fixed_mb` plus
    `per_minute_mb` for each minute of audio."""

    fixed_mb: float
    per_minute_mb: float


# Fixed parts: each kind's peak RSS on the full-size plus_large layout (docs/benchmarks.md) less
# the RSS of a process with that model loaded (about 1.0 GB), rounded up; per minute of audio:
# bench/bench_memory.py (docs/benchmarks.md, "Memory per request"), rounded up.
COSTS: dict[str, Cost] = {
    "clip": Cost(500.0, 6.0),  # decoded whole, 30 s windows batched (5-minute clip: 1552 MB peak)
    "frames": Cost(500.0, 6.0),  # the same, with the frame probabilities
    "recording": Cost(1100.0, 1.0),  # two streamed passes, the VAD, segment groups of about 2 min (2143 MB)
    "channels": Cost(700.0, 3.0),  # a VAD per channel, the channels' levels (1644 MB)
    "diarize": Cost(1800.0, 1.0),  # CAM++, its windows' embeddings, the clustering (2755 MB)
    "batch": Cost(1300.0, 6.0),  # a group of files decoded together, their batch padded
}


class MemoryBusy(EmotionAppError):
    """No memory for this request now: the client should try again after `retry_after_s`."""

    code = "memory_busy"

    def __init__(self, message: str, retry_after_s: int = RETRY_AFTER_S):
        super().__init__(message)
        self.retry_after_s = retry_after_s


def request_kind(request) -> str:
    """The COSTS kind of a RequestOptions."""
    if request.segment is None:
        return "frames" if request.granularity == "frame" else "clip"
    speakers = request.speakers
    if speakers is not None and speakers.mode == "channels":
        return "channels"
    if speakers is not None and speakers.diarize:
        return "diarize"
    return "recording"


def estimate_mb(kind: str, seconds: float) -> float:
    """The peak MB a request of `kind` (a COSTS key) on `seconds` of audio holds beyond the model."""
    cost = COSTS[kind]
    return cost.fixed_mb + cost.per_minute_mb * max(0.0, seconds) / 60.0


def source_seconds(src, max_s: float) -> float:
    """An opened (probed) Source's length for the estimate: its declared duration; without one,
    its bytes read as low-bitrate audio (UNKNOWN_BYTES_PER_S); at most `max_s`."""
    if src.declared_s:
        return min(float(src.declared_s), max_s)
    data = src.data
    try:
        size = len(data) if isinstance(data, (bytes, bytearray)) else os.path.getsize(data)
    except (TypeError, OSError):
        return max_s
    return min(size / UNKNOWN_BYTES_PER_S, max_s)


def default_budget_mb(meminfo: str = "/proc/meminfo") -> float:
    """MemTotal less SYSTEM_SHARE of it and this process's RSS now (the model, once loaded), at
    least FLOOR_MB. Where /proc/meminfo is missing: os.sysconf's physical pages."""
    total = _mem_total_mb(meminfo)
    return max(FLOOR_MB, total * (1 - SYSTEM_SHARE) - _rss_mb())


def _mem_total_mb(meminfo: str) -> float:
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (ValueError, OSError, AttributeError):
        return FLOOR_MB / (1 - SYSTEM_SHARE)


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


class MemoryBudget:
    """`budget_mb` shared by the requests that `hold` part of it; a bounded queue for the rest."""

    def __init__(self, budget_mb: float, wait_s: float = WAIT_S, max_waiting: int = MAX_WAITING):
        self.budget_mb = float(budget_mb)
        self.wait_s = wait_s
        self.max_waiting = max_waiting
        self.in_use_mb = 0.0
        self.running = 0
        self.waiting = 0
        self.refused = 0  # since the start
        self.waited = 0  # requests that had to wait, since the start
        self._turn = threading.Condition()
        self._queue: list[object] = []  # waiting requests' tickets, first come first served

    @classmethod
    def for_machine(cls, max_memory_gb: float | None = None, **kwargs) -> MemoryBudget:
        """`max_memory_gb` (GiB) when given, else `default_budget_mb()`."""
        budget = max_memory_gb * 1024 if max_memory_gb else default_budget_mb()
        return cls(budget, **kwargs)

    @contextlib.contextmanager
    def hold(self, mb: float, what: str = "a request") -> Iterator[None]:
        """Reserve `mb` for the `with` block, waiting in the queue for it when it does not fit now.
        Raises MemoryBusy when the queue is full or the wait passes `wait_s`, and EmotionAppError
        (`too_long`) when `mb` is more than the whole budget. In a worker thread only."""
        if mb > self.budget_mb:
            self._refuse(what, mb, "more than the whole budget")
            raise EmotionAppError(
                f"{what} would need about {mb:.0f} MB, more than this server's memory budget of {self.budget_mb:.0f} MB: "
                "send a shorter recording (or cut it), or ask the server's operator for a larger --max-memory-gb.",
                "too_long",
            )
        self._admit(mb, what)
        try:
            yield
        finally:
            with self._turn:
                self.in_use_mb -= mb
                self.running -= 1
                self._turn.notify_all()

    def _admit(self, mb: float, what: str) -> None:
        with self._turn:
            if not self._queue and self._fits(mb):
                self._take(mb)
                return
            if len(self._queue) >= self.max_waiting:
                self._refuse(what, mb, f"{len(self._queue)} already waiting")
                raise self._busy()
            ticket = object()
            self._queue.append(ticket)
            self.waiting, self.waited = len(self._queue), self.waited + 1
            logger.info("%s waits for %.0f MB of memory (%.0f of %.0f MB in use)", what, mb, self.in_use_mb, self.budget_mb)
            deadline = time.monotonic() + self.wait_s
            try:
                while not (self._queue[0] is ticket and self._fits(mb)):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self._refuse(what, mb, f"no room after {self.wait_s:g} s")
                        raise self._busy()
                    self._turn.wait(left)
                self._take(mb)
            finally:
                self._queue.remove(ticket)
                self.waiting = len(self._queue)
                self._turn.notify_all()  # the next in the queue may fit now

    def _fits(self, mb: float) -> bool:
        return self.in_use_mb + mb <= self.budget_mb

    def _take(self, mb: float) -> None:
        self.in_use_mb += mb
        self.running += 1

    def _refuse(self, what: str, mb: float, why: str) -> None:
        self.refused += 1
        logger.warning(
            "memory budget: refused %s (about %.0f MB; %.0f of %.0f MB in use, %d running; %s)",
            what, mb, self.in_use_mb, self.budget_mb, self.running, why,
        )  # fmt: skip

    def _busy(self) -> MemoryBusy:
        seconds = RETRY_AFTER_S
        return MemoryBusy(f"The server is busy: its memory is taken by other long analyses. Try again in {seconds} s.", seconds)

    def health(self) -> dict:
        """What /api/health says: the budget, what is in use, how many run and wait (read without the lock)."""
        return {
            "budget_mb": round(self.budget_mb),
            "in_use_mb": round(self.in_use_mb),
            "running": self.running,
            "waiting": self.waiting,
            "refused": self.refused,
            "max_waiting": self.max_waiting,
            "wait_s": self.wait_s,
        }
