"""The web server's settings (`AppSettings`): one frozen dataclass that the CLI fills from its flags
and build_app (server.py) and the parts it assembles read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AppSettings:
    """What `emotion-app serve` is asked for: the server, its limits, who may use it and how it keeps results."""

    host: str = "127.0.0.1"
    port: int = 7860
    outputs_dir: Path = Path("outputs")
    max_upload_mb: float = 100.0
    auth: tuple[str, str] | None = None
    share: bool = False
    concurrency: int = 2  # page/API predictions decoded at once; model calls are serialised anyway
    keep_hours: float | None = 24.0  # results (and Gradio's cached uploads) older than this are deleted; None/0: kept
    max_outputs_gb: float | None = None  # GiB the output folders may take, oldest deleted first; None: no cap
    min_free_disk_mb: float | None = 1024.0  # under this much free on the outputs' disk, the oldest results go; None/0: never
    disk_check_s: float | None = None  # how often the free space is checked; None: retention.DISK_CHECK_S
    cors_origins: tuple[str, ...] = ()  # other origins allowed to call the server from a browser ("*": any)
    allowed_hosts: tuple[str, ...] = ()  # Host names served besides the bind address (api/hosts.py)
    receive_timeout_s: float | None = None  # request body timeouts; None: guard.RECEIVE_TIMEOUT_S,
    body_timeout_s: float | None = None  # guard.BODY_TIMEOUT_S
    sweep_interval_s: float | None = None  # None: retention.SWEEP_INTERVAL_S
    max_live_sessions: int = 8  # live takes at once, page and /api/stream together
    live_max_minutes: float = 10.0  # a live take's limit, of audio and of wall-clock time
    mcp: bool = False  # serve the MCP tools at /mcp (api/mcp_server.py)
    mcp_allow_urls: bool = False  # let the MCP tools fetch http(s) URLs
    users_file: Path | None = None  # users, their API keys and limits (web/users.py, api/callers.py)
    audit_log: Path | None = None  # JSON lines, one per request (api/audit.py)
    audit_max_mb: float = 10.0  # the audit log starts a new file past this size (5 old ones kept)
    max_memory_gb: float | None = None  # GiB the analyses may hold at once (memory.py); None: from the machine's memory
    memory_wait_s: float | None = None  # the longest wait for memory; None: memory.WAIT_S
    cross_batch: bool = True  # concurrent requests' model calls merged into shared ones (model/batcher.py)
    batch_max: int = 0  # chunks per merged model call; 0: the engine's batch size
    batch_wait_ms: float = 2.0  # how long the first call waits for others to join its model call
    models: tuple[str, ...] = ()  # fine-tuned folders ("DIR" or "NAME=DIR") served beside the model (modelset.py)
