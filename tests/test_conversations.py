"""Conversations on real audio (espeak-ng voices taking turns, tests/conversation_audio.py): a stereo
call with bleed, 8 kHz telephony, an interruption, mono diarization (the real CAM++ graph on random
weights for the mechanics; a spectral stand-in with a trained model's geometry for telling the voices
apart), turns from RTTM, WebVTT, SRT and whisperX files, and every entry point's output."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
import soxr
from conversation_audio import LINES, RATE, call, say
from test_cli import in_process

from emotion_app.analysis.build import build_report
from emotion_app.audio.segmenter import SegmentOptions
from emotion_app.errors import AudioError
from emotion_app.fields import OptionError
from emotion_app.longform import analyze_long
from emotion_app.request import RequestOptions
from emotion_app.service import analyze
from emotion_app.speakers.options import SpeakerOptions
from emotion_app.speakers.turns import TurnsError

NAMES = ("Agent", "Customer")
TOLERANCE_S = 0.2  # VAD boundaries against the true turns


@pytest.fixture(scope="module")
def conversation():
    return call(3)


@pytest.fixture(scope="module")
def cut_in():
    return call(3, cut_in_s=1.0)  # the customer's second line starts 1 s before the agent's ends


@pytest.fixture(scope="module")
def campplus_dir(tmp_path_factory):
    from emotion_app.tools.random_campplus import build_random_campplus

    return build_random_campplus(tmp_path_factory.mktemp("campplus") / "campplus", seed=3)


@pytest.fixture(scope="module")
def engine(tiny_dir, campplus_dir):
    from emotion_app import Engine

    return Engine(model=str(tiny_dir), speaker_model=str(campplus_dir))


def stereo_file(path: Path, conv, rate: int = RATE) -> Path:
    x = conv.stereo()
    if rate != RATE:
        x = soxr.resample(x, RATE, rate).astype(np.float32)
    sf.write(path, x, rate, subtype="PCM_16")
    return path


def matches(segments: list[dict], turns, names=NAMES) -> None:
    """Each true turn is one segment of its speaker within TOLERANCE_S, and there is nothing else."""
    who = dict(zip("AB", names))
    assert len(segments) == len(turns), [(s["speaker"], s["start"], s["end"]) for s in segments]
    for s, (w, a, b, _) in zip(sorted(segments, key=lambda s: s["start"]), sorted(turns, key=lambda t: t[1])):
        assert s["speaker"] == who[w] and abs(s["start"] - a) < TOLERANCE_S and abs(s["end"] - b) < TOLERANCE_S, (s, w, a, b)


def test_a_stereo_call_gives_each_party_its_own_turns_without_bleed(engine, conversation, tmp_path):
    path = stereo_file(tmp_path / "call.wav", conversation)
    request = RequestOptions.from_fields({"speakers": "channels", "names": "Agent,Customer"})
    analysis = analyze(engine, str(path), request, outputs_dir=tmp_path / "out")
    result = analysis.result
    matches(result["segments"], conversation.turns)
    assert {s["channel"] for s in result["segments"] if s["speaker"] == "Agent"} == {1}
    assert result["diarization"] == {"mode": "channels", "speakers": ["Agent", "Customer"], "channels": 2}
    talk = {w: sum(b - a for who, a, b, _ in conversation.turns if who == w) for w in "AB"}
    agent, customer = result["speakers"]
    assert agent["name"] == "Agent" and customer["name"] == "Customer" and agent["turns"] == customer["turns"] == 3
    assert agent["talk_s"] == pytest.approx(talk["A"], abs=0.5) and customer["talk_s"] == pytest.approx(talk["B"], abs=0.5)
    assert agent["share_of_talk"] + customer["share_of_talk"] == pytest.approx(1.0, abs=1e-3)
    c = result["conversation"]
    assert c["num_speakers"] == 2 and c["overlap_s"] == 0.0 and c["interruptions"] == []
    assert c["silence_s"] == pytest.approx(c["duration_s"] - c["talk_s"], abs=1e-3)
    assert {"turns.csv", "conversation.vtt", "conversation.srt", "conversation.png"} <= set(analysis.files)
    rows = list(csv.DictReader(io.StringIO((analysis.folder / "turns.csv").read_text())))
    assert [r["speaker"] for r in rows] == ["Agent", "Customer"] * 3 and set(rows[0]) >= {"start", "end", "emotion", "angry"}
    vtt = (analysis.folder / "conversation.vtt").read_text()
    assert vtt.startswith("WEBVTT") and vtt.count("<v Agent>") == 3 and vtt.count("<v Customer>") == 3
    assert sf.info(str(analysis.folder / "processed_audio.wav")).channels == 2  # the processed audio keeps the channels
    speakers = analysis.report.speakers  # the typed view the page reads
    assert [s.name for s in speakers] == ["Agent", "Customer"] and speakers[0].talk_s == agent["talk_s"]


def test_telephony_at_8_khz_and_an_interruption(engine, cut_in, tmp_path):
    path = stereo_file(tmp_path / "phone.wav", cut_in, rate=8000)
    rec = analyze_long(engine, str(path), SegmentOptions("vad"), speakers=SpeakerOptions("channels", names=NAMES))
    result = build_report(rec).to_json()
    assert rec.audio.sample_rate == 8000 and rec.audio.channels == 2
    matches(result["segments"], cut_in.turns)
    (interruption,) = result["conversation"]["interruptions"]
    cut = cut_in.turns[3][1]  # when the customer cut in
    assert (
        interruption["by"] == "Customer" and interruption["of"] == "Agent" and interruption["at"] == pytest.approx(cut, abs=0.2)
    )
    assert interruption["overlap_s"] == pytest.approx(1.0, abs=0.25) and result["conversation"]["overlap_s"] == pytest.approx(
        1.0, abs=0.25
    )
    assert result["speakers"][1]["interruptions"] == 1 and result["speakers"][0]["interrupted"] == 1


def test_channels_on_a_mono_file_is_a_clear_error(engine, conversation, tmp_path):
    path = tmp_path / "mono.wav"
    sf.write(path, conversation.mono(), RATE)
    with pytest.raises(AudioError) as info:
        analyze_long(engine, str(path), SegmentOptions("vad"), speakers=SpeakerOptions("channels"))
    assert info.value.code == "mono" and "1 channel" in info.value.message and "speakers=auto" in info.value.message


@pytest.mark.parametrize("kind", ["rttm", "vtt", "srt", "json"])
def test_turns_from_a_file_are_the_segments(engine, conversation, tmp_path, kind):
    wav = tmp_path / "talk.wav"
    sf.write(wav, conversation.mono(), RATE)
    text = {
        "rttm": conversation.rttm(), "vtt": conversation.vtt(), "srt": conversation.srt(),
        "json": json.dumps(conversation.whisperx()),
    }[kind]  # fmt: skip
    turns = tmp_path / f"talk.{kind}"
    turns.write_text(text, encoding="utf-8")
    analysis = analyze(engine, str(wav), RequestOptions.from_fields({"turns": str(turns)}), outputs_dir=tmp_path / "out")
    segments = analysis.result["segments"]
    names = ("SPEAKER_00", "SPEAKER_01") if kind == "json" else NAMES
    who = dict(zip("AB", names))
    assert [(s["speaker"], s["start"], s["end"]) for s in segments] == [
        (who[w], pytest.approx(a, abs=2e-3), pytest.approx(b, abs=2e-3)) for w, a, b, _ in conversation.turns
    ]
    if kind != "rttm":  # RTTM carries no text
        assert [s["text"] for s in segments] == [t for *_, t in conversation.turns]
    assert analysis.result["diarization"]["mode"] == "turns" and len(analysis.result["speakers"]) == 2


def test_a_turns_file_past_the_recording_names_its_line(engine, conversation, tmp_path):
    wav = tmp_path / "talk.wav"
    sf.write(wav, conversation.mono()[: 5 * RATE], RATE)  # 5 s only: the later turns lie outside it
    turns = tmp_path / "talk.srt"
    turns.write_text(conversation.srt(), encoding="utf-8")
    with pytest.raises(TurnsError) as info:
        analyze(engine, str(wav), RequestOptions.from_fields({"turns": str(turns)}), outputs_dir=tmp_path / "out")
    assert "talk.srt line" in info.value.message and info.value.code == "bad_turns"
    assert not [p for p in (tmp_path / "out").iterdir()]  # nothing half-written


def test_speaker_options_and_their_combinations():
    assert RequestOptions.from_fields({"speakers": "3", "names": "a,b"}).speakers == SpeakerOptions("count", 3, ("a", "b"))
    assert RequestOptions.from_fields({"speakers": "auto"}).segment.mode == "vad"  # speakers imply segments
    assert RequestOptions.from_fields({"speakers": "auto", "segment": "window"}).segment.mode == "window"
    for fields, words in [
        ({"speakers": "channels", "segment": "window"}, "segment=vad"),
        ({"speakers": "auto", "granularity": "frame"}, "granularity=frame"),
        ({"speakers": "lots"}, "channels, auto, a number"),
        ({"speakers": "11"}, "from 1 to 10"),
        ({"names": "Ann,Bob"}, "names need speakers"),
        ({"speakers": "auto", "names": "Ann,,Bob"}, "not empty"),
        ({"speakers": "auto", "names": "Ann,Ann"}, "differ"),
    ]:
        with pytest.raises(OptionError, match=words):
            RequestOptions.from_fields(fields)


def test_the_real_campplus_graph_runs_the_diarization(engine, conversation, campplus_dir):
    """Random CAM++ weights cannot tell voices apart; the graph, the windows, the clustering into the
    number asked for and the naming run as they do with the real weights."""
    rec = analyze_long(engine, (RATE, conversation.mono()), SegmentOptions("vad"), speakers=SpeakerOptions("count", 2))
    segments = build_report(rec).to_json()["segments"]
    assert segments[0]["speaker"] == "S1" and {s["speaker"] for s in segments} <= {"S1", "S2"}
    assert rec.diarization["model"] == campplus_dir.name and rec.diarization["mode"] == "count"
    speech = sum(b - a for _, a, b, _ in conversation.turns)
    assert sum(s["end"] - s["start"] for s in segments) == pytest.approx(speech, abs=1.5)  # every turn is covered once


class VoicePrint:
    """A stand-in for a trained speaker model: a window's mean log spectrum (200 Hz - 4 kHz) less that
    of a third voice. It puts windows of one espeak voice close (cosine ~0.6) and of two voices far
    apart (~0.2), as trained CAM++ does with people; random CAM++ weights cannot, and the real ones
    cannot be downloaded here (the network itself is held to FunASR by tests/test_campplus.py)."""

    model_id = "voiceprint"

    def __init__(self):
        self.reference = np.mean([self._spectrum(say(t, "C")) for t in LINES["A"]], axis=0)

    @staticmethod
    def _spectrum(x: np.ndarray) -> np.ndarray:
        frames = np.lib.stride_tricks.sliding_window_view(x, 400)[::160]
        spectrum = np.abs(np.fft.rfft(frames * np.hanning(400), axis=1))[:, 5:100]
        loud = spectrum.sum(1) > 0.1 * spectrum.sum(1).max()
        v = np.log(spectrum[loud].mean(0) + 1e-6)
        return v - v.mean()

    def embed_batch(self, pieces):
        return np.stack([self._spectrum(x) - self.reference for x in pieces]).astype(np.float32)


def test_mono_diarization_tells_the_voices_apart(engine, conversation, monkeypatch):
    import conversation_audio

    monkeypatch.setitem(conversation_audio.VOICES, "C", ("en-gb", 55))
    monkeypatch.setattr(engine, "_speakers", VoicePrint())
    for speakers in (SpeakerOptions("auto", names=NAMES), SpeakerOptions("count", 2, NAMES)):
        rec = analyze_long(engine, (RATE, conversation.mono()), SegmentOptions("vad"), speakers=speakers)
        matches(build_report(rec).to_json()["segments"], conversation.turns)  # the agent speaks first: S1, named Agent
        assert rec.diarization == {"mode": speakers.mode, "speakers": list(NAMES), "model": "voiceprint"}


def test_rest_and_gradio_api_give_the_conversation(web, conversation, tmp_path):
    path = stereo_file(tmp_path / "call.wav", conversation)
    r = httpx.post(
        web.url + "/api/predict", files={"audio": ("call.wav", path.read_bytes())},
        data={"speakers": "channels", "names": "Agent,Customer"}, timeout=120,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["name"] for s in body["speakers"]] == list(NAMES) and body["conversation"]["num_speakers"] == 2
    assert {"turns.csv", "conversation.vtt", "conversation.srt", "conversation.png"} <= set(body["files"])
    srt = httpx.get(web.url + body["files"]["conversation.srt"]).text
    assert "Customer:" in srt and "-->" in srt
    bad = httpx.post(
        web.url + "/api/predict", files={"audio": ("call.wav", path.read_bytes()), "turns": ("t.srt", b"1\nnot a time\nhi\n")},
        timeout=60,
    )  # fmt: skip
    assert bad.status_code == 422 and bad.json()["code"] == "bad_turns" and "t.srt line 1" in bad.json()["error"]
    mono = httpx.post(
        web.url + "/api/predict", files={"audio": ("m.wav", _wav_bytes(conversation.mono()))}, data={"speakers": "channels"},
        timeout=60,
    )  # fmt: skip
    assert mono.status_code == 400 and mono.json()["code"] == "mono"
    from gradio_client import Client, handle_file

    result = Client(web.url + "/", verbose=False).predict(
        handle_file(str(path)), "vad", 0.5, 0.25, 0.3, 30.0, 10.0, 10.0, "channels", "Agent,Customer", None, api_name="/recording"
    )
    assert [s["speaker"] for s in result["segments"]] == ["Agent", "Customer"] * 3


def _wav_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_cli_predict_batch_and_embed_speaker(tiny_dir, campplus_dir, conversation, tmp_path):
    path = stereo_file(tmp_path / "call.wav", conversation)
    out = in_process("predict", str(path), "--model", str(tiny_dir), "--speakers", "channels", "--names", "Agent,Customer")
    assert out.returncode == 0, out.stderr
    assert "\n  Agent: " in out.stdout and "\n  Customer: " in out.stdout and "of the talk, 3 turns" in out.stdout
    mono = tmp_path / "talk.wav"
    sf.write(mono, conversation.mono(), RATE)
    (tmp_path / "talk.vtt").write_text(conversation.vtt(), encoding="utf-8")
    (tmp_path / "alone.wav").write_bytes(mono.read_bytes())  # no turns beside it: an error row
    batch = in_process(
        "batch",
        str(mono),
        str(tmp_path / "alone.wav"),
        "--model",
        str(tiny_dir),
        "--turns",
        "beside",
        "--out",
        str(tmp_path / "res"),
    )
    assert batch.returncode == 1, batch.stderr  # one file without turns
    rows = list(csv.DictReader(open(tmp_path / "res" / "results.csv", encoding="utf-8")))
    assert rows[0]["speakers"].startswith("Agent=") and "; Customer=" in rows[0]["speakers"] and not rows[0]["error"]
    assert "no turns file beside it" in rows[1]["error"] and "alone.rttm" in rows[1]["error"]
    emb = in_process("embed-speaker", str(mono), "--speaker-model", str(campplus_dir), "--json")
    record = json.loads(emb.stdout)
    assert emb.returncode == 0 and record["file"] == str(mono) and len(record["embedding"]) == 192
    assert np.isfinite(record["embedding"]).all() and np.linalg.norm(record["embedding"]) > 0


def test_a_corpus_rttm_gives_each_file_its_own_turns(tiny_dir, web, conversation, tmp_path):
    """One RTTM holding the turns of several recordings, as corpus references ship them: each file
    gets the lines of its file id (its name without the extension) in predict, batch and REST; a
    file with none is an error naming the ids present."""
    corpus = tmp_path / "corpus.rttm"
    corpus.write_text(conversation.rttm(NAMES, "dev00") + conversation.rttm(("Ann", "Bob"), "dev01"), encoding="utf-8")
    for stem in ("dev00", "dev01", "dev07"):
        sf.write(tmp_path / f"{stem}.wav", conversation.mono(), RATE)
    files = [str(tmp_path / f"{stem}.wav") for stem in ("dev00", "dev01")]
    out = in_process("predict", *files, "--model", str(tiny_dir), "--turns", str(corpus))
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.strip().split(str(tmp_path / "dev01.wav"))
    assert "\n  Agent: " in first and "\n  Customer: " in first and "Ann" not in first
    assert "\n  Ann: " in second and "\n  Bob: " in second and "Agent" not in second
    batch = in_process(
        "batch",
        *files,
        str(tmp_path / "dev07.wav"),
        "--model",
        str(tiny_dir),
        "--turns",
        str(corpus),
        "--out",
        str(tmp_path / "res"),
    )
    assert batch.returncode == 1, batch.stderr  # dev07 has no lines
    rows = {r["file"].rsplit("/", 1)[-1]: r for r in csv.DictReader(open(tmp_path / "res" / "results.csv", encoding="utf-8"))}
    assert rows["dev00.wav"]["speakers"].startswith("Agent=") and rows["dev01.wav"]["speakers"].startswith("Ann=")
    assert "no turns of the recording 'dev07'" in rows["dev07.wav"]["error"] and "'dev00', 'dev01'" in rows["dev07.wav"]["error"]
    vtt = tmp_path / "talk.vtt"
    vtt.write_text(conversation.vtt(), encoding="utf-8")
    one_for_all = in_process("batch", *files, "--model", str(tiny_dir), "--turns", str(vtt), "--out", str(tmp_path / "res2"))
    assert one_for_all.returncode == 2 and "must be an RTTM" in one_for_all.stderr and "--turns beside" in one_for_all.stderr
    r = httpx.post(
        web.url + "/api/predict",
        files={"audio": ("dev01.wav", (tmp_path / "dev01.wav").read_bytes()), "turns": ("corpus.rttm", corpus.read_bytes())},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    assert [s["name"] for s in r.json()["speakers"]] == ["Ann", "Bob"]
