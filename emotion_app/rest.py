"""Plain REST endpoints beside the Gradio app: /api/predict, /api/health, /api/outputs/...

Multipart upload (field `audio`, form fields `granularity`, `extract_embedding`, optional `lang`,
the frame-analysis options of OPTION_FIELDS, and `segment` vad|window with SEGMENT_FIELDS for a
long recording);
JSON out; bad input is a 4xx with {"error", "code"}; nothing is served outside the outputs folder.
"""

from __future__ import annotations

import base64
import logging
import secrets

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import UploadFile

from .constants import LABELS
from .errors import EmotionAppError
from .i18n import error_message
from .outputs import output_file
from .service import analysis_options, analyze, analyze_recording, segment_options
from .timeline import flag

logger = logging.getLogger(__name__)

STATUS = {"too_large": 413, "bad_granularity": 422, "bad_option": 422, "bad_request": 400, "model_load": 503}
SEGMENT_FIELDS = ("threshold", "min_speech_s", "min_silence_s", "max_segment_s", "speech_pad_s", "window_s", "hop_s")
OPTION_FIELDS = ("method", "window", "alpha", "zero_phase", "min_duration_s", "mixed_threshold", "utterance_from", "charts")


def _lang(request: Request, form_lang: str | None) -> str:
    if form_lang in ("en", "zh"):
        return form_lang
    return "zh" if request.headers.get("accept-language", "").lower().startswith("zh") else "en"


def _error(exc: EmotionAppError, lang: str) -> JSONResponse:
    return JSONResponse({"error": error_message(exc, lang), "code": exc.code}, status_code=STATUS.get(exc.code, 400))


def _authorized(request: Request, auth: tuple[str, str] | None) -> bool:
    if auth is None:
        return True
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return secrets.compare_digest(user, auth[0]) and secrets.compare_digest(password, auth[1])


def add_rest_routes(app: FastAPI, engine, settings, load_error: str | None = None) -> None:
    """Register the REST routes on `app` (before Gradio adds its own)."""
    limit = int(settings.max_upload_mb * 1024 * 1024)
    unauthorized = JSONResponse(
        {"error": "authentication required", "code": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Basic"}
    )

    @app.get("/api/health")
    def health(request: Request):
        if not _authorized(request, settings.auth):
            return unauthorized
        if engine is None:
            return JSONResponse({"status": "error", "error": load_error}, status_code=503)
        return {
            "status": "ok",
            "model": engine.info,
            "labels": [label.key for label in LABELS],
            "max_upload_mb": settings.max_upload_mb,
        }

    @app.post("/api/predict")
    async def predict(request: Request):
        if not _authorized(request, settings.auth):
            return unauthorized
        lang = _lang(request, request.query_params.get("lang"))
        length = request.headers.get("content-length")
        if length is None:
            return JSONResponse({"error": "Content-Length is required.", "code": "length_required"}, status_code=411)
        if int(length) > limit:
            return _error(
                EmotionAppError(f"The upload is larger than the limit of {settings.max_upload_mb:g} MB.", "too_large"), lang
            )
        if engine is None:
            return _error(EmotionAppError(load_error or "model not loaded", "model_load"), lang)
        try:
            async with request.form(max_files=1, max_fields=32) as form:
                lang = _lang(request, form.get("lang") or request.query_params.get("lang"))
                upload = form.get("audio")
                if not isinstance(upload, UploadFile):
                    return _error(EmotionAppError("Send the audio file in the multipart field 'audio'.", "no_audio"), lang)
                granularity = str(form.get("granularity") or "utterance")
                embed = flag(form.get("extract_embedding"), False)
                fields = {k: form[k] for k in OPTION_FIELDS if form.get(k) not in (None, "")}
                segment = str(form.get("segment") or "none")
                seg_fields = {k: form[k] for k in SEGMENT_FIELDS if form.get(k) not in (None, "")}
                data, filename = await upload.read(), upload.filename
        except (ValueError, KeyError, RuntimeError) as exc:  # starlette's parser errors: a malformed request
            return JSONResponse({"error": f"Malformed multipart form: {exc}", "code": "bad_request"}, status_code=400)
        try:
            options = analysis_options(**fields)
            if segment != "none":  # a long recording: one result per speech segment or window
                seg = segment_options(segment, **seg_fields)
                analysis = await run_in_threadpool(
                    analyze_recording, engine, data, seg, outputs_dir=settings.outputs_dir, name=filename, lang=lang
                )
                return analysis.response()
            analysis = await run_in_threadpool(
                analyze,
                engine,
                data,
                granularity,
                embed,
                outputs_dir=settings.outputs_dir,
                name=filename,
                options=options,
                lang=lang,
            )
        except EmotionAppError as exc:
            return _error(exc, lang)
        return analysis.response()

    @app.get("/api/outputs/{folder}/{name}")
    def download(folder: str, name: str, request: Request):
        if not _authorized(request, settings.auth):
            return unauthorized
        path = output_file(settings.outputs_dir, folder, name)
        if path is None:
            return JSONResponse({"error": "no such output file", "code": "not_found"}, status_code=404)
        return FileResponse(path, filename=name)
