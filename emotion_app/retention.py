"""How long results stay: delete output folders by age, by total size and when the disk runs low, oldest first.

`sweep()` and `remove_temp_folders()` are plain functions over the outputs folder; `Sweeper` runs
them on a background thread for the web server (started and stopped with it). They only ever
touch entries directly inside the outputs folder that are real directories (a symlink is neither
followed nor removed): output folders named `outputs_YYYYMMDD_HHMMSS[_N]`, and the `.tmp-*`
folders that a request builds its output in (outputs.py), which a killed process leaves behind.
A folder's age is the time its files were written (its modification time). When the disk's free
space falls under a floor (`--min-free-disk-mb`), the oldest folders go until it is back above it:
the sweeper checks the free space every DISK_CHECK_S and sweeps at once, without waiting for its
interval.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .outputs import FOLDER_RE, in_flight, temp_owner

logger = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
TMP_MAX_AGE_S = 3600.0  # a temp folder this old belongs to no running request any more
SWEEP_INTERVAL_S = 300.0
DISK_CHECK_S = 10.0  # how often the sweeper looks at the disk's free space (one statvfs)


@dataclass(frozen=True)
class OutputFolder:
    path: Path
    mtime: float  # s since the epoch, when its files were written
    size: int  # bytes of its files, subfolders included


@dataclass
class SweepReport:
    removed: list[str] = field(default_factory=list)  # folder names, oldest first
    freed_bytes: int = 0
    kept: int = 0
    kept_bytes: int = 0
    low_disk: bool = False  # folders went because the disk's free space was under the floor


def _real_dirs(outputs_dir: Path):
    """(entry, lstat) of each real directory directly inside `outputs_dir`."""
    try:
        entries = list(os.scandir(outputs_dir))
    except FileNotFoundError:
        return
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            yield entry, st


def _size(path: str) -> int:
    total = 0
    try:
        entries = list(os.scandir(path))
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                total += _size(entry.path)
            else:
                total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total


def output_folders(outputs_dir: Path) -> list[OutputFolder]:
    """The output folders inside `outputs_dir`, oldest first."""
    found = [
        OutputFolder(Path(entry.path), st.st_mtime, _size(entry.path))
        for entry, st in _real_dirs(Path(outputs_dir))
        if FOLDER_RE.match(entry.name)
    ]
    return sorted(found, key=lambda f: (f.mtime, f.path.name))


def _remove(path: Path) -> bool:
    try:
        shutil.rmtree(path)
        return True
    except FileNotFoundError:
        return False
    except OSError as exc:
        logger.warning("could not delete %s: %s", path, exc)
        return False


def remove_temp_folders(outputs_dir: Path, older_than_s: float = 0.0, now: float | None = None) -> list[str]:
    """Delete the `.tmp-*` folders older than `older_than_s` (0: at start-up), except those of
    requests still running in this process and those of other live processes on this host (their
    names say whose they are: outputs.temp_owner); return their names. Another host's (a server
    sharing the folder, docs/scale.md) are removed only by age, never at start-up."""
    now = time.time() if now is None else now
    removed = []
    for entry, st in _real_dirs(Path(outputs_dir)):
        if not entry.name.startswith(TMP_PREFIX) or now - st.st_mtime < older_than_s or in_flight(entry.path):
            continue
        alive = _writer_alive(entry.name)
        if alive or (alive is None and not older_than_s):
            continue
        if _remove(Path(entry.path)):
            removed.append(entry.name)
    return removed


def _writer_alive(name: str) -> bool | None:
    """Whether the process that made temp folder `name` is alive: None when it ran on another host."""
    owner = temp_owner(name)
    if owner is None:
        return False  # an older server's name: none runs on the folder at start-up
    pid, host = owner
    if host != socket.gethostname():
        return None
    if pid == os.getpid():
        return False  # this process's own, not in flight: left by an earlier process with this pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    return True


def free_bytes(outputs_dir: Path) -> int | None:
    """The free space of the outputs folder's disk (None when it cannot be read)."""
    try:
        return shutil.disk_usage(outputs_dir).free
    except OSError:
        return None


def sweep(
    outputs_dir: Path,
    keep_hours: float | None,
    max_bytes: int | None,
    now: float | None = None,
    min_free_bytes: int | None = None,
) -> SweepReport:
    """Delete the output folders older than `keep_hours`, then the oldest ones until the rest take
    at most `max_bytes`, then the oldest ones while the disk has less than `min_free_bytes` free,
    and the `.tmp-*` folders older than TMP_MAX_AGE_S.

    `keep_hours` / `max_bytes` / `min_free_bytes` None or 0: no limit of that kind. `now`: seconds
    since the epoch (default: the current time)."""
    now = time.time() if now is None else now
    report = SweepReport()
    remove_temp_folders(outputs_dir, TMP_MAX_AGE_S, now)
    folders = output_folders(outputs_dir)
    total = sum(f.size for f in folders)
    free = free_bytes(outputs_dir) if min_free_bytes else None
    for folder in folders:  # oldest first
        too_old = bool(keep_hours) and now - folder.mtime > keep_hours * 3600
        too_big = bool(max_bytes) and total > max_bytes
        low = free is not None and free < min_free_bytes
        if not (too_old or too_big or low):
            continue
        if _remove(folder.path):
            report.removed.append(folder.path.name)
            report.freed_bytes += folder.size
            report.low_disk |= low and not (too_old or too_big)
            free = free_bytes(outputs_dir) if free is not None else None
        total -= folder.size
    report.kept = len(folders) - len(report.removed)
    report.kept_bytes = total
    return report


class Sweeper:
    """Runs `sweep` every `interval_s` seconds on a daemon thread, the first time at `start()`, and
    at once when the disk's free space, checked every `disk_check_s`, is under `min_free_bytes`."""

    def __init__(
        self,
        outputs_dir: Path,
        keep_hours: float | None,
        max_bytes: int | None,
        interval_s: float = SWEEP_INTERVAL_S,
        min_free_bytes: int | None = None,
        disk_check_s: float = DISK_CHECK_S,
    ):
        self.outputs_dir = Path(outputs_dir)
        self.keep_hours = keep_hours
        self.max_bytes = max_bytes
        self.interval_s = interval_s
        self.min_free_bytes = min_free_bytes
        self.disk_check_s = disk_check_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> SweepReport | None:
        try:
            report = sweep(self.outputs_dir, self.keep_hours, self.max_bytes, min_free_bytes=self.min_free_bytes)
        except Exception:  # a sweep that fails must not end the thread: the next one may work
            logger.exception("sweeping %s failed", self.outputs_dir)
            return None
        if report.removed:
            mb = report.freed_bytes / 1e6
            logger.info("deleted %d old output folder(s), %.1f MB; %d kept", len(report.removed), mb, report.kept)
        if report.low_disk:
            logger.warning(
                "the disk of %s had less than %.0f MB free (--min-free-disk-mb): the oldest results were deleted early",
                self.outputs_dir, self.min_free_bytes / 2**20,
            )  # fmt: skip
        return report

    def disk_low(self) -> bool:
        if not self.min_free_bytes:
            return False
        free = free_bytes(self.outputs_dir)
        return free is not None and free < self.min_free_bytes

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="emotion-app-sweeper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        self.run_once()
        step = min(self.interval_s, self.disk_check_s) if self.min_free_bytes else self.interval_s
        due = time.monotonic() + self.interval_s
        while not self._stop.wait(step):
            if time.monotonic() >= due or self.disk_low():
                self.run_once()
                due = time.monotonic() + self.interval_s

    @contextlib.asynccontextmanager
    async def lifespan(self, app=None):
        """An ASGI lifespan: the sweeper runs while the server does (joined in a worker, not on the loop)."""
        import anyio

        self.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(self.stop)
