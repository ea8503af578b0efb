"""`/api/stream`: the live meter over a WebSocket.

The client sends one JSON text message with its settings (live/options.py `parse_settings`), then
binary frames of raw audio (any number of whole samples each), then `{"event": "end"}`. The server
answers `ready`, one `hop` message per hop, and after the end a `result` message holding what
/api/predict returns for the whole take (result.json's content and its download links), then
closes. Errors are `{"event": "error", "code", "error"}` followed by a close; the take is then
discarded. The handshake passes the same HTTP Basic check as the REST API (401/429 answered as
HTTP), or, with `--users`, the guard's check of the caller (`Authorization: Bearer KEY`; the take's
result is theirs), the guard's Host check, and an Origin check (browsers send WebSockets cross-origin
without CORS): a page from another origin must be listed in `--cors-origins`.

The server reads every message as it arrives, whatever the model's backlog: the audio goes to
the take's file at once (bounded by the take's time limit), so the connection keeps answering the
client's pings and no take is lost to a keepalive timeout (1011). What waits for the model is
bounded instead: at most `hub.MAX_WAITING` windows per session, and when the sessions ask more
than the engine can carry, every session's hops stretch (live/capacity.py); each hop message says
the hop in force (`hop_s`, `slowed`). A client sending faster than real time gets the hops the
model has room for, in order; its take is analysed whole at the end all the same. The scheduler
takes one window per session per model call, so a fast client never delays the others by more
than one window's share of a batch. A client that stops reading is dropped: once
`MAX_OUTBOX` messages wait for it, or one send waits `SEND_TIMEOUT_S`, its take is discarded and
its slot freed (no error message: it would not read it). The final result and the close frame
wait at most `SEND_TIMEOUT_S` too (the take is saved; only the message is lost). The kernel's
send buffer of a connection is fixed at `SEND_BUFFER_BYTES` (server.py), so what waits for a
client is bounded alike on every machine, not by the kernel's autotuning (up to 4 MB on Linux).
Beyond `--max-live-sessions`, or when
another take would push the meters past their delay bound (capacity.py), a client gets
`{"event": "error", "code": "busy"}` and close 1013 at once. Every close with an error code is
logged as a warning and counted (`/api/health`'s `live.counters`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import socket
from urllib.parse import urlsplit

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from ...errors import ERRORS, EmotionAppError, error_code
from ...fields import read_json
from ...live import LiveHub, LiveSession, StreamSettings, decode_frame, parse_settings
from ...live.options import MAX_FRAME_BYTES
from ...outputs import owned_by
from ..i18n import error_message
from .rest import auth_check, owner, public_text
from .throttle import LoginThrottle

logger = logging.getLogger(__name__)

SETTINGS_TIMEOUT_S = 10.0  # from the handshake to the settings message
IDLE_TIMEOUT_S = 30.0  # longest wait for the next message during a take
MAX_MESSAGE_BYTES = MAX_FRAME_BYTES  # the largest WebSocket message the server reads (server.py sets it)
MAX_OUTBOX = 64  # messages waiting for a client that does not read; one more and it is dropped
SEND_TIMEOUT_S = 10.0  # longest wait to hand one message to a client's socket before it is dropped
SEND_BUFFER_BYTES = 16 * 1024  # the kernel's send buffer of a live connection (server.py; Linux doubles it)
NORMAL_CLOSES = (1000, 1001, 1005)  # done, going away, no code given


def add_stream_routes(
    app: FastAPI, hub: LiveHub | None, settings, load_error: str | None = None, throttle: LoginThrottle | None = None
) -> None:
    """Register `/api/stream` on `app`. `hub` None: the model failed to load (each connection is
    told why); `throttle`: the login bookkeeping shared with the REST routes and the guard."""
    denied = auth_check(settings.auth, throttle or LoginThrottle())
    cors_origins = frozenset(o.strip().lower().rstrip("/") for o in settings.cors_origins if o.strip())

    @app.websocket("/api/stream")
    async def stream(websocket: WebSocket):
        refusal = denied(websocket) or origin_refusal(websocket, cors_origins)
        if refusal is not None:
            return await deny(websocket, refusal)
        await websocket.accept()
        with owned_by(owner(websocket)):  # the take's output folder is the caller's
            await Connection(websocket, hub, load_error).run()


def origin_refusal(websocket: WebSocket, cors_origins: frozenset[str]) -> JSONResponse | None:
    """None when the handshake may go on: no Origin (not a browser), the page's own origin, or a
    listed one; else a 403 answer."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return None
    normalized = origin.strip().lower().rstrip("/")
    if urlsplit(normalized).netloc == websocket.headers.get("host", "").strip().lower():
        return None
    if "*" in cors_origins or normalized in cors_origins:
        return None
    message = "WebSocket connections from pages of other origins are refused; list the origin with --cors-origins."
    return JSONResponse({"error": message, "code": "cors_forbidden"}, status_code=403)


async def deny(websocket: WebSocket, response: JSONResponse) -> None:
    """Refuse the handshake with an HTTP answer where the server can send one, else a close."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(response)
    else:
        await websocket.close(1008)


class _LimitReached(Exception):
    pass


class SlowConsumer(EmotionAppError):
    """The client stopped reading: its messages passed MAX_OUTBOX, or one send waited SEND_TIMEOUT_S."""

    code = "slow_consumer"


class Connection:
    """One client's take, from the settings message to the final result.

    Three tasks on the event loop, joined by asyncio queues: the reader (`_take`) feeds the audio
    and submits the windows that fall due, and never stops reading (the hub bounds the windows
    waiting for the model); the scorer (`_score`) awaits each window's scores in order and records the hop;
    the sender (`_send`) writes the messages (at most MAX_OUTBOX waiting, each send at most
    SEND_TIMEOUT_S, else the client is dropped as a slow consumer). Every session call may block
    (the session's lock, its WAV file, resampling), so each runs in the hub's threads (`_call`);
    nothing here takes a thread lock or touches a file on the loop.
    """

    def __init__(self, websocket: WebSocket, hub: LiveHub | None, load_error: str | None):
        self.ws, self.hub, self.load_error = websocket, hub, load_error
        self.lang = "zh" if websocket.headers.get("accept-language", "").lower().startswith("zh") else "en"

    async def _call(self, fn, *args, **kwargs):
        """`fn(*args, **kwargs)` in the hub's threads, awaited (completed even if this task is cancelled)."""
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)  # the caller's context (owner)
        future = asyncio.get_running_loop().run_in_executor(self.hub.executor, call)
        return await asyncio.shield(future)

    async def run(self) -> None:
        session: LiveSession | None = None
        try:
            if self.hub is None:
                raise EmotionAppError(public_text(self.load_error or "model not loaded"), "model_load")
            stream = await self._settings()
            session = await self._call(self.hub.open, stream.live, stream.format, request=stream.request)
            await self.ws.send_json(ready_message(session, self.hub))
            await self._take(session, stream)
            analysis = await self._call(self.hub.finish, session, stream.request, lang=stream.lang)
            text = await self._call(json.dumps, {"event": "result", "result": analysis.response()}, ensure_ascii=False)
            await _bounded(self.ws.send_text(text), "the result")
            await _bounded(self.ws.close(1000), "the close frame")
        except WebSocketDisconnect as exc:
            if exc.code in NORMAL_CLOSES:
                logger.info("live client left%s", f" during session {session.id}" if session else "")
            elif self.hub is not None:
                self.hub.closed_abnormally(exc.code, session)
        except SlowConsumer as exc:  # it is not reading: no message or close frame could reach it
            logger.warning("live session %s: client dropped (%s)", session.id if session else "-", exc.message)
            if self.hub is not None:
                self.hub.closed_abnormally("slow_consumer", session)
        except EmotionAppError as exc:
            await self._fail(exc.code, public_text(error_message(exc, self.lang)), session)
        except Exception:
            logger.exception("live stream failed")
            await self._fail("internal", ERRORS["internal"].en, session)
        finally:
            if session is not None:
                await self._call(self.hub.discard, session)  # a take that was not finished is deleted

    async def _receive(self, timeout: float) -> dict:
        try:
            message = await asyncio.wait_for(self.ws.receive(), timeout)
        except (TimeoutError, asyncio.TimeoutError):  # the same class from Python 3.11 on, not on 3.10
            raise EmotionAppError(f"No message from the client for {timeout:g} s; the take is discarded.", "idle") from None
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        return message

    async def _settings(self) -> StreamSettings:
        message = await self._receive(SETTINGS_TIMEOUT_S)
        stream = parse_settings(message.get("text"))
        self.lang = stream.lang
        return stream

    async def _take(self, session: LiveSession, stream: StreamSettings) -> None:
        """Read audio until the client's end or the time limit; every hop is sent as it is scored."""
        scoring: asyncio.Queue = asyncio.Queue()  # (window, future) in order, and notices: the hub bounds the windows
        outbox: asyncio.Queue = asyncio.Queue(maxsize=MAX_OUTBOX)  # messages for the client
        tasks = [asyncio.create_task(self._score(session, scoring, outbox)), asyncio.create_task(self._send(outbox))]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.hub.max_seconds  # the limit holds for wall time as for audio time
        try:
            try:
                while True:
                    left = deadline - loop.time()
                    if left <= 0:
                        raise _LimitReached
                    try:
                        message = await self._receive(min(IDLE_TIMEOUT_S, left))
                    except EmotionAppError:
                        if IDLE_TIMEOUT_S < left:
                            raise
                        raise _LimitReached from None
                    if message.get("bytes") is not None:
                        for item in await self._call(self._feed, session, message["bytes"], stream.format):
                            await self._put(scoring, tasks, item)
                        if session.limit_reached:
                            raise _LimitReached
                    elif end_event(message.get("text")):
                        break
            except _LimitReached:
                limit = f"The session reached its limit of {self.hub.max_seconds / 60:g} min; the take so far is analysed."
                await self._put(scoring, tasks, {"event": "limit", "message": limit})
            for item in await self._call(self.hub.end, session):
                await self._put(scoring, tasks, item)
            await self._put(scoring, tasks, None)
            for task in tasks:
                await task
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _feed(self, session: LiveSession, data: bytes, fmt) -> list:
        """In the hub's threads: one binary message decoded and fed; the windows it completes, submitted."""
        return self.hub.feed(session, decode_frame(data, fmt))

    async def _put(self, queue: asyncio.Queue, tasks: list[asyncio.Task], item) -> None:
        """queue.put, unless a task stopped first (its error is raised here instead of waiting forever)."""
        put = asyncio.ensure_future(queue.put(item))
        done, _ = await asyncio.wait({put, *tasks}, return_when=asyncio.FIRST_COMPLETED)
        if put not in done:
            put.cancel()
            for task in done:
                task.result()  # raises the task's error
            raise RuntimeError("a task of the live connection stopped early")

    async def _score(self, session: LiveSession, scoring: asyncio.Queue, outbox: asyncio.Queue) -> None:
        while (item := await scoring.get()) is not None:
            if isinstance(item, dict):  # a notice, kept in order with the hops
                _post(outbox, item)
                continue
            window, future = item
            probabilities = await asyncio.wrap_future(future)
            _post(outbox, await self._call(session.record, window, probabilities))
        _post(outbox, None)

    async def _send(self, outbox: asyncio.Queue) -> None:
        while (message := await outbox.get()) is not None:
            await _bounded(self.ws.send_json(message), "a message")

    async def _fail(self, code: str, message: str, session: LiveSession | None = None) -> None:
        close = error_code(code).close
        if self.hub is not None:
            self.hub.closed_abnormally(close, session)
        try:
            await asyncio.wait_for(self.ws.send_json({"event": "error", "code": code, "error": message}), SEND_TIMEOUT_S)
            await asyncio.wait_for(self.ws.close(close), SEND_TIMEOUT_S)
        except (WebSocketDisconnect, RuntimeError, OSError, TimeoutError, asyncio.TimeoutError):
            pass  # the client is gone already, or not reading


async def _bounded(send, what: str) -> None:
    """Await a send for at most SEND_TIMEOUT_S; longer means the client stopped reading."""
    try:
        await asyncio.wait_for(send, SEND_TIMEOUT_S)
    except (TimeoutError, asyncio.TimeoutError):
        raise SlowConsumer(f"{what} waited {SEND_TIMEOUT_S:g} s to be sent") from None


def capped_send_buffer(protocol_class: type) -> type:
    """The ASGI server's WebSocket protocol class, with each connection's kernel send buffer fixed
    at SEND_BUFFER_BYTES as it is made (a fixed SO_SNDBUF also turns the kernel's autotuning off)."""

    class Capped(protocol_class):
        def connection_made(self, transport) -> None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            super().connection_made(transport)

    Capped.__name__ = Capped.__qualname__ = f"Capped{protocol_class.__name__}"
    return Capped


def _post(outbox: asyncio.Queue, message: dict | None) -> None:
    """Queue a message for the client without waiting: a full outbox means it stopped reading."""
    try:
        outbox.put_nowait(message)
    except asyncio.QueueFull:
        raise SlowConsumer(f"{MAX_OUTBOX} messages were waiting to be sent") from None


def end_event(text: str | None) -> bool:
    """True for `{"event": "end"}`; any other text message during a take is an error."""
    try:
        data = read_json(text or "")
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("event") == "end":
        return True
    message = 'During a take, text messages may only be {"event": "end"}; send audio as binary messages.'
    raise EmotionAppError(message, "bad_message")


def ready_message(session: LiveSession, hub: LiveHub) -> dict:
    return {
        "event": "ready",
        "session": session.id,
        **session.options.to_dict(),
        "format": session.format.format,
        "sample_rate": session.format.sample_rate,
        "channels": session.format.channels,
        "max_seconds": hub.max_seconds,
        "labels": list(session.labels),
        "stretch": hub.capacity.stretch,  # hops stretched by this factor now (1: as asked); see each hop's hop_s
    }
