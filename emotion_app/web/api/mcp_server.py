"""The MCP server (`serve --mcp`): the app's analyses as tools an LLM agent can call, at `/mcp` on
the same server (MCP's streamable HTTP transport), behind the same guard, login and limits as the
REST API.

Tools: `predict` (one clip), `analyze_recording` (a long recording: segments, and who speaks when
asked) and `compare_clips` (two clips side by side). Each takes audio as a string:

- a base64 data URL, `data:audio/wav;base64,...` (for agents that share no file system with the
  server): at most mcp_audio.MAX_INLINE_MB (or --max-upload-mb, if smaller) once decoded, since the SDK
  parses a request's JSON on the event loop; a larger one is the REST API's `too_large` error,
  which names the way for larger files: upload them first;
- a file uploaded to this server: the path `POST /gradio_api/upload` returned (only files inside
  Gradio's upload folder are read), or a download link of a result of this server
  (`/api/outputs/<folder>/<key>/<name>`, checked like a download);
- an http(s) URL, only when the operator allows fetching (`--mcp-allow-urls`): a server that fetches
  any URL it is given can be turned against the network it stands in.

The tools answer with result.json's content (typed: the fields an agent acts on, with their types
and descriptions derived from the result model's dataclasses, analysis/report.py; the rest pass
through) and the results' download links as absolute URLs. The SDK runs a tool on the
event loop, so each tool hands its work (decoding, the model, the output folder, checking its
answer) to a worker thread. Errors reach the agent as the REST API words them, led by the REST
API's code: "bad_labels: <the EmotionAppError's message, this machine's paths cut>"; anything else
as "internal: Internal server error; ..." and logged.
"""

# No `from __future__ import annotations` here: the SDK evaluates a tool's annotations in the module's
# globals, and the tools' `Context` is imported inside build_mcp (the SDK is imported only with --mcp).
import contextlib
import dataclasses
import functools
import logging
import operator
import types
import typing
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ...analysis import schema
from ...analysis.report import ClipReport, RecordingReport, Segment, Speaker
from ...compare import compare
from ...errors import ERRORS, EmotionAppError
from ...memory import estimate_mb
from ...modelset import served_engine
from ...outputs import owned_by
from ...request import RequestOptions
from ...service import analyze
from .mcp_audio import AUDIO_HELP, AudioRefs, envelope_bytes
from .rest import owner, public_text

logger = logging.getLogger(__name__)

PATH = "/mcp"
INTERNAL = ERRORS["internal"].en
LABELS_HELP = 'a label set: results over these emotions only, e.g. "angry,happy,neutral,sad" or "iemocap4"; empty: all 9'
MODEL_HELP = "a served model's name (serve --models: fine-tuned models with their own labels); empty: the base model"
SENTIMENT_HELP = "add a sentiment block {label: positive|negative|neutral, score in [-1, 1]} to each reading"


# The tools answer with result.json's content: typed by the result model's dataclasses
# (analysis/report.py), whose types and descriptions `answer_model` derives for the fields an agent
# acts on (DECLARED; every field of the blocks not named here); the other keys pass through as they are.
READING = ("emotion", "confidence", "scores", "label_set", "sentiment")
CLIP = (*READING, "duration_s", "warnings")
DECLARED: dict[type, tuple[str, ...]] = {
    ClipReport: CLIP,
    RecordingReport: (*CLIP, "segments", "summary", "speakers", "conversation"),
    Segment: ("start", "end", "emotion", "confidence", "scores", "speaker", "sentiment"),
    Speaker: ("name", "talk_s", "share_of_talk", "turns", "emotion", "confidence", "probabilities", "sentiment"),
}


@functools.cache
def answer_model(cls: type, keep: tuple[str, ...] | None = None, name: str | None = None) -> type[BaseModel]:
    """The pydantic model (named `name`, default as `cls`) of the result dataclass `cls`: its fields
    `keep` (default DECLARED[cls], or all), their types (nested dataclasses as models too) and
    descriptions taken from `cls`; a field result.json may leave out defaults to None; any other key
    passes through."""
    hints, keep = typing.get_type_hints(cls), keep or DECLARED.get(cls)
    if missing := set(keep or ()) - {schema.key_of(f) for f in schema.json_fields(cls)}:
        raise ValueError(f"{cls.__name__} has no field {sorted(missing)[0]!r}: declare result.json's fields only")
    fields = {}
    for f in schema.json_fields(cls):
        key = schema.key_of(f)
        if keep is not None and key not in keep:
            continue
        default = None if "omit" in f.metadata else ...
        alias = key if key != f.name else None
        fields[f.name] = (_answer_type(hints[f.name]), Field(default, alias=alias, description=f.metadata.get("doc")))
    config = ConfigDict(extra="allow", populate_by_name=True)
    return create_model(name or cls.__name__, __config__=config, __doc__=cls.__doc__, **fields)


def _answer_type(tp):
    """A dataclass field's type with its dataclasses as answer models and its tuples as lists."""
    if dataclasses.is_dataclass(tp):
        return answer_model(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        return functools.reduce(operator.or_, [_answer_type(a) for a in args])
    if origin in (tuple, list):
        return list[_answer_type(args[0])]
    if origin is dict:
        return dict[args[0], _answer_type(args[1])]
    return tp


def _with_files(model: type[BaseModel], name: str) -> type[BaseModel]:
    """`model` and the APIs' addition to result.json: the result's download links."""
    links = Field(default_factory=dict, description="download links of the result's files")
    return create_model(name, __base__=model, files=(dict[str, str], links))


ClipAnswer = _with_files(answer_model(ClipReport), "ClipResult")
RecordingAnswer = _with_files(answer_model(RecordingReport), "RecordingResult")
ClipReading = answer_model(ClipReport, READING, "ClipReading")  # compare_clips' clips


class Comparison(BaseModel):
    clips: list[ClipReading] = Field(description="the two clips' readings, in order")
    similarity: float = Field(description="cosine similarity of the two clips' utterance embeddings, -1 to 1")


def build_mcp(engine, settings, load_error: str | None, refs: AudioRefs, budget=None, models=None):
    """The MCP server and its tools (mcp's FastMCP; the transport is mounted by `add_mcp_routes`);
    `budget`: the server's memory budget (memory.MemoryBudget), shared with the REST API and the page;
    `models`: the served models (modelset.ModelSet), which each tool's `model` argument chooses from."""
    from mcp.server.fastmcp import Context, FastMCP
    from mcp.server.transport_security import TransportSecuritySettings

    server = FastMCP(
        "emotion_app",
        instructions=(
            "Speech emotion recognition (emotion2vec+): the emotion of a voice clip, of each segment of a long "
            "recording and of each speaker of a conversation; 9 emotions (angry, disgusted, fearful, happy, neutral, "
            "other, sad, surprised, unknown). Send audio as a base64 data URL."
        ),
        streamable_http_path="/",
        stateless_http=True,  # no session state kept between calls
        json_response=True,
        max_request_body_size=envelope_bytes(settings.max_upload_mb),
        # the guard checks the Host header for every route (hosts.py, --allowed-hosts)
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )

    def ready():
        if engine is None:
            raise EmotionAppError(load_error or "model not loaded", "model_load")

    def links(ctx: Context, body: dict) -> dict:
        """The result's relative download links made absolute for the caller."""
        request = getattr(ctx.request_context, "request", None)
        if isinstance(request, Request) and body.get("files"):
            base = str(request.base_url).rstrip("/")
            body["files"] = {name: base + url for name, url in body["files"].items()}
        return body

    def run(ref: str, fields: dict, ctx: Context, answer: type[BaseModel], model: str = "") -> BaseModel:
        """In a worker thread: the model chosen, the reference opened, analysed, and the answer checked."""
        chosen = served_engine(engine, models, model)
        data, name = refs.open(ref)
        request = RequestOptions.from_fields(fields, charts=False)
        http = getattr(ctx.request_context, "request", None)
        with owned_by(owner(http) if isinstance(http, Request) else None):  # the caller's result
            body = analyze(chosen, data, request, outputs_dir=settings.outputs_dir, name=name, budget=budget).response()
        return answer.model_validate(links(ctx, body))

    @server.tool(
        name="predict",
        title="Emotion of a voice clip",
        description=(
            "The emotion of one voice clip (up to a few minutes): the top emotion, its confidence and all scores, "
            "optionally over a label set and with sentiment. For long recordings use analyze_recording."
        ),
    )
    async def predict(
        ctx: Context,
        audio: Annotated[str, Field(description=AUDIO_HELP)],
        labels: Annotated[str, Field(description=LABELS_HELP)] = "",
        sentiment: Annotated[bool, Field(description=SENTIMENT_HELP)] = False,
        model: Annotated[str, Field(description=MODEL_HELP)] = "",
    ) -> ClipAnswer:
        with answered():
            ready()
            fields = {"labels": labels, "sentiment": sentiment}
            return await run_in_threadpool(run, audio, fields, ctx, ClipAnswer, model)

    @server.tool(
        name="analyze_recording",
        title="Emotions through a recording or conversation",
        description=(
            "A long recording cut into speech segments (voice activity), each with its emotion, plus the share of "
            "each emotion. With speakers: who felt what, when: 'channels' for a stereo call (one party per channel), "
            "'auto' to tell voices apart, or the number of speakers; names in order, e.g. 'Agent,Customer'."
        ),
    )
    async def analyze_recording(
        ctx: Context,
        audio: Annotated[str, Field(description=AUDIO_HELP)],
        speakers: Annotated[str, Field(description="'', 'channels', 'auto' or a number of speakers (2-10)")] = "",
        names: Annotated[str, Field(description="the speakers' names in order, comma-separated")] = "",
        labels: Annotated[str, Field(description=LABELS_HELP)] = "",
        sentiment: Annotated[bool, Field(description=SENTIMENT_HELP)] = False,
        model: Annotated[str, Field(description=MODEL_HELP)] = "",
    ) -> RecordingAnswer:
        fields = {"segment": "vad", "speakers": speakers, "names": names, "labels": labels, "sentiment": sentiment}
        if speakers and not names:
            fields.pop("names")
        with answered():
            ready()
            return await run_in_threadpool(run, audio, fields, ctx, RecordingAnswer, model)

    @server.tool(
        name="compare_clips",
        title="Compare two voice clips",
        description="Two clips' emotions side by side, and how similar they sound (cosine of their embeddings).",
    )
    async def compare_clips(
        audio_a: Annotated[str, Field(description=AUDIO_HELP)],
        audio_b: Annotated[str, Field(description=AUDIO_HELP)],
        labels: Annotated[str, Field(description=LABELS_HELP)] = "",
        sentiment: Annotated[bool, Field(description=SENTIMENT_HELP)] = False,
        model: Annotated[str, Field(description=MODEL_HELP)] = "",
    ) -> Comparison:
        def both() -> Comparison:
            chosen = served_engine(engine, models, model)
            (a, _), (b, _) = refs.open(audio_a), refs.open(audio_b)
            request = RequestOptions.from_fields({"labels": labels, "sentiment": sentiment})
            # two clips' fixed parts (their length adds a few MB a minute): held from the budget as an analysis is
            held = budget.hold(2 * estimate_mb("clip", 0.0), "compare_clips") if budget is not None else contextlib.nullcontext()
            with held:
                cmp = compare(chosen, [a, b], ["a", "b"], labels=request.labels)
            if cmp.errors:
                which, message = next(iter(cmp.errors.items()))
                raise EmotionAppError(f"clip {which}: {message}", cmp.codes.get(which))
            mood = request.analysis.sentiment
            clips = [
                ClipReading(emotion=e, confidence=round(max(p.values()), 4), scores={k: round(v, 3) for k, v in p.items()},
                           label_set=request.labels.to_list() if request.labels else None,
                           sentiment=mood.of(p) if mood is not None else None)
                for e, p in zip(cmp.emotions, cmp.probabilities)
            ]  # fmt: skip
            return Comparison(clips=clips, similarity=round(float(cmp.similarity[0, 1]), 4))

        with answered():
            ready()
            return await run_in_threadpool(both)

    return server


@contextlib.contextmanager
def answered():
    """A tool's errors as the REST API words them, "<code>: <message>": an EmotionAppError's message
    with this machine's paths cut; anything else logged with its traceback and answered as an internal error."""
    from mcp.server.fastmcp.exceptions import ToolError

    try:
        yield
    except ToolError:
        raise
    except EmotionAppError as exc:
        raise ToolError(f"{exc.code}: {public_text(exc.message)}") from None
    except Exception:
        logger.exception("MCP tool failed")
        raise ToolError(f"internal: {INTERNAL}") from None


class _Authorised:
    """The MCP transport behind the REST API's login check (HTTP Basic, throttled; with `--users` the
    guard has found the caller by their API key)."""

    def __init__(self, app, denied):
        self.app, self.denied = app, denied

    async def __call__(self, scope, receive, send):
        refusal = self.denied(Request(scope))
        if refusal is not None:
            return await refusal(scope, receive, send)
        await self.app(scope, receive, send)


def add_mcp_routes(app, engine, settings, load_error: str | None, denied, allow_urls: bool = False, models=None):
    """Serve the MCP tools at /mcp; returns the lifespan context the transport needs."""
    from mcp.server.fastmcp.server import StreamableHTTPASGIApp
    from starlette.routing import Route

    refs = AudioRefs(settings.outputs_dir, settings.max_upload_mb, allow_urls)
    server = build_mcp(engine, settings, load_error, refs, getattr(app.state, "memory", None), models)
    server.streamable_http_app()  # makes the session manager
    endpoint = _Authorised(StreamableHTTPASGIApp(server.session_manager), denied)
    for path in (PATH, PATH + "/"):
        app.router.routes.append(Route(path, endpoint=endpoint, methods=["GET", "POST", "DELETE"]))
    logger.info("MCP tools at %s (fetching URLs %s)", PATH, "allowed" if allow_urls else "off")

    @contextlib.asynccontextmanager
    async def lifespan():
        async with server.session_manager.run():
            yield

    return lifespan
