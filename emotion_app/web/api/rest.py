"""Plain REST endpoints beside the Gradio app: /api/predict, /api/health, /api/results, /api/outputs/...

Multipart upload (field `audio`, optional `lang`, and the option fields of RequestOptions:
`granularity`, `extract_embedding`, the frame-analysis fields, `segment` vad|window with its fields,
`head`: which loaded custom heads to apply, default all; `speakers` channels|auto|N and `names`, or
a `turns` file, for a conversation; `model`: a served model's name, default the base model,
`serve --models`);
JSON out; every error of an /api/ path (bad input, 404, 405, validation, 500) is `{"error", "code"}`,
with no absolute paths. Downloads need the folder's key (outputs.py); HTTP Basic auth (with
`--auth`) is throttled per client address (throttle.py); with `--users` the guard has found the
caller (callers.py). Each result is its caller's: `GET /api/results` lists one's own. Body size
and time limits, the Host check and CORS are the guard's (guard.py), in front of every route.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...constants import LABELS
from ...errors import ERRORS, EmotionAppError, error_code
from ...labelset import PRESETS
from ...modelset import served_engine
from ...outputs import list_results, output_file, owned_by
from ...request import RequestOptions
from ...sentiment import DEFAULT_MAPPING
from ...service import analyze
from ..i18n import error_message
from ..users import User
from .callers import SCOPE_KEY, caller
from .throttle import LoginThrottle, retry_message

logger = logging.getLogger(__name__)

# Starlette's HTTP errors (a route that is missing, a method it lacks...) -> the registry's code
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
HTTP_CODES |= {408: "timeout", 413: "too_large", 422: "bad_request", 429: "too_many_attempts", 503: "unavailable"}
# An absolute POSIX path in a message (not a URL's path): shown as its last part only.
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s/'\"]+/)*([^\s/'\"]+)/?")


def _lang(request: Request, form_lang: str | None) -> str:
    if form_lang in ("en", "zh"):
        return form_lang
    return "zh" if request.headers.get("accept-language", "").lower().startswith("zh") else "en"


def _top_level() -> frozenset[str]:
    try:
        return frozenset(os.listdir("/"))
    except OSError:
        return frozenset()


TOP_LEVEL = _top_level()  # the root's entries, read once at import (never on the event loop)


def public_text(text: str) -> str:
    """`text` with each path of this machine cut to its last part ("/home/me/models/x" -> "x"). A
    path is this machine's when its first part is an entry of / (home, tmp, work...); advice such
    as "/path/to/emotion2vec_plus_large" and URL paths such as "/api/v1/models" stay as written."""

    def cut(match: re.Match) -> str:
        first = match.group(0).lstrip("/").split("/", 1)[0]
        return match.group(1) if first in TOP_LEVEL else match.group(0)

    return ABSOLUTE_PATH.sub(cut, text)


def _error(exc: EmotionAppError, lang: str) -> JSONResponse:
    body = {"error": public_text(error_message(exc, lang)), "code": exc.code}
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None  # a busy or full server: when to come back
    return JSONResponse(body, status_code=error_code(exc.code).status, headers=headers)


def _is_api(request: Request) -> bool:
    return request.url.path == "/api" or request.url.path.startswith("/api/")


def add_error_handlers(app: FastAPI) -> None:
    """Errors of /api/ paths as {"error", "code"}; Gradio's paths keep FastAPI's default answers."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if not _is_api(request):
            return await http_exception_handler(request, exc)
        message = exc.detail if isinstance(exc.detail, str) else "The request failed."  # starlette's default: the phrase
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse({"error": message, "code": code}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        if not _is_api(request):
            return await request_validation_exception_handler(request, exc)
        problems = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}" for e in exc.errors())
        return JSONResponse({"error": f"Invalid request: {problems}", "code": "bad_request"}, status_code=422)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception):  # the traceback goes to the server's log
        if not _is_api(request):
            return PlainTextResponse("Internal Server Error", status_code=500)
        return JSONResponse({"error": ERRORS["internal"].en, "code": "internal"}, status_code=500)


def _analyze_json(engine, data: bytes, options: RequestOptions, outputs_dir: Path, name: str | None, lang: str,
                  budget=None, models=None, model: str | None = None) -> bytes:  # fmt: skip
    """In a worker thread: the model chosen (loaded on its first request), the analysis (within the
    server's memory `budget`) and its JSON (a long frame result takes a while to encode, which must
    not happen on the event loop)."""
    engine = served_engine(engine, models, model)
    analysis = analyze(engine, data, options, outputs_dir=outputs_dir, name=name, lang=lang, budget=budget)
    return json.dumps(analysis.response(), ensure_ascii=False).encode()


def _credentials_match(header: str, auth: tuple[str, str]) -> bool:
    if not header.lower().startswith("basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    # bytes: compare_digest refuses str with non-ASCII characters
    user_ok = secrets.compare_digest(user.encode(), auth[0].encode())
    return secrets.compare_digest(password.encode(), auth[1].encode()) and user_ok


def owner(request) -> str | None:
    """The name the request's results are kept under: its caller's (None without users or --auth)."""
    user = caller(request)
    return user.name if user is not None else None


def auth_check(auth: tuple[str, str] | None, throttle: LoginThrottle):
    """`denied(request)`: None when the request may go on, else the answer: 401, or 429 for a
    client that must wait (HTTP Basic attempts are checked and counted in one step). A request the
    guard found a user for (`--users`) may go on."""

    def denied(request: Request) -> JSONResponse | None:
        if auth is None or caller(request) is not None:  # none asked, or the guard found the caller (--users)
            return None
        header = request.headers.get("authorization")
        if header is not None:
            client = request.client.host if request.client else "unknown"
            ok, wait = throttle.attempt(client, lambda: _credentials_match(header, auth))
            if ok:  # the one --auth user: their results are theirs, and they may list everyone's
                request.scope[SCOPE_KEY] = User(auth[0], role="admin")
                return None
            if wait:
                seconds, message = retry_message(wait)
                body = {"error": message, "code": "too_many_attempts"}
                return JSONResponse(body, status_code=429, headers={"Retry-After": str(seconds)})
        body = {"error": ERRORS["unauthorized"].en, "code": "unauthorized"}
        return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Basic"})

    return denied


def add_rest_routes(
    app: FastAPI, engine, settings, load_error: str | None = None, throttle: LoginThrottle | None = None, models=None
) -> None:
    """Register the REST routes and the /api error handlers on `app` (before Gradio's page is mounted at /).
    `throttle`: failed-login bookkeeping shared with the guard (a new one if None); `models`: the
    served models (modelset.ModelSet), chosen by the `model` field."""
    add_error_handlers(app)
    denied = auth_check(settings.auth, throttle or LoginThrottle())

    if engine is not None:  # what /api/health says of the model, worked out once (it reads the disk)
        model_health = {
            "model": dict(engine.model_info),  # no local path: a model folder by its name only
            "labels": [label.key for label in LABELS],
            "label_sets": {name: list(keys) for name, keys in PRESETS.items()},  # `labels=iemocap4` or any names
            "sentiment_mapping": dict(DEFAULT_MAPPING),  # `sentiment=true`; `sentiment_map` changes it
            "heads": {name: list(head.labels) for name, head in getattr(engine, "heads", {}).items()},  # `head=NAME`
            "max_upload_mb": settings.max_upload_mb,
        }

    @app.get("/api/health")
    async def health(request: Request):  # on the event loop: nothing here may block
        if (refusal := denied(request)) is not None:
            return refusal
        if engine is None:
            body = {"status": "error", "error": public_text(load_error or "model not loaded"), "code": "model_load"}
            return JSONResponse(body, status_code=503)
        state = request.app.state
        live, watchdog = getattr(state, "live", None), getattr(state, "watchdog", None)
        memory = getattr(state, "memory", None)
        return {
            "status": "ok",
            **model_health,
            **({"models": models.all_labels()} if models is not None else {}),  # `model=NAME`, with each one's labels
            **({"live": live.health()} if live is not None else {}),
            **({"memory": memory.health()} if memory is not None else {}),
            **({"event_loop": watchdog.health()} if watchdog is not None else {}),
        }

    @app.post("/api/predict")
    async def predict(request: Request):
        if (refusal := denied(request)) is not None:
            return refusal
        # No Content-Length check here: the guard counts the bytes as they arrive (chunked too)
        # and answers 413 for an upload over --max-upload-mb, 408 for one that stalls.
        lang = _lang(request, request.query_params.get("lang"))
        if engine is None:
            return _error(EmotionAppError(load_error or "model not loaded", "model_load"), lang)
        try:
            async with request.form(max_files=2, max_fields=32) as form:
                lang = _lang(request, form.get("lang") or request.query_params.get("lang"))
                upload = form.get("audio")
                if not isinstance(upload, UploadFile):
                    return _error(EmotionAppError("Send the audio file in the multipart field 'audio'.", "no_audio"), lang)
                fields = {k: v for k, v in form.items() if isinstance(v, str)}
                if isinstance(fields.pop("turns", None), str):  # text would be read as a path on the server
                    message = "turns: upload the turns file as a file (multipart field 'turns' with its file name), not as text."
                    return _error(EmotionAppError(message, "bad_turns"), lang)
                if len(form.getlist("head")) > 1:  # head=a&head=b as well as head=a,b
                    fields["head"] = ",".join(v for v in form.getlist("head") if isinstance(v, str))
                turns = form.get("turns")  # a turns file (RTTM, WebVTT, SRT, whisper JSON), optional
                if isinstance(turns, UploadFile):
                    fields["turns"], fields["turns_name"] = await turns.read(), turns.filename or "turns"
                data, filename = await upload.read(), upload.filename
        except (ValueError, KeyError, RuntimeError) as exc:  # starlette's parser errors: a malformed request
            return JSONResponse({"error": f"Malformed multipart form: {exc}", "code": "bad_request"}, status_code=400)
        try:
            model = fields.pop("model", None)
            options = RequestOptions.from_fields(fields)
            budget = getattr(request.app.state, "memory", None)
            with owned_by(owner(request)):  # the worker thread runs in a copy of this context
                body = await run_in_threadpool(
                    _analyze_json, engine, data, options, settings.outputs_dir, filename, lang, budget, models, model
                )
        except EmotionAppError as exc:
            return _error(exc, lang)
        return Response(body, media_type="application/json")

    @app.get("/api/results")
    async def results(request: Request):
        """The caller's results, newest first; `all=1`: everyone's (the admin role)."""
        if (refusal := denied(request)) is not None:
            return refusal
        lang = _lang(request, request.query_params.get("lang"))
        user = caller(request)
        everyone = request.query_params.get("all", "").lower() in ("1", "true", "yes")
        if everyone and (user is None or not user.admin):
            message = "Listing everyone's results needs the admin role; without all=1 you get your own."
            return _error(EmotionAppError(message, "forbidden"), lang)
        if owner(request) is None:  # no logins: nobody's results are anyone's to list (the keyed links stay secret)
            return _error(EmotionAppError(ERRORS["results_need_login"].en, "results_need_login"), lang)
        found = await run_in_threadpool(list_results, settings.outputs_dir, owner(request), everyone)
        return {"user": owner(request), "results": found}

    @app.get("/api/outputs/{folder}/{key}/{name}")
    async def download(folder: str, key: str, name: str, request: Request):
        if (refusal := denied(request)) is not None:
            return refusal
        path = await run_in_threadpool(output_file, settings.outputs_dir, folder, key, name)
        if path is None:  # a wrong key reads exactly like a missing file
            raise HTTPException(404)
        # The URL is the secret: keep it out of shared caches and of Referer headers.
        headers = {"Cache-Control": "private, no-cache", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}
        return FileResponse(path, filename=name, headers=headers)


def add_api_fallback(app: FastAPI) -> None:
    """Keep every /api/ path ours once Gradio's page is mounted at /: a path no route serves is 404
    and a method a route lacks is 405, both as {"error", "code"}, rather than Gradio's answers (the
    mount matches any path, so it would win over a route that matches all but the method). Added
    after all /api/ routes."""
    from starlette.routing import Match

    async def unknown(request: Request):
        routes = request.app.router.routes
        lacking = [route for route in routes if route.matches(request.scope)[0] is Match.PARTIAL]
        if lacking:  # the path is served, with other methods
            allow = sorted({method for route in lacking for method in getattr(route, "methods", None) or ()})
            raise StarletteHTTPException(405, headers={"Allow": ", ".join(allow)})
        raise StarletteHTTPException(404)

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    for path in ("/api", "/api/{rest:path}"):
        app.add_api_route(path, unknown, methods=methods, include_in_schema=False)
