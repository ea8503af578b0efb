"""Inputs that cannot break it. A deterministic fuzz set: byte-flipped, truncated and
header-corrupted copies of real WAV, MP3, M4A, OGG and WEBM files, through load_audio and the REST
API. Every copy either decodes or raises a coded AudioError (a 4xx over HTTP): no other exception,
no 5xx, no hang, bounded memory. Then properties (Hypothesis) of every parser of what a user types
or uploads (turns files, label sets, sentiment maps, request options, the live settings and
messages, the MCP tools' arguments): a valid value or the project's coded error, directly and
through a real server; a fixed set of examples (conftest.py's profiles)."""

from __future__ import annotations

import base64
import json
import math
import resource
import signal

import httpx
import numpy as np
import pytest
from audio_files import speechlike, write_audio
from hypothesis import event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from emotion_app.analysis.options import AnalysisOptions
from emotion_app.audio.segmenter import SEGMENT_FIELDS
from emotion_app.audio.source import load_audio
from emotion_app.constants import LABEL_KEYS
from emotion_app.errors import ERRORS, AudioError, EmotionAppError
from emotion_app.fields import OptionError
from emotion_app.labelset import LabelSet
from emotion_app.live.options import LiveOptions, StreamFormat, decode_frame, parse_settings
from emotion_app.request import RequestOptions
from emotion_app.sentiment import POLARITIES, Sentiment
from emotion_app.speakers.turns import TurnsFile
from emotion_app.web.api.mcp_audio import AudioRefs
from emotion_app.web.api.stream import end_event

FORMATS = ("wav", "mp3", "m4a", "ogg", "webm")
PER_FORMAT = 60  # 300 copies in all
PER_FILE_S = 10  # a copy that takes longer than this to decode counts as a hang


def mutations(data: bytes, rng: np.random.Generator, n: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        kind = ("flip", "truncate", "header")[i % 3]
        b = bytearray(data)
        if kind == "flip":  # a few random bytes anywhere
            for pos in rng.integers(0, len(b), size=int(rng.integers(1, 16))):
                b[pos] = int(rng.integers(0, 256))
        elif kind == "truncate":
            b = b[: int(rng.integers(1, len(b)))]
        else:  # the first 64 bytes: where the container and codec headers live
            for pos in rng.integers(0, min(64, len(b)), size=int(rng.integers(1, 6))):
                b[pos] = int(rng.integers(0, 256))
        out.append((f"{kind}{i}", bytes(b)))
    return out


@pytest.fixture(scope="module")
def fuzz_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(1234)
    cases = []
    for fmt in FORMATS:
        data = write_audio(root / f"base.{fmt}", speechlike(1.0, 16000, seed=3), 16000, fmt).read_bytes()
        cases += [(f"{fmt}-{name}", fmt, mutated) for name, mutated in mutations(data, rng, PER_FORMAT)]
    return cases


def _alarm(signum, frame):
    raise TimeoutError("decoding hung")


def test_load_audio_answers_every_copy(fuzz_set):
    old = signal.signal(signal.SIGALRM, _alarm)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcomes = {"ok": 0, "error": 0}
    try:
        for name, fmt, data in fuzz_set:
            signal.alarm(PER_FILE_S)
            try:
                audio = load_audio(data, name=f"{name}.{fmt}")
                assert audio.samples.dtype == np.float32 and np.isfinite(audio.samples).all()
                outcomes["ok"] += 1
            except AudioError as exc:
                assert exc.code and exc.message.startswith(f"{name}.{fmt}"), (name, exc.code, exc.message)
                outcomes["error"] += 1
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, old)
    assert sum(outcomes.values()) == len(fuzz_set) == 300
    assert outcomes["ok"] > 30 and outcomes["error"] > 30, outcomes  # the set exercises both outcomes
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    assert grown_mb < 200, grown_mb


def test_rest_answers_every_copy_without_a_5xx(web, fuzz_set):
    statuses = {}
    with httpx.Client(base_url=web.url, timeout=PER_FILE_S * 3) as client:
        for name, fmt, data in fuzz_set[::2]:  # 150 requests
            r = client.post("/api/predict", files={"audio": (f"{name}.{fmt}", data)})
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert r.status_code < 500, (name, r.status_code, r.text)
            body = r.json()
            assert (r.status_code == 200 and body["emotion"]) or (set(body) == {"error", "code"} and body["code"]), body
    assert statuses.get(200, 0) > 10 and sum(v for k, v in statuses.items() if 400 <= k < 500) > 10, statuses
    assert httpx.get(web.url + "/api/health").status_code == 200  # and the server keeps serving


# ---------------------------------------------------------------------------------------------
# Properties (Hypothesis) of every parser of what a user types or uploads: the four turns formats,
# label sets, sentiment maps, request options, the live WebSocket's settings and messages, the MCP
# tools' arguments. Whatever comes in, a parser gives a valid value or raises the project's own
# error with a registered code: never another exception. The examples and their number are fixed
# (conftest.py's "suite" profile); HYPOTHESIS_PROFILE=explore draws many more.

EDGES = ["", " ", "0", "-0", "1", "2", "-1", "0.5", "1e308", "1e400", "-1e400", "nan", "NaN", "inf", "-inf", "Infinity",
         "0x10", "1_0", "٣", "½", "9" * 400, "9" * 5000, "\x00", "\u2028", "true", "false", "none", "all", "null",
         "vad", "window", "none", "frame", "utterance", "channels", "auto", "turns", "iemocap4", "angry,happy", "angry,",
         ",", "ewma", "vote", "mean", "pcm_s16le", "f32le", "en", "zh", "positive", "surprised", "[]", "{}"]  # fmt: skip
texts = st.text(max_size=40) | st.sampled_from(EDGES)
numbers = st.integers() | st.integers(min_value=10**300, max_value=10**320) | st.floats()
scalars = st.none() | st.booleans() | numbers | texts


def nested(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3)


values = st.recursive(scalars, nested, max_leaves=8)  # JSON-like values, a few levels deep
deep_json = (st.sampled_from([999, 1000, 3000, 5000]) | st.integers(1, 5000)).flatmap(
    lambda n: st.sampled_from(["[" * n + "]" * n, '{"a":' * n + "1" + "}" * n])
)


def json_text(strategy) -> st.SearchStrategy[str]:
    """JSON text of what `strategy` draws (NaN and Infinity as Python writes them), or deeply nested JSON."""
    return strategy.map(json.dumps) | deep_json


def answers(parse, *args, **kwargs):
    """parse(...)'s value, or None when it raised the project's error (its code registered)."""
    try:
        return parse(*args, **kwargs)
    except EmotionAppError as exc:
        assert exc.code in ERRORS, exc.code
        assert isinstance(exc.message, str) and exc.message, exc
        return None


# the turns formats: lines close to each format, with their numbers, times and names drawn
seconds = st.sampled_from(["1e308", "9e307", "1.7e308"]) | st.sampled_from(["0", "0.5", "1.25", "-1", "nan", "inf", "1e-320",
                                                                           "x", "٣", "9" * 400])  # fmt: skip
ids = st.sampled_from(["rec", "other", "a b", "", "<NA>"])
rttm_lines = st.builds(  # mostly SPEAKER lines of all 10 fields
    lambda kind, rec, onset, dur, who, cut: " ".join([kind, rec, "1", onset, dur, "<NA>", "<NA>", who, "<NA>", "<NA>"][:cut]),
    st.just("SPEAKER") | st.sampled_from(["SPKR-INFO", ";;", "speaker", "LEXEME", "#"]), ids, seconds, seconds, texts,
    st.just(10) | st.integers(0, 10),
)  # fmt: skip
clock = st.builds(
    lambda h, m, s, ms, sep: f"{h}{m}:{s}{sep}{ms}",
    st.sampled_from(["", "00:", "1:", "99999:", "999999:", "9" * 5000 + ":"]), st.sampled_from(["00", "59", "60", "7", "123"]),
    st.sampled_from(["00", "01", "59", "60", "5"]), st.sampled_from(["000", "5", "9999", ""]), st.sampled_from([".", ",", ""]),
)  # fmt: skip
timings = st.builds(lambda a, b, extra: f"{a} --> {b}{extra}", clock, clock, st.sampled_from(["", " align:start", "-->"]))
cue_text = st.sampled_from(["<v Ann>hi", "<v.loud Bob Smith>hey</v>", "Ann: hello", "Dr. Jane Smith: yes", "The reason: x",
                            "<i>in</i> {\\an8}", "&amp; &lt;", "Ann：你好", "<v >", "<b"]) | texts  # fmt: skip
cues = st.builds(
    lambda number, timing, lines: "\n".join([*number, timing, *lines]),
    st.lists(st.sampled_from(["1", "cue-1", "NOTE", ""]), max_size=1),
    timings,
    st.lists(cue_text, max_size=2),
)
vtt_files = st.builds(lambda head, blocks: "\n\n".join([head, *blocks]),
                      st.sampled_from(["WEBVTT", "WEBVTT - title", "WEBVTT\nKind: captions", "WEBVTTX", "", "NOTE x"]),
                      st.lists(cues, max_size=4))  # fmt: skip
srt_files = st.lists(cues, max_size=4).map("\n\n".join)
segments = st.fixed_dictionaries(
    {"start": numbers | scalars, "end": numbers | scalars}, optional={"speaker": values, "text": values, "words": values}
)
whisper = st.fixed_dictionaries({"segments": st.lists(segments, max_size=4)})
json_turns = json_text(whisper | st.lists(segments, max_size=3) | values)
turn_files = st.one_of(
    st.tuples(st.lists(rttm_lines, max_size=5).map("\n".join), st.sampled_from(["t.rttm", "rec.rttm", "t"])),
    st.tuples(vtt_files, st.sampled_from(["t.vtt", "t"])),
    st.tuples(srt_files, st.sampled_from(["t.srt", "t"])),
    st.tuples(json_turns, st.sampled_from(["t.json", "t"])),
    st.tuples(st.lists(texts, max_size=5).map("\n".join), st.sampled_from(["t.rttm", "t.vtt", "t.srt", "t.json", "t.txt"])),
)
encodings = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "crlf", "cr"])


def encoded(text: str, encoding: str) -> bytes:
    if encoding in ("crlf", "cr"):
        return text.replace("\n", "\r\n" if encoding == "crlf" else "\r").encode()
    return text.encode(encoding, errors="replace")


@given(turn_files, encodings, st.sampled_from([None, 0.5, 3.0, 1e9]), st.sampled_from([None, "rec", "other"]))
def test_turns_files_give_turns_or_a_turns_error(file, encoding, duration_s, recording):
    text, name = file
    turns_file = answers(TurnsFile.of, encoded(text, encoding), name)
    turns = answers(turns_file.read, duration_s, recording) if turns_file is not None else None
    for turn in turns or []:
        assert 0 <= turn.start < turn.end and math.isfinite(turn.end), turn
        assert duration_s is None or turn.end <= duration_s, (turn, duration_s)
        assert turn.speaker is None or (isinstance(turn.speaker, str) and turn.speaker.strip() == turn.speaker != "")
    if turns_file is not None:
        assert turns_file.format in ("rttm", "vtt", "srt", "json")


@given(st.binary(max_size=400), st.sampled_from(["t.rttm", "t.vtt", "t.srt", "t.json", "turns"]))
def test_turns_of_any_bytes_are_read_or_refused(data, name):
    turns_file = answers(TurnsFile.of, data, name)
    if turns_file is not None:
        assert all(0 <= t.start < t.end for t in turns_file.read())


@given(values | st.lists(texts, max_size=10))
def test_label_sets_are_a_subset_of_the_labels_or_bad_labels(value):
    try:
        labels = LabelSet.parse(value)
    except OptionError as exc:
        assert exc.code == "bad_labels", exc
        return
    assert labels is None or (len(labels.keys) >= 2 and set(labels.keys) < set(LABEL_KEYS)), labels


polarities = st.sampled_from(POLARITIES) | scalars
maps = st.dictionaries(st.sampled_from(LABEL_KEYS) | texts, polarities, max_size=4)


@given(st.sampled_from([None, "", True, "true", False]) | scalars, st.none() | maps | json_text(maps | values) | texts)
def test_sentiment_maps_give_a_mapping_of_polarities_or_an_option_error(enabled, mapping):
    sentiment = answers(Sentiment.parse, enabled, mapping)
    if sentiment is not None:
        assert set(sentiment.mapping) == set(LABEL_KEYS) and set(sentiment.mapping.values()) <= set(POLARITIES)
        block = sentiment.of(dict.fromkeys(LABEL_KEYS, 1 / 9))
        assert block["label"] in POLARITIES and -1 <= block["score"] <= 1


OPTION_FIELDS = sorted({*RequestOptions.FIELDS, *AnalysisOptions.FIELDS, *SEGMENT_FIELDS} - {"turns", "turns_name"})
field_values = st.sampled_from(EDGES) | scalars | values
not_text = values.filter(lambda v: not isinstance(v, str))  # text is a path (the CLI's, Python's): not drawn here
turns_upload = st.fixed_dictionaries(
    {}, optional={"turns": turn_files.map(lambda f: f[0].encode()) | not_text, "turns_name": texts}
)
request_fields = st.builds(  # some of a request's fields, and a turns file as bytes, as an upload brings it
    lambda fields, turns: {**fields, **turns},
    st.dictionaries(st.sampled_from(OPTION_FIELDS), field_values, max_size=6),
    turns_upload,
)


@given(request_fields)
def test_request_options_are_valid_or_an_option_error(fields):
    options = answers(RequestOptions.from_fields, fields)
    if options is not None:
        json.dumps(options.to_dict(), allow_nan=False)  # every value a finite number, text or list
        assert options.granularity in ("utterance", "frame")


settings_keys = st.sampled_from([*StreamFormat.FIELDS, *LiveOptions.FIELDS, "analysis", "lang", "turns", "x"])
live_analysis = st.dictionaries(st.sampled_from([*OPTION_FIELDS, "turns"]), texts, max_size=5)
live_settings = st.dictionaries(settings_keys, field_values | live_analysis, max_size=7)
# each setting with values mostly allowed (the last one of each list is not), so that many a take starts
NEAR = {
    "format": ["pcm_s16le", "f32le", "s8"],
    "channels": [1, "2", 9],
    "window_s": [3, "2.5", 0.1],
    "hop_s": [0.5, "1", 50],
    "smoothing": ["ewma", "vote", "median"],
    "alpha": [0.5, "1", 0],
    "votes": [3, "5", 99],
    "lang": ["en", "zh", "fr"],
}
NEAR_ANALYSIS = {
    "granularity": ["frame", "utterance", "word"],
    "labels": ["iemocap4", "angry,sad", "angry"],
    "sentiment": [True, "yes", "maybe"],
    "segment": ["vad", "window", "all"],
}


def near(table: dict) -> st.SearchStrategy[dict]:
    return st.lists(st.sampled_from(sorted(table)), max_size=2, unique=True).flatmap(
        lambda keys: st.fixed_dictionaries({k: st.sampled_from(table[k]) for k in keys})
    )


near_settings = st.builds(
    lambda fields, analysis: {"sample_rate": 16000, **fields, **({"analysis": analysis} if analysis else {})},
    near(NEAR), near(NEAR_ANALYSIS),
)  # fmt: skip


@given(json_text(live_settings | near_settings) | texts | st.binary(max_size=40) | st.none())
def test_live_settings_are_valid_or_a_coded_error(message):
    stream = answers(parse_settings, message)
    if stream is not None:
        assert 8000 <= stream.format.sample_rate <= 192000 and stream.live.hop_s <= stream.live.window_s
        assert stream.request.turns is None and stream.lang in ("en", "zh")


@given(json_text(values | st.just({"event": "end"})) | texts | st.none())
def test_live_text_messages_are_the_end_or_bad_message(text):
    assert answers(end_event, text) in (True, None)


@given(st.binary(max_size=2000), st.sampled_from(["pcm_s16le", "f32le"]), st.integers(1, 8))
def test_live_audio_frames_are_finite_samples_or_bad_frame(data, fmt, channels):
    samples = answers(decode_frame, data, StreamFormat(16000, fmt, channels))
    if samples is not None:
        assert samples.dtype == np.float32 and samples.ndim == 1 and np.isfinite(samples).all()
        assert len(samples) == len(data) // (channels * (2 if fmt == "pcm_s16le" else 4))


audio_refs = st.one_of(
    texts,
    st.builds(lambda head, body: f"data:{head},{body}", st.sampled_from(["audio/wav;base64", "x;base64", "", ";base64"]),
              st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()) | texts),
    st.builds(lambda pre, rest: pre + rest, st.sampled_from(["http://", "https://[", "http://[::1", "/api/outputs/", "file://",
              "ftp://", "//", "../", "/etc/", "~/"]), texts),
)  # fmt: skip


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    """The MCP tools' reader of `audio`, on empty folders; it fetches no URL (--mcp-allow-urls off)."""
    root = tmp_path_factory.mktemp("refs")
    (root / "uploads").mkdir()
    return AudioRefs(root / "outputs", max_upload_mb=1, allow_urls=False, upload_dir=root / "uploads")


@given(audio=audio_refs, labels=texts, sentiment=st.booleans(), speakers=texts, names=texts)
def test_mcp_arguments_open_or_say_what_to_send(refs, audio, labels, sentiment, speakers, names):
    opened = answers(refs.open, audio)
    assert opened is None or (isinstance(opened[0], bytes) and opened[0] and opened[1] == "audio"), opened  # data URLs only
    fields = {"segment": "vad", "speakers": speakers, "names": names, "labels": labels, "sentiment": sentiment}
    answers(RequestOptions.from_fields, fields, charts=False)  # analyze_recording's fields; predict's are a subset


# Through a real server: the REST form fields and the WebSocket's settings message answer no 5xx and
# no internal error, each error with the registry's status or close code.
HTTP_EXAMPLES = max(20, hypothesis_settings.default.max_examples // 10)


def check_error_body(status: int, body: dict) -> None:
    assert set(body) == {"error", "code"} and body["code"] in ERRORS and body["error"], body
    assert ERRORS[body["code"]].status == status, (status, body)


@pytest.fixture(scope="module")
def short_wav(tmp_path_factory) -> bytes:
    return write_audio(tmp_path_factory.mktemp("short") / "clip.wav", speechlike(0.5, 16000, seed=2), 16000, "wav").read_bytes()


@hypothesis_settings(max_examples=HTTP_EXAMPLES)
@given(fields=st.dictionaries(st.sampled_from([*OPTION_FIELDS, "turns", "lang"]), texts, max_size=5))
def test_rest_form_fields_answer_a_result_or_a_coded_4xx(web, short_wav, fields):
    r = httpx.post(web.url + "/api/predict", files={"audio": ("clip.wav", short_wav)}, data=fields, timeout=60)
    assert r.status_code < 500, (fields, r.status_code, r.text)
    event(f"HTTP {r.status_code}")  # --hypothesis-show-statistics: how many were analysed, how many refused
    if r.status_code == 200:
        assert r.json()["emotion"] in LABEL_KEYS
    else:
        check_error_body(r.status_code, r.json())


@hypothesis_settings(max_examples=2 * HTTP_EXAMPLES)  # a refused handshake costs a few ms
@given(message=st.one_of(near_settings.map(json.dumps), json_text(live_settings), texts))
def test_live_settings_over_the_websocket_answer_ready_or_a_coded_close(web, message):
    url = "ws" + web.url.removeprefix("http") + "/api/stream"
    with connect(url, proxy=None, max_size=None) as ws:
        ws.send(message)
        first = json.loads(ws.recv(timeout=10))
        event(f"{first['event']} {first.get('code', '')}")
        if first["event"] == "ready":
            ws.send(json.dumps({"event": "end"}))  # before any audio
            first = json.loads(ws.recv(timeout=10))
            assert first["code"] == "no_audio", first
        assert first["event"] == "error" and first["code"] in ERRORS and first["code"] != "internal", first
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == ERRORS[first["code"]].close, (ws.close_code, first)


def test_a_turns_field_sent_as_text_is_refused_not_read_as_a_server_path(web, short_wav, tmp_path):
    """A text `turns` field (REST) or `analysis.turns` (the live settings) named a file on the server,
    which was read and quoted in the error: /etc/passwd's first line came back."""
    secret = tmp_path / "secret.txt"
    secret.write_text("the server's secret line\n")
    r = httpx.post(web.url + "/api/predict", files={"audio": ("a.wav", short_wav)}, data={"turns": str(secret)}, timeout=60)
    assert r.status_code == 422 and r.json()["code"] == "bad_turns" and "secret line" not in r.text, r.text
    with pytest.raises(EmotionAppError, match="a live take has no turns file") as caught:
        parse_settings(json.dumps({"sample_rate": 16000, "analysis": {"turns": str(secret)}}))
    assert caught.value.code == "bad_settings"
