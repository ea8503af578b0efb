"""The audit log (`serve --audit-log FILE`): one JSON line per request that does something.

    {"time": "2026-12-07T01:20:00.123Z", "user": "ana", "via": "key", "method": "POST",
     "route": "/api/predict", "status": 200, "seconds": 0.412, "bytes_in": 48044, "client": "10.0.0.7"}

`user` is the caller the guard found (callers.py: "key" or "page"), null for a request that named
nobody (a refused one, a login, the old single `--auth`). Logged: the REST API, /api/stream, /mcp,
the page's login, uploads, analyses and file downloads; not the page's scripts, styles and
heartbeats. Never logged: the query string, the request's body (audio), headers (keys, cookies,
passwords); a download link's key is replaced by `-`.

The guard writes a line on the event loop without waiting for the disk: the line goes into a queue
(logging's QueueHandler) and a thread of its own (QueueListener) writes it to a RotatingFileHandler,
which starts a new file past `max_bytes` and keeps `backups` old ones (FILE.1, FILE.2, ...).
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import queue
import re
from datetime import datetime, timezone
from pathlib import Path

import anyio

MAX_BYTES = 10 * 2**20
BACKUPS = 5
AUDITED = ("/api", "/mcp", "/login", "/logout", "/gradio_api/upload", "/gradio_api/queue/join", "/gradio_api/call")
AUDITED += ("/gradio_api/run", "/gradio_api/file=")
DOWNLOAD_KEY = re.compile(r"^(/api/outputs/[^/]+/)[^/]+(/.*)$")


def audited(path: str) -> bool:
    return path == "/" or any(path.startswith(prefix) for prefix in AUDITED)


def route_of(path: str) -> str:
    """The path as logged: a download link's key replaced by `-`, at most 300 characters."""
    return DOWNLOAD_KEY.sub(r"\1-\2", path)[:300]


class AuditLog:
    """JSON lines into a rotated file, written by a thread of its own."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handler = logging.handlers.RotatingFileHandler(
            self.path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True
        )
        self.handler.setFormatter(logging.Formatter("%(message)s"))
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        # A logger of its own, outside logging's tree: nothing else writes to it, and two servers in
        # one process (tests) keep their lines apart.
        self._logger = logging.Logger("emotion_app.audit", logging.INFO)
        self._logger.addHandler(logging.handlers.QueueHandler(self._queue))
        self._listener = logging.handlers.QueueListener(self._queue, self.handler)

    def write(self, scope, entry: dict, seconds: float) -> None:
        """One request's line: `entry` holds user, via, status and bytes_in; the rest is from `scope`."""
        now = datetime.now(timezone.utc)
        line = {"time": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"}
        line |= {"user": entry.get("user"), "via": entry.get("via")}
        line |= {"method": scope.get("method", "WEBSOCKET"), "route": route_of(scope.get("path", ""))}
        line |= {"status": entry.get("status", 0), "seconds": round(seconds, 3), "bytes_in": entry.get("bytes_in", 0)}
        line["client"] = (scope.get("client") or ("unknown", 0))[0]
        self._logger.info(json.dumps(line, ensure_ascii=False))

    @contextlib.asynccontextmanager
    async def lifespan(self):
        """The writing thread, started and stopped with the server (stopping writes what is queued)."""
        self._listener.start()
        try:
            yield
        finally:
            # joins the thread once it has written the lines still queued: off the event loop
            await anyio.to_thread.run_sync(self._listener.stop)
            self.handler.close()
