"""Fair batching of the live sessions' windows into the engine's one model call.

One worker thread feeds the engine. Each model call holds at most one window per session: the
oldest window of each session that has one waiting, the sessions whose window has waited longest
first, up to `max_batch` windows and the engine's padded-samples budget. So a client that sends
faster than real time gets one window per call like everyone else, and each session's windows
are scored in order. Nothing waits to fill a batch: the worker takes whatever is due when the
model is free, so under light load a window is scored at once and under heavy load batches grow
by themselves. The worker exits after `idle_exit_s` without work and starts again on demand.

On an engine that slides (`engine.slides`: the torch backend, model/sliding.py), each session keeps
the conv features of its last window, and a model call computes only the frames of each window's
new audio (`engine.run_windows`); the ONNX backend and remote replicas score whole windows
(`engine.run_chunks`). A session's cache lives here, from its first window to `drop`.

Live windows share the engine's lock with uploads: a window that arrives while a long upload's
chunk is in the model waits for that chunk. Each batch's time is reported to `on_batch` (the hub's
capacity, capacity.py), lock wait included, with the windows that waited too long for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from ..constants import SAMPLE_RATE
from ..model.sliding import FeatureCache, StreamWindow
from .capacity import LATE_S

logger = logging.getLogger(__name__)


@dataclass
class _Job:
    key: int  # the session's id
    samples: np.ndarray  # (n,) float32 at 16 kHz
    due: float  # time.perf_counter() when it became due
    end: int | None = None  # samples since the take's start at the window's end; None: not slid
    future: Future = field(default_factory=Future)
    ready: float = 0.0  # time.perf_counter() when it became the first of its session's queue
    cache: FeatureCache | None = None  # the session's slid features, when the engine slides


@dataclass
class SchedulerStats:
    batches: int = 0  # model calls
    windows: int = 0  # windows scored
    busy_s: float = 0.0  # seconds in the model
    slid: int = 0  # windows scored on slid features (the rest: whole windows)

    @property
    def mean_batch(self) -> float:
        return self.windows / self.batches if self.batches else 0.0


class LiveScheduler:
    """Scores windows for many sessions, fairly and batched (see the module docstring)."""

    def __init__(self, engine, max_batch: int = 16, idle_exit_s: float = 30.0, on_batch=None):
        """`on_batch(seconds, audio_s, late_due)`: called in the worker after each batch scored (late_due:
        when the latest window that waited past capacity.LATE_S, since it became the first of its
        session's queue, became due; None: none did)."""
        self.engine = engine
        self.on_batch = on_batch
        self.max_batch = max_batch
        self.idle_exit_s = idle_exit_s
        self.max_batch_samples = getattr(engine, "max_batch_samples", 60 * 16_000)
        self.slides = bool(getattr(engine, "slides", False))
        self.stats = SchedulerStats()
        self._cond = threading.Condition()
        self._queues: dict[int, deque[_Job]] = {}
        self._caches: dict[int, FeatureCache] = {}  # session -> its last window's conv features
        self._thread: threading.Thread | None = None

    def submit(self, key: int, samples: np.ndarray, due: float, end: int | None = None) -> Future:
        """Queue one window of session `key`, ending `end` samples after the take's start (None: scored
        whole); the future gives its (V,) probabilities (or the model's exception). Cancelling the
        future before it runs drops the window."""
        job = _Job(key, samples, due, end)
        with self._cond:
            if self.slides and end is not None:
                job.cache = self._caches.setdefault(key, FeatureCache())
            queue = self._queues.setdefault(key, deque())
            if not queue:
                job.ready = time.perf_counter()
            queue.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="live-scheduler", daemon=True)
                self._thread.start()
            self._cond.notify()
        return job.future

    def drop(self, key: int) -> None:
        """Forget session `key`: its windows not yet in the model are cancelled, its features dropped."""
        with self._cond:
            self._caches.pop(key, None)
            for job in self._queues.pop(key, ()):
                job.future.cancel()

    def pending(self, key: int) -> int:
        """Windows of session `key` waiting for the model (not those in it)."""
        with self._cond:
            return len(self._queues.get(key, ()))

    def _take_batch(self) -> list[_Job]:
        """Under the lock: the oldest live job of each session, oldest first, within the limits."""
        heads = []
        for queue in self._queues.values():
            while queue and queue[0].future.cancelled():
                queue.popleft()
                if queue:
                    queue[0].ready = time.perf_counter()
            if queue:
                heads.append(queue[0])
        heads.sort(key=lambda job: job.due)
        batch: list[_Job] = []
        longest = 0
        for job in heads:
            longest_then = max(longest, len(job.samples))
            if batch and (len(batch) >= self.max_batch or (len(batch) + 1) * longest_then > self.max_batch_samples):
                break
            queue = self._queues[job.key]
            queue.popleft()
            if queue:  # the next window of this session waits from now: its own wait, not the one behind it
                queue[0].ready = time.perf_counter()
            if job.future.set_running_or_notify_cancel():
                batch.append(job)
                longest = longest_then
        for key in [k for k, q in self._queues.items() if not q]:
            del self._queues[key]
        return batch

    def _run(self) -> None:
        while True:
            with self._cond:
                idle_since = time.monotonic()
                while not any(self._queues.values()):
                    left = self.idle_exit_s - (time.monotonic() - idle_since)
                    if left <= 0:
                        self._thread = None
                        return
                    self._cond.wait(left)
                batch = self._take_batch()
            if batch:
                self._score(batch)

    def _score(self, batch: list[_Job]) -> None:
        t0 = time.perf_counter()
        slid = all(job.cache is not None for job in batch)
        try:
            if slid:
                outputs = self.engine.run_windows([StreamWindow(job.samples, job.end, job.cache) for job in batch])
            else:
                outputs = self.engine.run_chunks([job.samples for job in batch])
        except Exception as exc:  # handed to every waiting session; the worker goes on
            logger.exception("live batch of %d windows failed", len(batch))
            for job in batch:
                job.future.set_exception(exc)
            return
        seconds = time.perf_counter() - t0
        self.stats.batches += 1
        self.stats.windows += len(batch)
        self.stats.busy_s += seconds
        self.stats.slid += len(batch) if slid else 0
        for job, out in zip(batch, outputs):
            job.future.set_result(out.probabilities)
        if self.on_batch is not None:
            # Late: a window that waited past LATE_S since it became the first of its session's queue. A
            # client faster than real time queues several windows; only the first of them waits for
            # the model, the others wait for their own session, and that slows no one else down.
            late = [job.due for job in batch if t0 - job.ready > LATE_S]
            try:
                self.on_batch(seconds, sum(len(job.samples) for job in batch) / SAMPLE_RATE, max(late, default=None))
            except Exception:  # the worker must live on: every session's windows wait for it
                logger.exception("the live scheduler's batch report failed")
