"""A fine-tune as a job in its own process, for the page: one at a time, progress in a file, cancel.

    jobs = JobRunner(outputs / "finetune_jobs")
    jobs.start(JobSpec(data=[...], names=[...], out="outputs/models/mine", model="/models/base", options={"epochs": 5}))
    jobs.progress()        # progress.json: {"state": "features" | "training" | "done" | ..., ...}
    jobs.cancel()          # the job's whole process group is killed

The job runs `python -m emotion_app.finetune.job JOB_DIR` in a new session (its own process
group), so the server's threads and event loop never wait for it and a cancel reaches every
process it started. It reads JOB_DIR/spec.json (the upload, copied into JOB_DIR/data/ first, so
that Gradio's cache may delete its copy), runs `fine_tune` and writes JOB_DIR/progress.json,
whole each time (temporary file, then rename), which the page polls:

    {"state": "starting" | "features" | "training" | "done" | "failed" | "cancelled",
     "done": n, "total": m,                  # clips (features) or optimizer steps (training)
     "curve": [...],                         # one record per finished epoch (loop.py)
     "folder": ..., "labels": [...], "validation": {...},   # when done
     "error": ..., "code": ...}              # when failed

Its output goes to JOB_DIR/log.txt. A second `start` while one runs raises JobRunning.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from ..errors import EmotionAppError

logger = logging.getLogger(__name__)

FINAL = ("done", "failed", "cancelled")
WRITE_EVERY_S = 0.5  # progress.json at most this often while steps run (every state change at once)


class JobRunning(EmotionAppError):
    """A fine-tune job runs already (one at a time)."""

    code = "job_running"


@dataclass(frozen=True)
class JobSpec:
    data: list[str]  # the uploaded files (a zip, or a table and its audio)
    names: list[str]  # their names as uploaded
    out: str  # the model folder to write
    model: str  # the base model (a folder)
    options: dict = field(default_factory=dict)  # FineTuneOptions' fields
    owner: str | None = None  # the page's user who started it (None: no logins): only they see and cancel it


def write_json(path: Path, content: dict) -> None:
    """`content` as `path`, whole (a reader never sees half a file)."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(content, f, ensure_ascii=False)
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _end_group(pgid: int, timeout_s: float) -> None:
    """Kill what is left of process group `pgid` once its leader has ended, until the group is gone
    (or `timeout_s`): a child the job started may outlive the leader by a moment, and one that
    ignores SIGTERM would outlive it for good."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    logger.warning("fine-tune job's process group %d still has processes after %.0f s", pgid, timeout_s)


class JobRunner:
    """One fine-tune process at a time, its folders under `root`."""

    def __init__(self, root: Path, on_done: Callable[[dict], None] | None = None):
        self.root, self.on_done = Path(root), on_done  # on_done(progress) once a job has finished well
        self._lock = threading.Lock()  # held for a few file operations only, in the page's worker threads
        self._proc: subprocess.Popen | None = None
        self._dir: Path | None = None
        self._cancelled = False
        self._watcher: threading.Thread | None = None
        self.owner: str | None = None  # the running (or last) job's JobSpec.owner

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, spec: JobSpec) -> Path:
        """Start `spec` in its own process; its folder. JobRunning when one runs."""
        with self._lock:
            if self.running():
                raise JobRunning("A fine-tune is running; wait for it to finish, or cancel it, before starting another.")
            folder = self.root / datetime.now().strftime("job_%Y%m%d_%H%M%S_%f")
            (folder / "data").mkdir(parents=True)
            copies = []
            for i, (path, name) in enumerate(zip(spec.data, spec.names)):
                copy = folder / "data" / f"{i:04d}_{Path(name).name}"
                shutil.copyfile(path, copy)
                copies.append(str(copy))
            write_json(folder / "spec.json", asdict(spec) | {"data": copies})
            write_json(folder / "progress.json", {"state": "starting"})
            with open(folder / "log.txt", "wb") as log:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "emotion_app.finetune.job", str(folder)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
            self._dir, self._cancelled, self.owner = folder, False, spec.owner
            self._watcher = threading.Thread(target=self._watch, args=(self._proc,), name="finetune-job", daemon=True)
            self._watcher.start()
            logger.info("fine-tune job %s started (pid %d)", folder.name, self._proc.pid)
            return folder

    def _watch(self, proc: subprocess.Popen) -> None:
        """In a thread of its own: once the job's process ends, `on_done` with its progress if it finished well."""
        proc.wait()
        progress = self.progress()
        if progress["state"] == "done" and self.on_done is not None:
            try:
                self.on_done(progress)
            except Exception:  # noqa: BLE001 - the folder stays on disk; the log says why it is not served
                logger.exception("the fine-tuned model %s could not be served", progress.get("folder"))

    def progress(self) -> dict:
        """The running (or last) job's progress.json; {"state": "none"} before any. A process that
        ended without saying how is "failed", with its log's last line."""
        with self._lock:
            folder, proc, cancelled = self._dir, self._proc, self._cancelled
        if folder is None:
            return {"state": "none"}
        state = read_json(folder / "progress.json") or {"state": "starting"}
        if cancelled and state.get("state") != "done":  # a job that finished as it was cancelled stays done
            return {**state, "state": "cancelled"}
        if proc is not None and proc.poll() is not None and state.get("state") not in FINAL:
            lines = (folder / "log.txt").read_text(encoding="utf-8", errors="replace").strip().splitlines()
            return {**state, "state": "failed", "error": lines[-1] if lines else f"the job stopped (exit {proc.returncode})"}
        return state

    def cancel(self, timeout_s: float = 5.0) -> bool:
        """Stop the running job and every process it started (its process group); False when none runs."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                return False
            self._cancelled = True
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout_s)
                break
            except subprocess.TimeoutExpired:
                continue
        _end_group(proc.pid, timeout_s)
        logger.info("fine-tune job %s cancelled", self._dir.name if self._dir else "?")
        return True

    def wait(self, timeout_s: float) -> dict:
        """The progress once the job ended and `on_done` ran (or after `timeout_s`)."""
        proc, watcher = self._proc, self._watcher
        if proc is not None:
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
        if watcher is not None:
            watcher.join(timeout_s)
        return self.progress()


class _Progress:
    """progress.json of the job in `folder`, written as the fine-tune goes."""

    def __init__(self, folder: Path):
        self.path, self.state, self.last = folder / "progress.json", {"state": "starting", "curve": []}, 0.0

    def update(self, force: bool = False, **changes) -> None:
        changed = changes.get("state", self.state["state"]) != self.state["state"]
        self.state.update(changes)
        now = time.monotonic()
        if force or changed or now - self.last >= WRITE_EVERY_S:
            write_json(self.path, self.state)
            self.last = now

    def epoch(self, record: dict) -> None:
        self.update(force=True, curve=[*self.state["curve"], record])


def run_job(folder: Path) -> int:
    """The job's process: the spec's fine-tune, its progress written to progress.json."""
    from ..heads.dataset import read_uploads
    from .run import FineTuneOptions, fine_tune

    folder = Path(folder)
    spec = JobSpec(**json.loads((folder / "spec.json").read_text(encoding="utf-8")))
    progress = _Progress(folder)
    try:
        options = FineTuneOptions(**spec.options)
        data = read_uploads(spec.data, spec.names)
        run = fine_tune(
            data, out=spec.out, model=spec.model, options=options,
            on_features=lambda done, total: progress.update(state="features", done=done, total=total),
            on_step=lambda done, total: progress.update(state="training", done=done, total=total, epochs=options.epochs),
            on_epoch=progress.epoch,
        )  # fmt: skip
    except EmotionAppError as exc:
        progress.update(force=True, state="failed", error=exc.message, code=exc.code)
        return 2
    except (ValueError, TypeError) as exc:  # options out of range
        progress.update(force=True, state="failed", error=str(exc), code="bad_option")
        return 2
    except Exception as exc:  # noqa: BLE001 - the page says it failed; the traceback goes to log.txt
        logger.exception("fine-tune job failed")
        progress.update(force=True, state="failed", error=f"{type(exc).__name__}: {exc}", code="internal")
        return 1
    card = run.card
    validation = {k: card["validation"][k] for k in ("wa", "ua", "macro_f1", "n")} if card["validation"] else None
    progress.update(force=True, state="done", folder=str(run.folder), labels=card["labels"], validation=validation)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(run_job(Path(sys.argv[1])))
