"""Batching across requests: the model calls of concurrent requests merged into fewer, larger ones.

A call is what `Engine.run_chunks` gets: one request's chunks (16 kHz mono, each at most a window
long) and whether their frame features are kept. `plan_batches` groups calls into model calls and
`run_merged` runs them; both the single-process server's `Batcher` (a worker thread, below) and a
Ray Serve replica (`@serve.batch`, scale/deployment.py) go through `run_merged`, so the two modes
batch alike. A call is never split: a call alone in its batch runs exactly as it would unbatched,
and merged calls are padded together as `Engine.predict_batch` pads inputs, whose results equal the
one-at-a-time ones (the model masks the padding).

The worker takes whatever is waiting when the model is free, after waiting at most `wait_s` for
more once the first call arrives: under light load a call runs at once (plus `wait_s`), under load
batches grow by themselves, which is where a GPU's throughput is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from .chunking import ChunkOutput

logger = logging.getLogger(__name__)

# Inputs batched together are padded to the longest: a batch's longest input is at most this times its
# shortest, so that padding costs at most a fifth of the batch's compute (a 4 s clip padded to 10 s
# beside a 10 s one cost 0.65 s of a two-file CLI run). Engine.predict_batch groups by it too.
MAX_PADDING = 1.25
IDLE_EXIT_S = 30.0  # the worker thread exits after this long without a call and starts again on demand

Run = Callable[[Sequence[np.ndarray], bool], list[ChunkOutput]]  # the backend's run_chunks


@dataclass(frozen=True)
class Call:
    """One request's model call: its chunks and whether their (T, D) frame features are kept."""

    chunks: Sequence[np.ndarray]
    keep_frames: bool = False
    arrived: float = field(default_factory=time.perf_counter)  # when it was queued (its wait is counted from here)


@dataclass(frozen=True)
class BatchStats:
    """One model call of merged requests, for the metrics: `calls` requests merged, `chunks` in all,
    `queue_s` each call's wait before the model (s), `model_s` the model call's time (s)."""

    calls: int
    chunks: int
    queue_s: tuple[float, ...]
    model_s: float


def plan_batches(calls: Sequence[Call], max_chunks: int, max_samples: int) -> list[list[int]]:
    """Group calls (by index) into model calls: calls with the same `keep_frames`, by their longest
    chunk, at most `max_chunks` chunks and `max_samples` padded samples a group, the longest chunk at
    most MAX_PADDING times the shortest call's longest. A call over the limits on its own runs alone."""
    groups: list[list[int]] = []
    for keep in (False, True):
        order = sorted((i for i, c in enumerate(calls) if c.keep_frames == keep), key=lambda i: _longest(calls[i]))
        group: list[int] = []
        chunks = 0
        for i in order:
            n, longest = len(calls[i].chunks), _longest(calls[i])
            fits = (
                group
                and chunks + n <= max_chunks
                and (chunks + n) * longest <= max_samples
                and longest <= MAX_PADDING * _longest(calls[group[0]])
            )
            if group and not fits:
                groups.append(group)
                group, chunks = [], 0
            group.append(i)
            chunks += n
        if group:
            groups.append(group)
    return groups


def run_merged(
    run: Run, calls: Sequence[Call], max_chunks: int, max_samples: int, on_batch: Callable[[BatchStats], None] | None = None
) -> list[list[ChunkOutput] | BaseException]:
    """Run `calls` in as few model calls as `plan_batches` allows: each call's outputs in its order,
    or the exception of the model call it was in (the other groups still run). `on_batch(stats)`
    after each model call."""
    results: list = [None] * len(calls)
    for group in plan_batches(calls, max_chunks, max_samples):
        chunks = [chunk for i in group for chunk in calls[i].chunks]
        t0 = time.perf_counter()
        try:
            outputs = run(chunks, calls[group[0]].keep_frames)
        except Exception as exc:  # noqa: BLE001 - handed to each call of the group, whose caller raises it
            for i in group:
                results[i] = exc
            continue
        model_s = time.perf_counter() - t0
        at = 0
        for i in group:
            n = len(calls[i].chunks)
            results[i], at = outputs[at : at + n], at + n
        if on_batch is not None:
            waits = tuple(max(0.0, t0 - calls[i].arrived) for i in group)
            _report(on_batch, BatchStats(len(group), len(chunks), waits, model_s))
    return results


def _longest(call: Call) -> int:
    return max((len(c) for c in call.chunks), default=0)


def _report(on_batch: Callable[[BatchStats], None], stats: BatchStats) -> None:
    try:
        on_batch(stats)
    except Exception:  # a metrics fault must not fail the requests
        logger.exception("the batch report failed")


@dataclass
class _Job:
    call: Call
    future: Future = field(default_factory=Future)


class Batcher:
    """Merges the concurrent calls of many request threads into the backend's model calls, made by
    one worker thread (so the backend is called by one thread at a time). `run` blocks its caller
    (a request's worker thread, never the event loop) until its outputs are ready."""

    def __init__(
        self,
        run: Run,
        max_chunks: int,
        max_samples: int,
        wait_s: float = 0.0,
        on_batch: Callable[[BatchStats], None] | None = None,
    ):
        self._run, self.max_chunks, self.max_samples, self.wait_s = run, max_chunks, max_samples, wait_s
        self.on_batch = on_batch
        self._cond = threading.Condition()
        self._jobs: deque[_Job] = deque()
        self._thread: threading.Thread | None = None

    def run(self, chunks: Sequence[np.ndarray], keep_frames: bool = False) -> list[ChunkOutput]:
        """The outputs of `chunks`, in order, scored in a model call shared with other requests' calls."""
        job = _Job(Call(list(chunks), keep_frames))
        with self._cond:
            self._jobs.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="model-batcher", daemon=True)
                self._thread.start()
            self._cond.notify()
        return job.future.result()

    def _take(self) -> list[_Job] | None:
        """Under the lock: the waiting jobs, after up to `wait_s` for more (None: idle long enough to exit)."""
        idle_since = time.monotonic()
        while not self._jobs:
            left = IDLE_EXIT_S - (time.monotonic() - idle_since)
            if left <= 0:
                self._thread = None
                return None
            self._cond.wait(left)
        deadline = time.monotonic() + self.wait_s
        while sum(len(job.call.chunks) for job in self._jobs) < self.max_chunks:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._cond.wait(left)
        taken, count = [], 0
        while self._jobs and (not taken or count + len(self._jobs[0].call.chunks) <= self.max_chunks):
            job = self._jobs.popleft()
            taken.append(job)
            count += len(job.call.chunks)
        return taken

    def _work(self) -> None:
        while True:
            with self._cond:
                jobs = self._take()
            if jobs is None:
                return
            try:
                results = run_merged(self._run, [job.call for job in jobs], self.max_chunks, self.max_samples, self.on_batch)
            except BaseException as exc:  # noqa: BLE001 - outside the model calls (planning, say): fail these calls, go on
                logger.exception("the batcher failed %d calls outside their model calls", len(jobs))
                results = [exc] * len(jobs)
            for job, result in zip(jobs, results):
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)
