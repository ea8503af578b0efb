"""Who may reach what, as build_app (server.py) sets it up: the guard's options (api/guard.py), the
users file and the audit log, the page's login and sessions, the paths the page may hand out, and
the warning for a server open to anyone."""

from __future__ import annotations

import logging
import secrets
import tempfile
from pathlib import Path

from .settings import AppSettings

logger = logging.getLogger(__name__)


def guard_options(settings: AppSettings, throttle, private_dir: Path | None) -> dict:
    """The guard's settings (api/guard.py) for these app settings."""
    from .api.hosts import HostPolicy

    hosts = HostPolicy.for_bind(settings.host, settings.allowed_hosts, settings.share)
    options = {"receive_timeout_s": settings.receive_timeout_s, "body_timeout_s": settings.body_timeout_s}
    options = {k: v for k, v in options.items() if v is not None}
    options |= {"max_upload_mb": settings.max_upload_mb, "hosts": hosts, "cors_origins": settings.cors_origins}
    login = settings.auth is not None or settings.users_file is not None
    options |= {"throttle": throttle if login else None, "private_dir": private_dir}
    if login:  # the login form shows a throttled login's answer (throttle.LOGIN_SCRIPT)
        from .api.throttle import LOGIN_SCRIPT

        options |= {"page_script": LOGIN_SCRIPT}
    if settings.mcp:  # a data URL carries the audio in base64: 4/3 of its bytes, in JSON
        from .api.mcp_audio import envelope_bytes
        from .api.mcp_server import PATH

        options |= {"larger_bodies": {PATH: envelope_bytes(settings.max_upload_mb)}}
    return options


def callers_and_audit(settings: AppSettings, lifespans: list):
    """(Callers of --users, AuditLog of --audit-log), None for each not asked; their lifespans added
    to `lifespans`. The users file is read here, before the server serves (UsersError if it cannot be)."""
    callers = audit = None
    if settings.users_file is not None:
        from .api.callers import Callers

        callers = Callers(settings.users_file)
        lifespans.append(callers.lifespan)
        logger.info("%d users from %s", len(callers.store.users), settings.users_file)
    if settings.audit_log is not None:
        from .api.audit import AuditLog

        audit = AuditLog(settings.audit_log, max_bytes=int(settings.audit_max_mb * 2**20))
        lifespans.append(audit.lifespan)
    return callers, audit


def page_login(auth: tuple[str, str] | None, callers):
    """Gradio's `auth` for the page's login form: the --auth pair, and with --users an async check of
    the users file (scrypt, in a worker thread: Gradio awaits a coroutine function on the event loop)."""
    if callers is None:
        return auth

    async def login(name: str, password: str) -> bool:
        if auth is not None and name == auth[0]:
            return secrets.compare_digest(password.encode(), auth[1].encode())
        return await callers.check_login(name, password)

    return login


def page_sessions(page):
    """cookies -> the user logged in on the page (Gradio's `App.tokens`, keyed by its access-token
    cookies), or None."""
    names = (f"access-token-{page.cookie_id}", f"access-token-unsecure-{page.cookie_id}")

    def user(cookies: dict[str, str]) -> str | None:
        for name in names:
            if name in cookies:
                found = page.tokens.get(cookies[name])
                if found:
                    return found
        return None

    return user


def page_allowed_paths(outputs: Path) -> list[str]:
    """Gradio hands the page only files inside the working directory, the temp folder or its
    `allowed_paths`, and serves `allowed_paths` to anyone by absolute path (/gradio_api/file=...).
    So the outputs folder is passed only when it lies elsewhere, and then the guard refuses those
    paths: the page's download lists are copies in Gradio's cache either way."""
    resolved = outputs.resolve()
    roots = (Path.cwd().resolve(), Path(tempfile.gettempdir()).resolve())
    if any(resolved == root or root in resolved.parents for root in roots):
        return []
    return [str(resolved)]


def warn_if_exposed(settings: AppSettings) -> None:
    from .api.hosts import is_loopback

    if settings.auth is not None or settings.users_file is not None:
        return
    if not is_loopback(settings.host):
        logger.warning(
            "Serving on %s without --auth: anyone who can reach this address can use the app. "
            "Set --auth user:password, or serve on 127.0.0.1.",
            settings.host,
        )
    if settings.share:
        logger.warning("--share without --auth: anyone with the public link can use the app. Set --auth user:password.")
