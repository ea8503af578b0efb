"""The C heap under the model: freed memory kept for the next call, given back when idle (glibc).

A model call allocates and frees the same large tensors again and again (a 10 s clip's blocks: a
few MB each, dozens of times). glibc's thresholds move with what is freed: allocations over its
mmap threshold are fresh pages each time, and the heap's top is trimmed past its trim threshold,
so most of a call's tensors are new pages that the kernel faults in and zeroes: 20 000-25 000 page
faults per 10 s clip on plus_large, 8-10 % of a bf16 call on 2 cores (docs/benchmarks.md).
`keep_freed_memory` fixes both at 128 MB: next to no faults after the first call (plus_base in
fp32 has a few tensors over 32 MB, glibc's own largest mmap threshold), and the peak of a
24-minute file stays within 35 MB of a 2-minute one's (tests/test_engine.py allows 64; thresholds
of 256 MB kept 100 MB more, fragments that later calls of other shapes could not reuse). `trim_heap` gives the
free pages back: the batcher calls it when its worker has been idle (model/batcher.py), the
fine-tuning loop after each batch.

Elsewhere (musl, macOS, Windows) both are no-ops: their allocators decide for themselves.
"""

from __future__ import annotations

import ctypes
import functools
import logging

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
MMAP_BYTES = 128 << 20  # allocations up to this come from the heap
TRIM_BYTES = 128 << 20  # free memory at the heap's top kept for the next call


def keep_freed_memory() -> bool:
    """Fix glibc's thresholds at MMAP_BYTES and TRIM_BYTES (process-wide; once). True when set,
    False where the C library has no `mallopt`."""
    libc = _glibc()
    return libc is not None and hasattr(libc, "mallopt") and _keep(libc)


@functools.cache
def _keep(libc) -> bool:
    ok = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))
    logger.debug("glibc's heap thresholds fixed (mmap %d MB, trim %d MB): %s", MMAP_BYTES >> 20, TRIM_BYTES >> 20, ok)
    return ok


def trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc `malloc_trim`; nothing elsewhere).

    Calls of other shapes reuse freed memory only in part: the fine-tuning's caching pass of 200
    clips of 3-8 s on plus_large grew by 1.3 GB that nothing used, with glibc's own thresholds.
    Trimming after each clip keeps it at what one clip needs."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _glibc():
    # The symbols already in the process (glibc's where there is one): no library lookup, which
    # `ctypes.util.find_library` does by running ldconfig in a child process.
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "malloc_trim") else None  # musl and macOS have none
