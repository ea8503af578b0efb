"""The server's front door: one ASGI middleware around the whole app, REST routes and Gradio's alike.

Before any route runs it checks, in this order:

- **Host** (DNS rebinding): the `Host` header must name this server (hosts.py), else 421
  `{"error", "code": "bad_host"}`. A page on evil.example whose name is re-pointed at 127.0.0.1
  still sends `Host: evil.example`, so it never reaches the app.
- **CORS**: other origins get no `Access-Control-*` headers unless listed (`--cors-origins`);
  whatever the app itself sets (Gradio allows any localhost origin with credentials) is removed
  and replaced by this policy. Preflights are answered here: 204 for a listed origin, 403 else.
- **The caller** (`serve --users`, callers.py): an API key (`Authorization: Bearer KEY`) or the
  page's login names a user, put into the request's scope; the REST API, /api/stream and /mcp
  refuse a request that names nobody (401 `unauthorized`, or `bad_key` for a key not valid) unless
  the old `--auth`'s HTTP Basic is sent (the routes check it), and hold each user to a request
  rate and a number of requests at once (429 `rate_limited` / `too_many_running`, `Retry-After`).
- **Login throttling** for Gradio's `/login` form (see throttle.py; the REST routes throttle
  their HTTP Basic check themselves): a client that must wait gets 429 with `Retry-After`.
- **Request body**, counted as the route reads it, whatever the headers say: a `Content-Length`
  over the limit is refused at once, and a chunked or under-declared body is cut off as soon as
  the bytes received pass it (413 `too_large`). The body must also keep coming: each read waits at
  most `RECEIVE_TIMEOUT_S` and the whole body must arrive within `BODY_TIMEOUT_S` of the first
  read (408 `timeout`), so a stalled or trickled upload cannot hold a connection for minutes.

Refusals close the connection (the rest of the body is never read); a WebSocket's refusal is the
same JSON answer where the ASGI server can send one, else a close with the code's close code. The
body limit is per request: one REST upload, or one page upload (the Batch tab sends all its files
in one request). With `--audit-log` each request that does something is written to the audit log
(audit.py).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from starlette.datastructures import Headers

from ...errors import ERRORS, EmotionAppError
from ..i18n import error_message
from .audit import AuditLog, audited
from .callers import SCOPE_KEY, Callers, Refusal, protected
from .hosts import HostPolicy
from .throttle import LoginThrottle, retry_message

RECEIVE_TIMEOUT_S = 15.0  # longest wait for the next piece of a request body
BODY_TIMEOUT_S = 120.0  # a whole body: 100 MB in 2 minutes is under 7 Mbit/s
LOGIN_PATHS = frozenset({"/login", "/login/"})
FILE_ROUTE = "/gradio_api/file="  # Gradio serves its cache and `allowed_paths` here, by absolute path


def _inside(path: str, folder: Path) -> bool:
    """Whether Gradio's file route would open `path` inside `folder` (it resolves it the same way)."""
    try:
        resolved = Path(os.path.abspath(path)).resolve()
    except (OSError, ValueError):
        return True  # what cannot be resolved is refused
    return resolved == folder or folder in resolved.parents


class _Refused(Exception):
    """Raised into the app from `receive` once the body is refused; the guard answers instead."""


@dataclass
class _Reply:
    """A refusal: its code (errors.ERRORS gives the HTTP status), the message and extra headers."""

    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return ERRORS[self.code].status


class Guard:
    """ASGI middleware: host check, CORS policy, the caller and their limits, login throttling, body
    size and time limits, the audit log."""

    def __init__(
        self,
        app,
        *,
        max_upload_mb: float,
        hosts: HostPolicy,
        cors_origins=(),
        throttle: LoginThrottle | None = None,
        private_dir: Path | None = None,
        receive_timeout_s: float = RECEIVE_TIMEOUT_S,
        body_timeout_s: float = BODY_TIMEOUT_S,
        larger_bodies: dict[str, int] | None = None,
        page_script: str | None = None,
        callers: Callers | None = None,
        basic_auth: bool = False,
        audit: AuditLog | None = None,
    ):
        self.app = app
        self.max_upload_mb = max_upload_mb
        # The whole body, form fields included, as the REST check on Content-Length always did; so
        # it is passed before Gradio's own per-file check (same limit) and the answer is always ours.
        self.max_body = int(max_upload_mb * 1024 * 1024)
        # path -> its own limit in bytes: the MCP route, whose JSON carries the upload in base64
        self.larger_bodies = dict(larger_bodies or {})
        self.page_script = page_script.encode() if page_script else None  # added to the page's HTML (GET /)
        self.hosts = hosts
        self.cors_origins = frozenset(o.strip().lower().rstrip("/") for o in cors_origins if o.strip())
        self.throttle = throttle
        self.private_dir = Path(private_dir).resolve() if private_dir is not None else None
        self.receive_timeout_s = receive_timeout_s
        self.body_timeout_s = body_timeout_s
        self.callers = callers  # --users: who calls (callers.py), each user's limits
        self.basic_auth = basic_auth  # --auth: the routes check HTTP Basic themselves
        self.audit = audit  # --audit-log

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        if self.audit is None or not audited(scope["path"]):
            return await self._guarded(scope, receive, send, {})
        entry = {"status": 0, "bytes_in": 0}  # what the audit log's line needs from the exchange
        started = time.monotonic()

        async def counted_receive():
            message = await receive()
            entry["bytes_in"] += len(message.get("body") or message.get("bytes") or message.get("text") or b"")
            return message

        async def noted_send(message) -> None:
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                entry["status"] = message["status"]
            elif kind == "websocket.accept":
                entry["status"] = 101
            elif kind == "websocket.close" and not entry["status"]:
                entry["status"] = 403  # refused before the handshake
            await send(message)

        try:
            await self._guarded(scope, counted_receive, noted_send, entry)
        finally:
            self.audit.write(scope, entry, time.monotonic() - started)

    async def _guarded(self, scope, receive, send, entry: dict) -> None:
        headers = Headers(scope=scope)
        lang = request_lang(scope, headers)
        if not self.hosts.allows(headers.get("host")):
            if scope["type"] == "websocket":  # not even a JSON answer for a name this server does not have
                return await send({"type": "websocket.close", "code": 1008})
            message = "This server does not answer to that host name; list it with --allowed-hosts to allow it."
            return await self._reply(send, None, _Reply("bad_host", message), lang)
        origin = headers.get("origin")
        preflight = scope["type"] == "http" and scope["method"] == "OPTIONS"
        if preflight and origin is not None and "access-control-request-method" in headers:
            return await self._preflight(send, origin, headers)
        if self.callers is None:
            return await self._route(scope, receive, send, headers)
        user, via, refusal = self.callers.identify(headers, scope.get("method", "GET"))
        if user is not None:
            scope[SCOPE_KEY] = user
            entry["user"], entry["via"] = user.name, via
        if not protected(scope["path"]):  # the page: Gradio asks for its login
            return await self._route(scope, receive, send, headers)
        basic = self.basic_auth and headers.get("authorization", "")[:6].lower() == "basic "
        if refusal is None and user is None and not basic:  # the old --auth's HTTP Basic: the routes check it
            message = (
                "This server needs an API key: send the header Authorization: Bearer KEY "
                "(the server's operator makes one with `emotion-app users key NAME`)."
            )
            refusal = Refusal("unauthorized", message, {"www-authenticate": 'Bearer realm="emotion_app"'})
        if refusal is None and user is not None:
            refusal = self.callers.limits.begin(user)
            if refusal is None:
                try:
                    return await self._route(scope, receive, send, headers)
                finally:
                    self.callers.limits.end(user)
        if refusal is not None:
            return await self._refuse(scope, send, headers, _Reply(refusal.code, refusal.message, refusal.headers), lang)
        return await self._route(scope, receive, send, headers)

    async def _route(self, scope, receive, send, headers: Headers) -> None:
        """On to the app, with the body limits, the login throttle and the private files' check."""
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        origin = headers.get("origin")
        if self.private_dir is not None and scope["path"].startswith(FILE_ROUTE):
            inside = await anyio.to_thread.run_sync(_inside, scope["path"][len(FILE_ROUTE) :], self.private_dir)  # a disk call
            if inside:  # results only by their keyed links
                return await self._reply(send, origin, _Reply("forbidden", "File not allowed."))
        login = self.throttle is not None and scope["method"] == "POST" and scope["path"] in LOGIN_PATHS
        client = (scope.get("client") or ("unknown", 0))[0]
        if login:
            wait = self.throttle.begin(client)
            if wait:
                return await self._reply(send, origin, too_many(wait, request_lang(scope, headers)))
        status = 0
        try:
            status = await _Exchange(self, scope, receive, send, headers, origin).run()
        finally:
            if login:  # Gradio answers a wrong password 400, a login 200
                self.throttle.end(client, True if status == 200 else False if status in (400, 401) else None)

    async def _refuse(self, scope, send, headers: Headers, reply: _Reply, lang: str = "en") -> None:
        """A refusal before the app: the JSON answer, for a WebSocket too where the server can send
        one (the ASGI extension websocket.http.response), else a WebSocket close with its code."""
        if scope["type"] == "http":
            return await self._reply(send, headers.get("origin"), reply, lang)
        if "websocket.http.response" not in scope.get("extensions", {}):
            return await send({"type": "websocket.close", "code": ERRORS[reply.code].close})
        body, raw = self._answer(reply, lang)
        await send({"type": "websocket.http.response.start", "status": reply.status, "headers": raw})
        await send({"type": "websocket.http.response.body", "body": body})

    # -- CORS -------------------------------------------------------------------------------------
    def origin_allowed(self, origin: str | None) -> bool:
        if origin is None:
            return False
        return "*" in self.cors_origins or origin.strip().lower().rstrip("/") in self.cors_origins

    def cors_headers(self, origin: str | None, raw: list) -> list:
        """Response headers without the app's Access-Control-* ones, plus this policy's."""
        kept = [(k, v) for k, v in raw if not k.lower().startswith(b"access-control-")]
        if origin is None:
            return kept
        if not any(k.lower() == b"vary" and b"origin" in v.lower() for k, v in kept):
            kept.append((b"vary", b"Origin"))
        if self.origin_allowed(origin):
            if "*" in self.cors_origins:
                kept.append((b"access-control-allow-origin", b"*"))
            else:
                kept.append((b"access-control-allow-origin", origin.encode("latin-1")))
                kept.append((b"access-control-allow-credentials", b"true"))
        return kept

    async def _preflight(self, send, origin: str, headers: Headers) -> None:
        if not self.origin_allowed(origin):
            message = "Cross-origin requests from this origin are not allowed; list it with --cors-origins."
            return await self._reply(send, origin, _Reply("cors_forbidden", message))
        extra = {"access-control-allow-methods": "GET, POST, OPTIONS", "access-control-max-age": "600"}
        requested = headers.get("access-control-request-headers")
        if requested:
            extra["access-control-allow-headers"] = requested[:1000]
        raw = [(k.encode(), v.encode("latin-1")) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": 204, "headers": raw + self.cors_headers(origin, [])})
        await send({"type": "http.response.body", "body": b""})

    async def _reply(self, send, origin: str | None, reply: _Reply, lang: str = "en") -> None:
        """A JSON error `{"error", "code"}` that closes the connection."""
        body, raw = self._answer(reply, lang)
        await send({"type": "http.response.start", "status": reply.status, "headers": self.cors_headers(origin, raw)})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _answer(reply: _Reply, lang: str) -> tuple[bytes, list]:
        """The body and raw headers of a refusal."""
        text = error_message(EmotionAppError(reply.message, reply.code), lang)
        body = json.dumps({"error": text, "code": reply.code}, ensure_ascii=False).encode()
        raw = {"content-type": "application/json", "content-length": str(len(body)), "connection": "close"}
        return body, [(k.encode(), v.encode()) for k, v in {**raw, **reply.headers}.items()]

    def max_body_for(self, path: str) -> int:
        return self.larger_bodies.get(path.rstrip("/") or "/", self.max_body)

    def too_large(self) -> _Reply:
        return _Reply("too_large", f"The upload is larger than the limit of {self.max_upload_mb:g} MB.")


def request_lang(scope, headers: Headers) -> str:
    """zh for `lang=zh` in the query or a browser asking for Chinese first (Accept-Language), else en."""
    query = scope.get("query_string", b"").decode("latin-1")
    if "lang=zh" in query or headers.get("accept-language", "").lower().startswith("zh"):
        return "zh"
    return "en"


def too_many(wait: float, lang: str = "en") -> _Reply:
    seconds, message = retry_message(wait, lang)
    return _Reply("too_many_attempts", message, {"retry-after": str(seconds)})


class _Exchange:
    """One HTTP request through the guard: counts and times the body, rewrites CORS headers, and
    answers for the app once the body is refused."""

    def __init__(self, guard: Guard, scope, receive, send, headers: Headers, origin: str | None):
        self.guard, self.scope, self._receive, self._send = guard, scope, receive, send
        self.headers, self.origin = headers, origin
        self.received = 0
        self.body_done = False
        self.deadline: float | None = None
        self.refusal: _Reply | None = None
        self.started = False
        self.status = 0
        self.max_body = guard.max_body_for(scope["path"])
        page = scope["method"] == "GET" and scope["path"] in ("/", "")
        self.script = guard.page_script if page else None
        self.held: dict | None = None  # the page's response start, held until its body has the script
        self.body = b""

    async def run(self) -> int:
        """Run the app; the status sent to the client (0 when none)."""
        declared = self.headers.get("content-length")
        chunked = "transfer-encoding" in self.headers  # then Content-Length means nothing
        if declared is not None and not chunked and declared.strip().isdigit() and int(declared) > self.max_body:
            self.refusal = self.guard.too_large()
        else:
            try:
                await self.guard.app(self.scope, self.receive, self.send)
            except Exception:
                if self.refusal is None:
                    raise
        if self.refusal is not None and not self.started:
            await self.guard._reply(self._send, self.origin, self.refusal, self._lang())
            return self.refusal.status
        return self.status

    def _lang(self) -> str:
        return request_lang(self.scope, self.headers)

    async def receive(self):
        if self.body_done:
            return await self._receive()
        if self.refusal is not None:
            raise _Refused
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.guard.body_timeout_s
        wait = min(self.guard.receive_timeout_s, self.deadline - now)
        try:
            if wait <= 0:
                raise TimeoutError
            with anyio.fail_after(wait):
                message = await self._receive()
        except TimeoutError:
            slow = f"The request body did not arrive in time (at most {self.guard.receive_timeout_s:g} s between pieces"
            self.refusal = _Reply("timeout", f"{slow}, {self.guard.body_timeout_s:g} s in all).")
            raise _Refused from None
        if message["type"] != "http.request":
            self.body_done = True  # http.disconnect
            return message
        self.received += len(message.get("body", b""))
        if self.received > self.max_body:
            self.refusal = self.guard.too_large()
            raise _Refused
        self.body_done = not message.get("more_body", False)
        return message

    async def send(self, message) -> None:
        if self.refusal is not None:
            return  # the app's own answer to a refused body is dropped; the guard answers
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            message = {**message, "headers": self.guard.cors_headers(self.origin, list(message.get("headers", [])))}
            if self.script is not None and any(
                k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in message["headers"]
            ):
                self.held = message
                return
        elif self.held is not None and message["type"] == "http.response.body":
            self.body += message.get("body", b"")
            if message.get("more_body", False):
                return
            return await self._send_page()
        await self._send(message)

    async def _send_page(self) -> None:
        """The held page with the script before </head>, its Content-Length counted again."""
        body = self.body.replace(b"</head>", self.script + b"</head>", 1)
        headers = [(k, v) for k, v in self.held["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self._send({**self.held, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})
