"""How the suite shares this machine's cores (its hooks, imported by conftest.py).

`./run.sh test` runs the suite in pytest-xdist workers (`-n`, `--dist loadgroup`), a module's tests
in one worker, the modules side by side. Tests that measure time on the machine (latency bounds,
the live meter's capacity, event-loop stalls) are marked `solo` and run alone: a lock file shared
by the workers is held shared by every other test and exclusively by a solo one, over its whole
setup, call and teardown (module fixtures included: a server that measures its capacity at
start-up does so alone). A turnstile lock in front keeps a waiting solo test from being passed by
the other workers' tests forever. Solo tests that follow each other in a worker hold the lock from
the first to the last: one wait for the other workers' running tests, not one per solo test (each
of their tests in between kept the solo worker idle, a 30 s test 30 s).

torch's threads: each worker gets its share of the cores for ordinary tests (two processes with
two threads each on two cores spin against each other, as FunASR's default of four threads did in
one), a solo test all of them. Without xdist, every test starts with torch's own default. The
processes a test starts (the CLI, a server, a peak-memory script) get the same share through
OMP_NUM_THREADS, which torch reads at start: with its default (all cores) on a busy machine, a
24-minute prediction in a subprocess took 39 CPU seconds, with one thread 6 (idle threads spin
waiting for each other).

The order: the full-size model's group first (built while the other workers run their tests),
then the modules marked `long` (started early, they do not end the run alone), then the rest.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

import pytest

CORES = os.cpu_count() or 1
_torch_default: list[int] = []  # torch's thread count before any test changed it


def _workers(config) -> int:
    return int(getattr(config, "workerinput", {}).get("workercount", 1))


_kept: list = []  # the lock file, still held exclusively by the solo test just before this one


@contextlib.contextmanager
def _turn(config, solo: bool, keep: bool):
    """Held shared by an ordinary test, exclusively by a solo one (no-op outside xdist). `keep`: a
    solo test followed by another keeps it for that one."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        yield
        return
    lock = _kept.pop() if _kept else _take(workerinput, solo)
    try:
        yield
    finally:
        if keep:
            _kept.append(lock)
        else:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()


def _take(workerinput, solo: bool):
    """The lock file, locked shared (solo: exclusively) once the turnstile lets this test through."""
    base = Path(tempfile.gettempdir()) / f"emotion_app_tests_{workerinput['testrunuid']}"
    lock = open(f"{base}.lock", "a+")  # noqa: SIM115 - held until the test (or its run of solo tests) ends
    with open(f"{base}.turnstile", "a+") as turnstile:
        fcntl.flock(turnstile, fcntl.LOCK_EX)  # a solo test waiting here holds it: no one passes it
        if not solo:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        fcntl.flock(lock, fcntl.LOCK_EX if solo else fcntl.LOCK_SH)
        if solo:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
    return lock


def _share(config) -> int:
    return max(1, CORES // _workers(config))


def _set_threads(config, solo: bool) -> None:
    """Before each test, whatever an earlier one set (an Engine(threads=N), a library's default);
    under xdist also for the processes it starts (OMP_NUM_THREADS)."""
    import torch

    if not _torch_default:
        _torch_default.append(torch.get_num_threads())
    if hasattr(config, "workerinput"):
        threads = CORES if solo else _share(config)
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
    else:
        torch.set_num_threads(_torch_default[0])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    solo = item.get_closest_marker("solo") is not None
    keep = solo and nextitem is not None and nextitem.get_closest_marker("solo") is not None
    with _turn(item.config, solo, keep):
        _set_threads(item.config, solo)
        yield


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the groups into the test ids
def pytest_collection_modifyitems(config, items):
    """Each module's tests go to one worker (its module fixtures, servers and browsers built once),
    unless marked for a group of their own (`xdist_group("heavy")`: the tests that share the
    full-size model, and the solo ones). Those groups go first, their solo tests last in them: the
    full-size model is built while the other workers run their own tests, and when the solo tests
    come the other workers still have work for after them (at the very end they would sit idle).
    Then the `long` modules, then the rest (run.sh keeps this order: --no-loadscope-reorder)."""
    grouped = {item.nodeid for item in items if item.get_closest_marker("xdist_group") is not None}
    for item in items:
        if item.nodeid not in grouped:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    items.sort(
        key=lambda item: (
            item.nodeid not in grouped,
            item.get_closest_marker("long") is None,
            item.get_closest_marker("solo") is not None,
        )
    )
    if getattr(config.option, "loadgroup", False) and hasattr(items[0] if items else None, "_id"):
        for item in items:  # xdist 3.8 writes the group into `_nodeid`, which pytest 9.2 no longer reads
            group = item.get_closest_marker("xdist_group").args[0]
            item._id = type(item._id).parse(f"{item.nodeid}@{group}")
