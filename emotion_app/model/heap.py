"""The C heap under the model: freed memory kept for the next call, given back when idle (glibc).

A model call allocates and frees the same large tensors again and again (a 10 s clip's blocks: a
few MB each, dozens of times). glibc's thresholds move with what is freed: allocations over its
mmap threshold are fresh pages each time, and the heap's top is trimmed past its trim threshold,
so most of a call's tensors are new pages that the kernel faults in and zeroes: 20 000-25 000 page
faults per 10 s clip on plus_large, 8-10 % of a bf16 call on 2 cores (docs/benchmarks.md).
`keep_freed_memory` fixes them at glibc's own largest mmap threshold (32 MB, which every glibc
accepts) and twice that for the top (64 MB): a 10 s bf16 call on plus_large then faults in a few
hundred pages, not 25 000. Higher thresholds save a little more (plus_base's fp32 calls have
tensors over 32 MB) but cost memory: with 64 or 128 MB, a 24-minute file now and then peaked 200 MB
above a 2-minute one (fragments that calls of other shapes could not reuse; tests/test_engine.py
allows 64 MB, and passed 15 runs of 15 at 32/64 MB).

`IdleTrim` gives the free pages back (`trim_heap`) once no model call has run for 30 s: the
engine touches it after each call (engine.py), whichever thread made it, so a server that goes
quiet gives back what its calls freed; the fine-tuning loop trims after each batch.

Elsewhere (musl, macOS, Windows) all of it is a no-op: their allocators decide for themselves.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import threading
import time

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
MMAP_BYTES = 32 << 20  # allocations up to this come from the heap
TRIM_BYTES = 64 << 20  # free memory at the heap's top kept for the next call
IDLE_S = 30.0  # without a model call for this long, the heap is given back


def keep_freed_memory() -> bool:
    """Fix glibc's thresholds at MMAP_BYTES and TRIM_BYTES (process-wide; once). True when both
    were set, False where the C library has no `mallopt` or refused one (logged)."""
    libc = _glibc()
    return libc is not None and hasattr(libc, "mallopt") and _keep(libc)


@functools.cache
def _keep(libc) -> bool:
    settings = (("mmap", M_MMAP_THRESHOLD, MMAP_BYTES), ("trim", M_TRIM_THRESHOLD, TRIM_BYTES))
    refused = [name for name, param, value in settings if not libc.mallopt(param, value)]
    if refused:
        logger.warning("glibc refused the %s threshold: model calls may page-fault more (model/heap.py)", " and ".join(refused))
    return not refused


def trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc `malloc_trim`; nothing elsewhere).

    Calls of other shapes reuse freed memory only in part: the fine-tuning's caching pass of 200
    clips of 3-8 s on plus_large grew by 1.3 GB that nothing used, with glibc's own thresholds.
    Trimming after each clip keeps it at what one clip needs."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


class IdleTrim:
    """`trim_heap` once `idle_s` have passed without a `touch()`: a watcher thread, started by the
    first touch after a trim and ended by the trim. `touch` takes a lock for a few microseconds;
    call it from worker threads (the model's callers), never from an event loop."""

    def __init__(self, idle_s: float = IDLE_S, trim=None):
        self.idle_s = idle_s
        self._trim = trim or trim_heap
        self._lock = threading.Lock()
        self._last = 0.0
        self._watcher: threading.Thread | None = None

    def touch(self) -> None:
        """A model call just ended."""
        with self._lock:
            self._last = time.monotonic()
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch, name="heap-idle-trim", daemon=True)
                self._watcher.start()

    def _watch(self) -> None:
        while True:
            with self._lock:
                left = self._last + self.idle_s - time.monotonic()
                if left <= 0:
                    self._watcher = None
                    break
            time.sleep(left)
        self._trim()


@functools.cache
def _glibc():
    # The symbols already in the process (glibc's where there is one): no library lookup, which
    # `ctypes.util.find_library` does by running ldconfig in a child process. Windows has no
    # such handle (CDLL(None) raises TypeError there).
    try:
        libc = ctypes.CDLL(None)
    except (OSError, TypeError):
        return None
    return libc if hasattr(libc, "malloc_trim") else None  # musl and macOS have none
