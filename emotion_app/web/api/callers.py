"""Who is calling (`serve --users FILE`): the caller of a request, and each user's limits.

The guard (guard.py) asks `Callers.identify` for every request: an `Authorization: Bearer KEY`
header names a user by their API key (web/users.py); without one, the page's login cookie names
the user who logged in on the page (Gradio keeps its sessions; `page_user` reads them), for GET
and HEAD requests (reading one's results, following their links). The user
goes into the request's ASGI scope (`scope[SCOPE_KEY]`) for the routes to read: per request, no
global. The REST API, /api/stream and /mcp need a caller: a request without one is answered 401.

Each user has two limits, checked by the guard on those routes (`Limits`): a request rate (a
token bucket holding a minute's worth, `rate_per_minute`, refilled continuously; an empty bucket
is answered 429 `rate_limited` with `Retry-After`) and a number of requests at once
(`max_concurrent`: a request counts from its start to its last byte, a live WebSocket while it is
open; one more is answered 429 `too_many_running`).

The users file is read at start and read again, in a worker thread, when its modification time or
size changes (checked every `RELOAD_INTERVAL_S`); a file that cannot be read then is logged and the
users read before are kept. Everything else runs on the event loop, one thread, so the counters
need no lock (a thread lock there could stop the whole server).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from .. import users
from ..users import User, UserStore

logger = logging.getLogger(__name__)

SCOPE_KEY = "emotion_app.user"  # the ASGI scope's entry for the caller (a users.User)
RELOAD_INTERVAL_S = 2.0
PROTECTED = ("/api", "/mcp", "/metrics")  # paths (and what lies below them) that need a caller


def caller(scope) -> User | None:
    """The user the guard found for this request (a Starlette Request or WebSocket's scope, or the scope)."""
    scope = getattr(scope, "scope", scope)
    return scope.get(SCOPE_KEY)


def protected(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PROTECTED)


@dataclass(frozen=True)
class Refusal:
    """Why a request may not go on: its error code, the message and extra headers."""

    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Usage:
    tokens: float
    last: float
    running: int = 0


class Limits:
    """Each user's request rate and requests at once; for one thread (the event loop)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._usage: dict[str, _Usage] = {}

    def begin(self, user: User) -> Refusal | None:
        """Before a request of `user`: None to go ahead (then call `end`), else the refusal."""
        now = self._clock()
        usage = self._usage.setdefault(user.name, _Usage(user.rate_per_minute, now))
        usage.tokens = min(user.rate_per_minute, usage.tokens + (now - usage.last) * user.rate_per_minute / 60)
        usage.last = now
        if usage.running >= user.max_concurrent:
            message = (
                f"{user.name} has {usage.running} request(s) running, the most allowed at once ({user.max_concurrent}); "
                "wait for one to finish and try again."
            )
            return Refusal("too_many_running", message, {"retry-after": "1"})
        if usage.tokens < 1:
            wait = max(1, math.ceil((1 - usage.tokens) * 60 / user.rate_per_minute))
            message = f"{user.name} may make {user.rate_per_minute:g} requests a minute; try again in {wait} s."
            return Refusal("rate_limited", message, {"retry-after": str(wait)})
        usage.tokens -= 1
        usage.running += 1
        return None

    def end(self, user: User) -> None:
        usage = self._usage.get(user.name)
        if usage is not None:
            usage.running = max(0, usage.running - 1)
            full = usage.tokens + (self._clock() - usage.last) * user.rate_per_minute / 60 >= user.rate_per_minute
            if usage.running == 0 and full:
                del self._usage[user.name]  # idle with a full bucket: nothing to remember


class Callers:
    """The users file's users (reloaded when it changes), how a request names one, and their limits."""

    def __init__(self, path: Path, store: UserStore | None = None):
        self.path = Path(path)
        self.store = store if store is not None else users.load(self.path)  # at start, before the loop serves
        self._stamp = users.stamp(self.path)
        self.limits = Limits()
        self.page_user: Callable[[dict[str, str]], str | None] | None = None  # cookies -> the page's logged-in user

    def identify(self, headers, method: str = "GET") -> tuple[User | None, str | None, Refusal | None]:
        """(user, how: "key" or "page", None), or (None, None, a refusal for a key that is not
        valid), or (None, None, None) when the request names nobody. The page's login counts for
        reading only (GET, HEAD: one's results and their links), so that another site's form
        cannot make the browser of someone logged in post to the API. On the event loop: no disk."""
        auth = headers.get("authorization")
        if auth is not None and auth[:7].lower() == "bearer ":
            user = self.store.user_for_key(auth[7:])
            if user is None:
                message = "The API key is not valid (unknown or revoked); make one with `emotion-app users key NAME`."
                return None, None, Refusal("bad_key", message, {"www-authenticate": 'Bearer realm="emotion_app"'})
            return user, "key", None
        if self.page_user is not None and "cookie" in headers and method in ("GET", "HEAD"):
            name = self.page_user(_cookies(headers.get("cookie", "")))
            user = self.store.users.get(name) if name else None  # a user removed since is nobody
            if user is not None:
                return user, "page", None
        return None, None, None

    async def check_login(self, name: str, password: str) -> bool:
        """The page's login (Gradio's `auth`): `name` and `password` against the file, in a worker thread."""
        return await anyio.to_thread.run_sync(self.store.check_login, name, password)

    async def reload_if_changed(self) -> bool:
        """Read the file again, in a worker thread, when it changed; True when the users were replaced."""
        stamp = await anyio.to_thread.run_sync(users.stamp, self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            self.store = await anyio.to_thread.run_sync(users.load, self.path)
        except users.UsersError as exc:
            logger.error("%s The users read before are kept.", exc.message)
            return False
        logger.info("users file read again: %d users", len(self.store.users))
        return True

    @contextlib.asynccontextmanager
    async def lifespan(self):
        """Watch the users file while the server runs (every RELOAD_INTERVAL_S)."""

        async def watch():
            while True:
                await asyncio.sleep(RELOAD_INTERVAL_S)
                try:
                    await self.reload_if_changed()
                except Exception:  # noqa: BLE001 - the watch goes on; the error is logged
                    logger.exception("reading the users file failed")

        task = asyncio.create_task(watch())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _cookies(header: str) -> dict[str, str]:
    pairs = (part.strip().partition("=") for part in header.split(";"))
    return {name: value for name, _, value in pairs if name}
