"""The live meter's core (emotion_app.live): settings, frames, the session's windows and smoothing,
the fair scheduler and the hub's limits. No server here: test_stream.py drives /api/stream."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from audio_files import speechlike

from emotion_app.errors import EmotionAppError
from emotion_app.fields import OptionError
from emotion_app.live import (
    FrameError,
    LiveBusyError,
    LiveHub,
    LiveOptions,
    LiveScheduler,
    LiveSession,
    StreamFormat,
    decode_frame,
    parse_settings,
)
from emotion_app.live.session import CausalSmoother, RingBuffer

LABELS = ("angry", "happy", "neutral")


@pytest.mark.parametrize("capacity", [1, 5, 8])
def test_ring_buffer_keeps_the_last_samples_whatever_the_write_sizes(capacity):
    ring, seq, done = RingBuffer(capacity), np.arange(40, dtype=np.float32), 0
    for n in [3, 1, 0, 9, 2, 7, 5, 13]:
        ring.write(seq[done : done + n])
        done += n
        for want in (1, capacity, capacity + 3):
            assert np.array_equal(ring.latest(want), seq[max(0, done - min(want, capacity)) : done])


@pytest.mark.parametrize(
    "settings, code",
    [
        ("not json", "bad_settings"),
        ("[1, 2]", "bad_settings"),
        (None, "bad_settings"),  # a binary message first
        ('{"format": "pcm_s16le"}', "bad_option"),  # no sample_rate
        ('{"sample_rate": 48000, "colour": "red"}', "bad_settings"),
        ('{"sample_rate": 4000}', "bad_rate"),
        ('{"sample_rate": 200000}', "bad_rate"),
        ('{"sample_rate": 16000, "format": "mp3"}', "bad_option"),
        ('{"sample_rate": 16000, "channels": 9}', "bad_option"),
        ('{"sample_rate": 16000, "window_s": 12}', "bad_option"),
        ('{"sample_rate": 16000, "window_s": 2, "hop_s": 3}', "bad_option"),
        ('{"sample_rate": 16000, "smoothing": "median"}', "bad_option"),
        ('{"sample_rate": 16000, "analysis": {"granularity": "word"}}', "bad_granularity"),
        ('{"sample_rate": 16000, "analysis": {"speed": 2}}', "bad_settings"),
    ],
)
def test_bad_settings_name_what_is_wrong(settings, code):
    with pytest.raises(EmotionAppError) as info:
        parse_settings(settings)
    assert info.value.code == code and info.value.message


def test_settings_parse_every_part():
    s = parse_settings(
        json.dumps({"sample_rate": "44100", "channels": 2, "format": "f32le", "window_s": 2, "hop_s": 0.25,
                    "smoothing": "vote", "votes": 5, "analysis": {"granularity": "frame", "method": "ewma"}, "lang": "zh"})
    )  # fmt: skip
    assert s.format == StreamFormat(44100, "f32le", 2) and s.lang == "zh"
    assert s.live == LiveOptions(2.0, 0.25, "vote", 0.5, 5)
    assert s.request.granularity == "frame" and s.request.analysis.smoothing.method == "ewma"


def test_frames_decode_to_mono_float_and_refuse_split_samples():
    fmt = StreamFormat(16000, "pcm_s16le", 2)
    stereo = np.array([[16384, -16384], [32767, 32767]], dtype="<i2")
    assert np.allclose(decode_frame(stereo.tobytes(), fmt), [0.0, 32767 / 32768])
    floats = np.array([0.25, -0.5], dtype="<f4")
    assert np.allclose(decode_frame(floats.tobytes(), StreamFormat(16000, "f32le")), [0.25, -0.5])
    for odd in (b"\x01", b"\x00" * 6):  # 1 byte; 6 bytes = 1.5 stereo s16 samples
        with pytest.raises(FrameError, match="not a whole number"):
            decode_frame(odd, fmt)
    with pytest.raises(FrameError, match="NaN"):
        decode_frame(np.array([np.nan], "<f4").tobytes(), StreamFormat(16000, "f32le"))


def make_session(tmp_path, rate=16000, max_seconds=60.0, **options) -> LiveSession:
    return LiveSession(LiveOptions(**options), StreamFormat(rate), LABELS, tmp_path, max_seconds)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_windows_fall_on_hop_boundaries_whatever_the_chunks(tmp_path, rate):
    session = make_session(tmp_path, rate, window_s=1.0, hop_s=0.25)
    x = speechlike(2.1, rate)
    rng, done, windows = np.random.default_rng(0), 0, []
    while done < len(x):
        n = int(rng.integers(1, rate // 3))
        windows += list(session.feed(x[done : done + n]))
        done += n
    windows += list(session.end())
    assert [w.index for w in windows] == list(range(9))
    assert [w.t_end for w in windows] == [0.25 * (k + 1) for k in range(8)] + [pytest.approx(2.1, abs=1e-3)]
    assert [len(w.samples) for w in windows[:5]] == [4000, 8000, 12000, 16000, 16000]
    assert windows[-1].t_start == pytest.approx(windows[-1].t_end - 1.0)
    take, take_rate = sf.read(session.wav_path, dtype="float32")
    assert take_rate == 16000 and len(take) == session.samples == pytest.approx(2.1 * 16000, abs=2)
    assert np.allclose(windows[3].samples, take[:16000], atol=1 / 32768)  # the ring holds what the take holds


def test_the_time_limit_cuts_the_take(tmp_path):
    session = make_session(tmp_path, max_seconds=1.0)
    windows = list(session.feed(speechlike(1.7)))
    assert session.limit_reached and session.samples == 16000 and len(windows) == 2
    assert list(session.feed(speechlike(0.5))) == [] and session.samples == 16000
    list(session.end())
    assert sf.info(str(session.wav_path)).frames == 16000


def test_discard_removes_the_take(tmp_path):
    folder = tmp_path / "take"
    folder.mkdir()
    session = LiveSession(LiveOptions(), StreamFormat(16000), LABELS, folder, 60)
    list(session.feed(speechlike(0.6)))
    session.discard()
    assert not folder.exists() and list(session.feed(speechlike(1.0))) == []


def test_ewma_and_vote_look_back_only():
    hops = np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    ewma = CausalSmoother(LiveOptions(alpha=0.5))
    state = hops[0]
    for k, p in enumerate(hops):
        state = p if k == 0 else 0.5 * p + 0.5 * state
        label, conf, scores = ewma.update(p)
        assert np.allclose(scores, state) and label == state.argmax() and conf == pytest.approx(state.max())
    vote = CausalSmoother(LiveOptions(smoothing="vote", votes=3))
    labels = [vote.update(p)[0] for p in hops]
    # hop 1: happy vs angry, one vote each, angry's mean 0.4 < happy's 0.5; hop 2: angry 2 votes of 3
    assert labels == [1, 1, 0, 0]
    assert [CausalSmoother(LiveOptions(smoothing="none")).update(p)[0] for p in hops] == [1, 0, 0, 2]


def test_record_gives_hop_messages_and_segments(tmp_path):
    session = make_session(tmp_path, window_s=1.0, hop_s=0.5, smoothing="none")
    windows = list(session.feed(speechlike(2.0)))
    readings = [[0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8]]
    messages = [session.record(w, np.array(p)) for w, p in zip(windows, readings)]
    assert [m["hop"] for m in messages] == [0, 1, 2, 3] and messages[1]["t_start"] == 0.0 and messages[3]["t_start"] == 1.0
    m = messages[2]
    assert m["emotion"] == "neutral" and m["confidence"] == 0.8 and set(m["scores"]) == set(LABELS)
    assert m["smoothed"]["emotion"] == "neutral" and m["latency_ms"] >= 0
    assert session.segment_list() == [
        {"start": 0.0, "end": 1.0, "emotion": "happy", "confidence": 0.75},
        {"start": 1.0, "end": 2.0, "emotion": "neutral", "confidence": 0.8},
    ]
    assert len(session.history) == 4 and session.hops == 4


class GatedEngine:
    """A stand-in engine that records each batch and can hold the model call."""

    labels = LABELS
    max_batch_samples = 60 * 16000

    def __init__(self):
        self.batches: list[list[float]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # set when a batch reached the model (and waits at the gate)

    def run_chunks(self, chunks, keep_frames=False):
        self.entered.set()
        self.gate.wait(10)
        self.batches.append([float(c[0]) for c in chunks])  # each window is tagged by its first sample
        return [SimpleNamespace(probabilities=np.array([c[0], 1.0, 0.0])) for c in chunks]


def test_scheduler_takes_one_window_per_session_per_call_oldest_first():
    engine = GatedEngine()
    scheduler = LiveScheduler(engine, max_batch=8)
    engine.gate.clear()
    first = scheduler.submit(0, np.full(100, -1.0, np.float32), time.perf_counter())
    assert engine.entered.wait(10)  # the worker holds the first window in the (gated) model
    fast = [scheduler.submit(1, np.full(100, 10.0 + k, np.float32), time.perf_counter()) for k in range(5)]
    slow = [scheduler.submit(2, np.full(100, 20.0 + k, np.float32), time.perf_counter()) for k in range(2)]
    engine.gate.set()
    for f in [first, *fast, *slow]:
        f.result(timeout=10)
    assert engine.batches == [[-1.0], [10.0, 20.0], [11.0, 21.0], [12.0], [13.0], [14.0]]
    assert fast[3].result()[0] == 13.0 and scheduler.stats.windows == 8


def test_scheduler_drops_cancelled_windows_and_reports_model_errors():
    engine = GatedEngine()
    scheduler = LiveScheduler(engine)
    engine.gate.clear()
    held = scheduler.submit(0, np.zeros(10, np.float32), 0.0)
    assert engine.entered.wait(10)  # held at the model
    dropped = scheduler.submit(1, np.ones(10, np.float32), 0.0)
    assert dropped.cancel()
    scheduler.drop(0)  # nothing queued for 0 any more; the window in the model still finishes
    engine.gate.set()
    assert held.result(timeout=10)[1] == 1.0 and engine.batches == [[0.0]]
    engine.run_chunks = lambda chunks, keep_frames=False: 1 / 0
    with pytest.raises(ZeroDivisionError):
        scheduler.submit(3, np.zeros(10, np.float32), 0.0).result(timeout=10)


def test_hub_refuses_past_its_limit_and_frees_slots(tmp_path):
    hub = LiveHub(GatedEngine(), tmp_path, max_sessions=2)
    a = hub.open(LiveOptions(), StreamFormat(16000))
    hub.open(LiveOptions(), StreamFormat(16000))
    with pytest.raises(LiveBusyError, match="maximum of 2 live sessions"):
        hub.open(LiveOptions(), StreamFormat(16000))
    hub.discard(a)
    hub.discard(a)  # idempotent
    c = hub.open(LiveOptions(), StreamFormat(16000), idle_expiry_s=0.0)
    assert hub.active == 2 and not a.folder.exists() and c.folder.parent == tmp_path
    time.sleep(0.01)
    hub.open(LiveOptions(), StreamFormat(16000))  # c was idle past its expiry: discarded to make room
    assert c.discarded and not c.folder.exists() and hub.active == 2


def test_hub_finish_writes_an_output_folder_and_removes_the_take(tmp_path, tiny_engine):
    hub = LiveHub(tiny_engine, tmp_path)
    session = hub.open(LiveOptions(window_s=1.0), StreamFormat(48000))
    for window in session.feed(speechlike(1.6, 48000)):
        session.record(window, hub.submit(session, window).result(timeout=30))
    from emotion_app.request import RequestOptions

    result = hub.finish(session, RequestOptions(granularity="frame")).response()
    assert result["file"] == "live.wav" and result["duration_s"] == pytest.approx(1.6, abs=0.01)
    assert result["granularity"] == "frame" and "processed_audio.wav" in result["files"]
    assert (tmp_path / result["output_dir"] / "result.json").is_file()
    assert not session.folder.exists() and hub.active == 0
    with pytest.raises(OptionError):
        LiveOptions.from_fields({"hop_s": "0.05"})


def test_stretched_hops_cut_fewer_windows_and_say_so(tmp_path):
    """stretch=k cuts a window every k hop boundaries, `room` caps the windows of one call; each
    window says the hop in force and whether it was slowed. The take keeps every sample."""
    session = make_session(tmp_path, 16000, window_s=1.0, hop_s=0.25)
    x = speechlike(3.0, 16000)
    first = session.feed(x[:8000], stretch=1)  # 0.5 s: two hops as asked
    stretched = session.feed(x[8000:24000], stretch=3)  # 1.0 s more: one window, 0.75 s after the last
    capped = session.feed(x[24000:40000], stretch=1, room=1)  # four boundaries, room for one: the latest
    after = session.feed(x[40000:], stretch=1)
    assert [(w.t_end, w.hop_s, w.slowed) for w in first] == [(0.25, 0.25, False), (0.5, 0.25, False)]
    assert [(w.t_end, w.hop_s, w.slowed) for w in stretched] == [(1.25, 0.75, True)]
    assert [(w.t_end, w.hop_s, w.slowed) for w in capped] == [(2.5, 1.25, True)]  # 1.75, 2.0 and 2.25 not cut
    assert [(w.t_end, w.hop_s, w.slowed) for w in after] == [(2.75, 0.25, False), (3.0, 0.25, False)]
    assert [w.index for w in first + stretched + capped + after] == list(range(4 + len(after)))
    session.end()
    assert session.samples == 48000 and len(sf.read(session.wav_path)[0]) == 48000
    message = session.record(capped[0], np.array([0.2, 0.5, 0.3]))
    assert message["hop_s"] == 1.25 and message["slowed"] is True and session.unrecorded == len(first + stretched + after)


def test_capacity_stretches_as_planned_then_when_windows_are_late_and_steps_back_down():
    from emotion_app.live import capacity as cap

    clock = [100.0]
    c = cap.Capacity(0.1, clock=lambda: clock[0])  # 0.1 s of model time per s of audio: one 3 s / 0.5 s session asks 0.6
    one = cap.Demand().plus(3.0, 0.5)
    two = one.plus(3.0, 0.5)  # 1.2: past the target
    assert c.update(one) == 1
    assert c.update(two) == 2 and c.load(two, 2) <= cap.TARGET_LOAD  # planned at once, from the start-up cost
    for _ in range(cap.COST_SAMPLES):
        c.observe(0.6, 3.0)  # the machine got busier: every batch costs twice as much now
    assert c.cost == pytest.approx(0.2) and c.measured == 0.1 and c.update(two) == 2  # nothing late: the plan stands
    clock[0] = 102.0
    c.observe(0.6, 3.0, late_due=101.0)  # a window waited past LATE_S: a pause, maybe
    assert c.update(two) == 2
    c.observe(0.6, 3.0)  # the next batch in time: it was a pause
    c.observe(0.6, 3.0, late_due=101.2)
    c.observe(0.6, 3.0, late_due=101.3)  # two late batches in a row: a backlog
    assert c.update(two) == 4  # the recent cost: 0.2 x 12 / 0.75 -> 4
    c.observe(0.6, 3.0, late_due=101.5)  # cut before the raise (at 102.0): their lateness was acted on
    c.observe(0.6, 3.0, late_due=101.6)
    assert c.update(two) == 4
    assert c.update(one) == 4  # the load fell, but a window was late less than QUIET_S ago
    clock[0] = 102.0 + cap.QUIET_S + 0.1
    assert c.update(one) == 2 and c.update(one) == 2  # straight down to x2: 0.2 x 6 at x1 is over RELAX_LOAD
    for _ in range(cap.COST_SAMPLES):
        c.observe(0.3, 3.0)  # quiet again
    assert c.update(one) == 1  # caught up
    assert c.update(two) == 2 and c.update(cap.Demand()) == 1  # everyone left: the next take starts at its own hops


def test_capacity_admits_while_every_meter_stays_bounded():
    from emotion_app.live.capacity import DELAY_BOUND_S, MAX_STRETCH, TARGET_LOAD, Capacity, Demand

    c = Capacity(0.1)
    at_full, admitted = c.sessions(3.0, 0.5)
    assert at_full == 1  # 0.6 of the model each at every hop
    assert admitted == 3  # burst: three 3 s windows due at once take 0.9 s <= 1 s; four would take 1.2 s
    demand = Demand()
    for _ in range(admitted):
        demand = demand.plus(3.0, 0.5)
        assert c.admits(demand)
    assert not c.admits(demand.plus(3.0, 0.5))
    assert c.load(demand, MAX_STRETCH) <= TARGET_LOAD and 0.1 * demand.burst_s <= DELAY_BOUND_S
    assert Capacity(10.0).sessions() == (0, 1)  # a machine too slow for one window still takes one caller


def test_the_hub_refuses_past_capacity_with_busy_and_counts_it(tmp_path):
    hub = LiveHub(GatedEngine(), tmp_path, cost=0.1)  # the window's cost given: the machine's speed is not the test
    sessions = [hub.open(LiveOptions(), StreamFormat(16000)) for _ in range(3)]
    with pytest.raises(LiveBusyError, match="at capacity"):
        hub.open(LiveOptions(), StreamFormat(16000))
    health = hub.health()
    assert health["sessions"] == 3 and health["capacity"] == {"every_hop": 1, "admitted": 3, "window_s": 3.0, "hop_s": 0.5}
    assert health["counters"] == {"refused": 1, "stretched": 2} and health["load"] == pytest.approx(1.8)
    assert health["stretch"] == 3  # 1.8 of the model asked: every third hop, planned as the takes opened
    light = hub.open(LiveOptions(window_s=1.0, hop_s=1.0), StreamFormat(16000))  # 1 s more of burst still fits
    assert hub.health()["sessions"] == 4
    hub.discard(sessions[0])
    hub.discard(light)
    assert hub.health()["sessions"] == 2 and hub.health()["load"] == pytest.approx(1.2)
    idle = hub.open(LiveOptions(), StreamFormat(16000), idle_expiry_s=0.0)  # a page's take whose tab went away
    time.sleep(0.01)
    hub.open(LiveOptions(), StreamFormat(16000))  # the idle take expires: its demand goes with it, so this one fits
    assert idle.discarded and hub.health()["sessions"] == 3 and hub.health()["load"] == pytest.approx(1.8)


def test_the_live_status_says_when_the_meter_is_slowed():
    from emotion_app.live.session import Hop, Window
    from emotion_app.web.ui.live_view import status_html

    probs = np.array([0.2, 0.5, 0.3])
    for slowed, hop_s in ((False, 0.5), (True, 1.5)):
        window = Window(3, 48000, np.zeros(48000, np.float32), time.perf_counter(), hop_s, slowed)
        hop = Hop.of(window, probs, (1, 0.5, probs), LABELS)
        en, zh = (status_html(3.0, 600, 4, hop, False, lang) for lang in ("en", "zh"))
        assert ('data-slowed="1"' in en) == slowed and ("the meter reads every 1.5 s" in en) == slowed
        assert ("仪表每 1.5 秒更新一次" in zh) == slowed


def test_a_fast_clients_queue_is_not_lateness():
    """A client faster than real time queues several windows; each waits for its own session's turn,
    not for the model, so the scheduler reports no late window and no one's hops stretch."""
    engine, reports = GatedEngine(), []
    real = engine.run_chunks

    def slow(chunks, keep_frames=False):
        time.sleep(0.2)  # a batch takes 0.2 s: the fast client's 4th window is 0.6 s behind its 1st
        return real(chunks, keep_frames)

    engine.run_chunks = slow
    scheduler = LiveScheduler(engine, on_batch=lambda seconds, audio_s, late_due: reports.append(late_due))
    engine.gate.clear()
    now = time.perf_counter()
    fast = [scheduler.submit(1, np.full(100, 10.0 + k, np.float32), now) for k in range(4)]
    assert engine.entered.wait(10)  # the worker holds the fast client's first window at the (gated) model
    steady = scheduler.submit(2, np.full(100, 20.0, np.float32), now)
    engine.gate.set()
    for future in [*fast, steady]:
        future.result(timeout=10)
    assert engine.batches == [[10.0], [11.0, 20.0], [12.0], [13.0]]
    assert reports == [None, None, None, None]  # by their due time alone, the last two would be late


def test_a_dropped_session_starts_its_features_afresh(tiny_engine):
    x = np.clip(speechlike(2.0, 16_000, seed=6), -1, 1).astype(np.float32)
    scheduler = LiveScheduler(tiny_engine)
    assert scheduler.slides
    for key in (1, 2):
        scheduler.submit(key, x[:16_000], time.perf_counter(), 16_000).result(timeout=30)
    scheduler.drop(1)  # a take ended: its next window (a new take's, in the hub) reuses nothing
    window = x[8_000:32_000]
    fresh, reused = (scheduler.submit(key, window, time.perf_counter(), 32_000).result(timeout=30) for key in (1, 2))
    full = tiny_engine.run_chunks([window])[0].probabilities
    np.testing.assert_allclose(fresh, full, rtol=0, atol=1e-6)
    assert 0 < np.abs(reused - full).max() <= 2e-3 and scheduler.stats.slid == 4
