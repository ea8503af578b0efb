"""Per-request output folders: `outputs_YYYYMMDD_HHMMSS[_N]/`, written whole or not at all.

Files are written into a hidden temporary folder beside the final one and renamed into place, so
a failure never leaves a half-written folder, and the final name is claimed atomically (two
requests in the same second get `_2`, `_3`, ...). No user-supplied name decides any path.

Download links are private: `/api/outputs/<folder>/<key>/<file>`, where the key is
HMAC-SHA256(secret, folder name) cut to 192 bits, and the secret is `<outputs>/.secret` (mode 0600,
made on first use). Links survive restarts and need no index; deleting `.secret` invalidates them
all. A folder's name alone (it is in result.json) opens nothing.

On a server with users, a folder is its maker's: the request's user (`owned_by`, a context
variable the web layer sets around each request, so every writer below it needs no argument)
is written as `.owner` inside it, never downloadable, and `list_results` lists a user's folders.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import shutil
import socket
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path

import numpy as np

from .constants import SAMPLE_RATE
from .errors import EmotionAppError

logger = logging.getLogger(__name__)

SECRET_FILE = ".secret"
OWNER_FILE = ".owner"  # inside an output folder: the name of the user whose request made it
KEY_BYTES = 24  # 192 bits of the HMAC in each link (32 URL-safe characters)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
FOLDER_RE = re.compile(r"^outputs_\d{8}_\d{6}(_\d+)?$")
FILES = (
    "result.json",
    "processed_audio.wav",
    "embedding.npy",
    "frames.csv",
    "segments.csv",
    "segments.json",
    "segments.vtt",
    "scores.png",
    "timeline.png",
    "turns.csv",
    "conversation.vtt",
    "conversation.srt",
    "conversation.png",
)


# The user whose request is running in this context (None: no users). Per request: the web layer
# sets it around a request's work, and worker threads started with the context copied see it.
OWNER: ContextVar[str | None] = ContextVar("emotion_app_owner", default=None)

FULL_BYTES = 1 << 20  # a write that fails with less free than this on the disk failed for want of space
DISK_FULL_RETRY_S = 60  # the Retry-After of a disk_full answer: the sweeper frees space meanwhile


class DiskFull(EmotionAppError):
    """The outputs folder's disk is full: the result could not be written (nothing was left behind)."""

    code = "disk_full"
    retry_after_s = DISK_FULL_RETRY_S


_in_flight: set[str] = set()  # this process's temp folders still being built (the sweeper skips them)
_in_flight_lock = threading.Lock()


def temp_prefix() -> str:
    """`.tmp-PID@HOST~`: whose temp folder it is, so that a server starting on an outputs folder that
    other servers share (docs/scale.md) deletes only those of dead processes on its own host."""
    return f".tmp-{os.getpid()}@{socket.gethostname()}~"


def temp_owner(name: str) -> tuple[int, str] | None:
    """(pid, host) of a temp folder's name made by `temp_prefix`; None for another name."""
    head, sep, _ = name.removeprefix(".tmp-").rpartition("~")
    pid, at, host = head.partition("@")
    return (int(pid), host) if sep and at and pid.isdigit() else None


def new_temp_folder(outputs_dir: Path) -> Path:
    """A hidden folder inside `outputs_dir` to build an output folder in (named by `temp_prefix`)."""
    outputs_dir = Path(outputs_dir)
    try:
        outputs_dir.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=temp_prefix(), dir=outputs_dir))
    except OSError as exc:
        if _disk_full(exc, outputs_dir):
            raise _full(outputs_dir, exc) from exc
        raise
    with _in_flight_lock:
        _in_flight.add(str(path))
    return path


@contextlib.contextmanager
def temp_folder(outputs_dir: Path, tmp: Path | None = None) -> Iterator[Path]:
    """`tmp` (or a new `new_temp_folder`) for a `with` block that builds an output folder in it:
    deleted with its content when the block raises (KeyboardInterrupt too), so that a failure
    leaves nothing behind; on success write_output_folder has renamed it into place. A write that
    failed because the disk is full raises DiskFull (the error a user can act on: try later)."""
    tmp = tmp or new_temp_folder(outputs_dir)
    try:
        yield tmp
    except BaseException as exc:
        full = _disk_full(exc, tmp)  # before the folder goes: deleting it frees the space
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise _full(outputs_dir, exc) from exc
        raise


@contextlib.contextmanager
def owned_by(user: str | None) -> Iterator[None]:
    """Output folders written inside this block (in this context) are `user`'s."""
    token = OWNER.set(user)
    try:
        yield
    finally:
        OWNER.reset(token)


def _disk_full(exc: BaseException, path: Path) -> bool:
    """Whether `exc`, raised while writing under `path`, means its disk is full: ENOSPC or EDQUOT,
    or a writer that gives no errno (libsndfile's "System error") with the disk all but full."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, EmotionAppError) or not isinstance(exc, Exception):
        return False
    try:
        return shutil.disk_usage(path).free < FULL_BYTES
    except OSError:
        return False


def _full(outputs_dir: Path, exc: BaseException) -> DiskFull:
    logger.error("the disk of %s is full: a result could not be written (%s); nothing was kept", outputs_dir, exc)
    return DiskFull(
        "The server's disk is full: the result could not be written. Try again later; the server deletes old results "
        "to make room."
    )


def in_flight(path) -> bool:
    """Whether `path` is a temp folder of a request still running in this process (however long it
    takes: a 2-hour recording on 2 cores models for over 15 minutes). Forgets folders that are gone."""
    with _in_flight_lock:
        _in_flight.difference_update([p for p in _in_flight if not os.path.isdir(p)])
        return str(path) in _in_flight


def write_output_folder(
    outputs_dir: Path,
    result: dict | None,
    samples: np.ndarray | Path | None,
    embedding: np.ndarray | None,
    now: datetime,
    extra: dict[str, str | bytes] | None = None,
    tmp: Path | None = None,
) -> Path:
    """Write result.json, processed_audio.wav (16 kHz mono PCM; `samples` may be a WAV already
    written into `tmp`), embedding.npy and the `extra` files (relative name -> content) into a
    temporary folder (`tmp`, or a new one) and rename it into place; return the folder."""
    import soundfile as sf

    base = f"outputs_{now:%Y%m%d_%H%M%S}"
    with temp_folder(outputs_dir, tmp) as tmp:
        if isinstance(samples, np.ndarray):
            sf.write(tmp / "processed_audio.wav", samples, SAMPLE_RATE, subtype="PCM_16")
        elif samples is not None and Path(samples) != tmp / "processed_audio.wav":
            os.replace(samples, tmp / "processed_audio.wav")
        if embedding is not None:
            np.save(tmp / "embedding.npy", embedding)
        if (owner := OWNER.get()) is not None:
            (tmp / OWNER_FILE).write_text(owner, encoding="utf-8")
        for name, content in (extra or {}).items():
            path = tmp / _relative(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content, encoding="utf-8")
        # result.json laid out once, its output_dir a placeholder filled per name tried (requests in one
        # second try name after name; a frame result's text takes tens of ms). The caller's dict is left as it is.
        placeholder = f"<output_dir {secrets.token_hex(8)}>"
        text = None if result is None else result_text({**result, "output_dir": placeholder})
        for n in range(1, 10_000):
            folder = Path(outputs_dir) / (base if n == 1 else f"{base}_{n}")
            if folder.exists():  # taken: no write for it (the rename below still decides a race)
                continue
            if text is not None:
                (tmp / "result.json").write_text(text.replace(placeholder, folder.name), encoding="utf-8")
            try:
                # rename() onto an existing non-empty folder fails, so the first writer wins the name
                os.rename(tmp, folder)
                return folder
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
        raise OSError(f"no free output folder name for {base}")


def result_text(result: dict) -> str:
    """A result.json's text: objects laid out as `json.dumps(indent=2)` lays them out, but each list
    on one line or, a list of objects or lists (frames, segments), one item a line. As readable, a
    third of the size for frames, and written by json's C encoder, which `indent` turns off: a
    10-minute frame result took seconds to write."""

    encode = json.JSONEncoder(ensure_ascii=False).encode

    def laid_out(value, pad: str) -> str:
        inner = pad + "  "
        if isinstance(value, dict) and value:
            keys = (k if isinstance(k, str) else encode(k) for k in value)  # json's own key conversion: 1 -> "1"
            items = (f"{inner}{encode(key)}: {laid_out(v, inner)}" for key, v in zip(keys, value.values()))
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
            return "[\n" + ",\n".join(inner + encode(v) for v in value) + "\n" + pad + "]"
        return encode(value)

    return laid_out(result, "")


def _relative(name: str) -> Path:
    """A file name the program chose, checked to stay inside the folder."""
    path = Path(name)
    if path.is_absolute() or any(part in ("..", "") for part in path.parts):
        raise ValueError(f"output file name {name!r} must be a relative path inside the folder")
    return path


def output_file(outputs_dir: Path, folder: str, key: str, name: str) -> Path | None:
    """The path of a downloadable file, or None: a known file name, in an output folder whose key
    matches, both real (a symlinked folder or file is refused, never followed)."""
    if not FOLDER_RE.match(folder) or name not in FILES:
        return None
    expected = folder_key(outputs_dir, folder, create=False)
    if expected is None or not hmac.compare_digest(key.encode(), expected.encode()):
        return None
    path = Path(outputs_dir) / folder / name
    try:
        if not stat.S_ISDIR(os.lstat(path.parent).st_mode) or not stat.S_ISREG(os.lstat(path).st_mode):
            return None
    except OSError:
        return None
    return path


def folder_files(folder: Path) -> dict[str, Path]:
    return {name: folder / name for name in FILES if (folder / name).is_file()}


def download_urls(folder: Path, files) -> dict[str, str]:
    """REST download URL of each file of the output folder `folder` (a path inside the outputs folder)."""
    folder = Path(folder)
    key = folder_key(folder.parent, folder.name)
    return {name: f"/api/outputs/{folder.name}/{key}/{name}" for name in files}


def folder_key(outputs_dir: Path, folder: str, create: bool = True) -> str | None:
    """The secret part of a folder's download links (None when there is no secret and not `create`)."""
    secret = read_secret(outputs_dir, create)
    if secret is None:
        return None
    digest = hmac.new(secret, folder.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:KEY_BYTES]).decode()


def read_secret(outputs_dir: Path, create: bool = True) -> bytes | None:
    """The outputs folder's link secret, made (256 random bits, mode 0600) when missing and `create`."""
    path = Path(outputs_dir) / SECRET_FILE
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)  # a symlink fails here (ELOOP): refused
    except FileNotFoundError:
        if not create:
            return None
        _write_secret(path)
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(f"{path} must be a regular file")
        if mode & 0o077 and hasattr(os, "fchmod"):
            logger.warning("%s was readable by others; its mode is now 0600", path)
            os.fchmod(f.fileno(), 0o600)
        secret = f.read().strip()
    if len(secret) < 32:
        raise OSError(f"{path} is too short to be a link secret; delete it and a new one is made")
    return secret


def _write_secret(path: Path) -> None:
    """Write the secret under a temporary name and link it into place, so that two processes
    racing to make it agree on one and nobody reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".secret-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: theirs is the secret
        except OSError:  # a file system without hard links: a rename, atomic but last-wins
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def folder_owner(folder: Path) -> str | None:
    """The user who made the output folder `folder`, or None (no users, or made before them)."""
    try:
        return (Path(folder) / OWNER_FILE).read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def list_results(outputs_dir: Path, owner: str | None, everyone: bool = False, limit: int = 200) -> list[dict]:
    """The output folders of `owner` (None: none, as results made without a login are nobody's to
    list), or of `everyone`, newest first,
    at most `limit`: {"folder", "created" (ISO time), "owner", "file" and "emotion" (from result.json,
    when it has them), "files" (download URLs)}. Reads the disk: call it in a worker thread."""
    outputs_dir = Path(outputs_dir)
    if owner is None and not everyone:
        return []
    try:
        names = sorted(e.name for e in os.scandir(outputs_dir) if FOLDER_RE.match(e.name) and e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []
    found = []
    for name in reversed(names):  # the names sort by time: newest first
        folder = outputs_dir / name
        made_by = folder_owner(folder)
        if not everyone and made_by != owner:
            continue
        try:
            created = datetime.fromtimestamp(folder.stat().st_mtime).astimezone().isoformat(timespec="seconds")
        except OSError:  # deleted meanwhile (retention)
            continue
        try:
            result = json.loads((folder / "result.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            result = {}  # a batch's or an evaluation's folder has none
        entry = {"folder": name, "created": created, "owner": made_by}
        entry |= {k: result[k] for k in ("file", "emotion") if isinstance(result, dict) and k in result}
        found.append({**entry, "files": download_urls(folder, folder_files(folder))})
        if len(found) >= limit:
            break
    return found
