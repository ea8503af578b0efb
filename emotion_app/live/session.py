"""One live take: audio in, windows due for the model out, hop results back in, in bounded memory.

`LiveSession.feed(samples, stretch=k, room=n)` resamples the client's audio to 16 kHz (a streaming
resampler, so chunk edges leave no seams), appends it to the take's WAV on disk (the take is never
held in memory) and to a ring buffer one window long, and returns a `Window` (a copy of the last
`window_s`) for each hop boundary passed, but at most one every `k` boundaries (the hub stretches
the hops when the engine is loaded, live/capacity.py) and at most `n` (the session's room in the
model's queue): the audio is always kept, only the meter reads less often. The caller has the model score each window and hands
the probabilities back, in order, to `record`, which smooths them causally and extends the
segments and the chart history. `end()` flushes the resampler, closes the WAV and returns the
tail's windows; `discard()` removes the take's folder.

Threads: a session is thread-safe and blocking. Each method holds the session's lock for its
whole (short) body and returns plain values, never a generator or a coroutine, so the lock is
never held across a `yield` or an `await`; and since a method may wait for the lock, write the
WAV or resample, none is ever called on an event loop (web/api/stream.py runs them in the hub's
threads; the page calls them from Gradio's). docs/live.md, "Threads and the event loop", has the
whole rule.

Memory per session: the ring (window_s at 16 kHz, 640 KB at most), the chart history (60 s of
hops) and the segments (one entry per change of the smoothed label).
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..audio.samples import MIN_SAMPLES, stream_resampler
from ..constants import SAMPLE_RATE
from ..results import label_of, rounded
from .options import LiveOptions, StreamFormat

CHART_SPAN_S = 60.0  # s of hops kept for the strip chart
TOUCH_EVERY_S = 60.0  # the spill folder's mtime is refreshed so the sweeper never takes it for stale

_ids = itertools.count(1)


@dataclass(frozen=True)
class Window:
    """The audio the model scores at one hop: (n,) float32 at 16 kHz ending at sample `end`."""

    index: int  # hop number, from 0
    end: int  # samples since the take's start
    samples: np.ndarray
    due: float  # time.perf_counter() when its last sample arrived
    hop_s: float = 0.0  # s since the window before it ended: the hop in force
    slowed: bool = False  # the hop was stretched past the one asked (the server is loaded)

    @property
    def t_start(self) -> float:
        return (self.end - len(self.samples)) / SAMPLE_RATE

    @property
    def t_end(self) -> float:
        return self.end / SAMPLE_RATE


class RingBuffer:
    """The last `capacity` samples of a stream, in one preallocated array: the sample written
    `i`-th (from 0) sits at `i % capacity`."""

    def __init__(self, capacity: int):
        self._buf = np.zeros(capacity, dtype=np.float32)
        self.written = 0  # samples ever written

    def write(self, x: np.ndarray) -> None:
        cap, n = len(self._buf), len(x)
        kept = x[-cap:]  # older samples would be overwritten anyway
        pos = (self.written + n - len(kept)) % cap
        first = min(len(kept), cap - pos)
        self._buf[pos : pos + first] = kept[:first]
        self._buf[: len(kept) - first] = kept[first:]
        self.written += n

    def latest(self, n: int) -> np.ndarray:
        """A copy of the last min(n, written, capacity) samples, oldest first."""
        cap = len(self._buf)
        n = min(n, self.written, cap)
        end = self.written % cap
        if n <= end:
            return self._buf[end - n : end].copy()
        return np.concatenate([self._buf[cap - (n - end) :], self._buf[:end]])


class CausalSmoother:
    """Smooths hop probability vectors looking back only (see options.py for the methods)."""

    def __init__(self, options: LiveOptions):
        self.options = options
        self._state: np.ndarray | None = None
        self._recent: deque[np.ndarray] = deque(maxlen=options.votes)

    def update(self, probs: np.ndarray) -> tuple[int, float, np.ndarray]:
        """(label index, its confidence, smoothed (V,) scores) after the hop `probs` (V,)."""
        probs = np.asarray(probs, dtype=np.float64)
        method = self.options.smoothing
        if method == "ewma":
            a = self.options.alpha
            self._state = probs if self._state is None else a * probs + (1 - a) * self._state
            k = int(self._state.argmax())
            return k, float(self._state[k]), self._state
        if method == "vote":
            self._recent.append(probs)
            recent = np.stack(self._recent)
            mean = recent.mean(0)
            counts = np.bincount(recent.argmax(1), minlength=len(probs))
            k = int(np.where(counts == counts.max(), mean, -1.0).argmax())  # ties: the higher mean
            return k, float(mean[k]), mean
        k = int(probs.argmax())
        return k, float(probs[k]), probs


@dataclass
class Run:
    """A run of hops with the same smoothed label: the take's segments so far."""

    start: float  # s
    end: float  # s
    emotion: str
    total: float  # sum of the hops' smoothed confidences
    hops: int = 1

    @property
    def confidence(self) -> float:
        """The mean smoothed confidence of the run's hops."""
        return self.total / self.hops

    def to_dict(self) -> dict:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "emotion": self.emotion,
            "confidence": round(self.confidence, 4),
        }


class LiveSession:
    """One take (see the module docstring). Thread-safe, blocking: call it from worker threads only.
    The page's stream and stop events may overlap, a WebSocket records one hop while it feeds the
    next audio, and the hub may discard a session another thread is feeding."""

    def __init__(
        self, options: LiveOptions, fmt: StreamFormat, labels, folder: Path, max_seconds: float, *, label_set=None, sentiment=None
    ):
        """`labels`: the model's; `label_set` (labelset.py): the hops' labels, renormalised over
        them; `sentiment` (sentiment.py): a sentiment block in every hop message."""
        import soundfile as sf

        self.id = next(_ids)
        self.options, self.format, self.model_labels = options, fmt, tuple(labels)
        self.label_set, self.sentiment = label_set, sentiment
        self.labels = label_set.keys if label_set is not None else self.model_labels
        self.folder = Path(folder)
        self.wav_path = self.folder / "take.wav"
        self.max_samples = int(max_seconds * SAMPLE_RATE)
        self.window_samples = int(round(options.window_s * SAMPLE_RATE))
        self.hop_samples = int(round(options.hop_s * SAMPLE_RATE))
        self._wav = sf.SoundFile(self.wav_path, "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16")
        self._resampler = stream_resampler(fmt.sample_rate)
        self._ring = RingBuffer(self.window_samples)
        self._lock = threading.Lock()
        self._smoother = CausalSmoother(options)
        self._windows = 0  # windows handed out
        self._last_end = 0  # end sample of the last window handed out
        self.hops = 0  # hops recorded
        self.history: deque[tuple[float, np.ndarray]] = deque(maxlen=int(CHART_SPAN_S / options.hop_s) + 2)
        self.segments: list[Run] = []
        self.latest: Hop | None = None  # the last hop
        self.limit_reached = False
        self.ended = False
        self.discarded = False
        self.started = time.monotonic()
        self.last_active = self.started
        self._touched = self.started

    @property
    def samples(self) -> int:
        """16 kHz samples received so far."""
        return self._ring.written

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE

    @property
    def unrecorded(self) -> int:
        """Windows handed out whose hop is not recorded yet: waiting for the model, in it, or scored."""
        return self._windows - self.hops

    # -- audio in, windows out ------------------------------------------------------------------
    def feed(self, samples: np.ndarray, *, stretch: int = 1, room: int | None = None) -> list[Window]:
        """Take (n,) float32 mono samples at the stream's rate; return the windows that fell due:
        one every `stretch` hop boundaries, at most `room` (None: no limit). Audio past the
        session's time limit is dropped (then `limit_reached` is set)."""
        with self._lock:
            if self.ended:
                return []
            self.last_active = time.monotonic()
            x = np.asarray(samples, dtype=np.float32)
            if self._resampler is not None:
                x = self._resampler.resample_chunk(x)
            x = np.clip(x, -1.0, 1.0)  # the WAV is 16-bit PCM; the model sees the same samples
            left = self.max_samples - self.samples
            if len(x) > left:
                x, self.limit_reached = x[: max(left, 0)], True
            self._touch()
            return self._append(x, stretch, room)

    def end(self) -> list[Window]:
        """No more audio: flush the resampler, close the WAV; return the windows that fell due, and
        the tail's window (when it is at least a quarter hop and 25 ms long)."""
        with self._lock:
            if self.ended:
                return []
            windows = []
            if self._resampler is not None:
                tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
                windows = self._append(np.clip(tail[: max(self.max_samples - self.samples, 0)], -1.0, 1.0))
            self.ended = True
            self._wav.close()
            rest = self.samples - self._last_end
            if rest >= max(MIN_SAMPLES, self.hop_samples // 4) and not self.discarded:
                windows.append(self._window(self.samples))
            return windows

    def _append(self, x: np.ndarray, stretch: int = 1, room: int | None = None) -> list[Window]:
        """Under the lock: write `x` piece by piece, up to each hop boundary, so every window is exact;
        a window is cut at a boundary `stretch` hops or more after the last one, and of those of one
        call the latest `room` are kept (the meter shows the newest audio it has room for)."""
        cut, done, last = [], 0, self._last_end
        while done < len(x):
            boundary = (self.samples // self.hop_samples + 1) * self.hop_samples
            piece = x[done : done + boundary - self.samples]
            self._wav.write(piece)
            self._ring.write(piece)
            done += len(piece)
            if self.samples == boundary and self.samples - last >= stretch * self.hop_samples:
                cut.append((self.samples, self._ring.latest(self.window_samples), time.perf_counter()))
                last = self.samples
                if room is not None and len(cut) > max(room, 0):
                    cut.pop(0)
        return [self._window(end, samples, due) for end, samples, due in cut]

    def _window(self, end: int, samples: np.ndarray | None = None, due: float | None = None) -> Window:
        """The window ending at sample `end` (its samples and due time taken now unless given)."""
        spacing = end - self._last_end
        samples = self._ring.latest(self.window_samples) if samples is None else samples
        due = time.perf_counter() if due is None else due
        window = Window(self._windows, end, samples, due, spacing / SAMPLE_RATE, spacing > self.hop_samples)
        self._windows += 1
        self._last_end = end
        return window

    def _touch(self) -> None:
        now = time.monotonic()
        if now - self._touched >= TOUCH_EVERY_S:
            self._touched = now
            try:
                os.utime(self.folder)
            except OSError:
                pass

    # -- results in -----------------------------------------------------------------------------
    def record(self, window: Window, probabilities: np.ndarray) -> dict:
        """The hop message for `window` scored as `probabilities` (V,); call in window order. A
        hop's label covers the audio that arrived since the hop before it."""
        if self.label_set is not None:
            probabilities = self.label_set.restrict(self.model_labels, probabilities)
        with self._lock:
            k, confidence, smoothed = self._smoother.update(probabilities)
            start = self.latest.t_end if self.latest else window.t_start
            last = self.segments[-1] if self.segments else None
            if last is not None and last.emotion == self.labels[k]:
                last.end, last.total, last.hops = window.t_end, last.total + confidence, last.hops + 1
            else:
                self.segments.append(Run(start, window.t_end, self.labels[k], confidence))
            self.history.append((window.t_end, np.asarray(smoothed, dtype=np.float32)))
            self.hops += 1
            self.latest = Hop.of(window, probabilities, (k, confidence, smoothed), self.labels)
            return self.latest.message(self.sentiment)

    def runs(self) -> list[Run]:
        """The segments so far (copies): runs of the smoothed label."""
        with self._lock:
            return [replace(run) for run in self.segments]

    def segment_list(self) -> list[dict]:
        """The segments so far as JSON: {start, end, emotion, confidence} (confidence: the mean smoothed
        confidence of the run's hops)."""
        return [run.to_dict() for run in self.runs()]

    def discard(self) -> None:
        """Close and delete the take (idempotent)."""
        with self._lock:
            self.ended = self.discarded = True
            if not self._wav.closed:
                self._wav.close()
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass(frozen=True)
class Hop:
    """One hop scored: the window's own reading and the meter's (smoothed) one."""

    index: int  # from 0
    t_start: float  # s of the take: the window scored
    t_end: float
    labels: tuple[str, ...]
    probabilities: np.ndarray  # (V,) the window alone
    smoothed: np.ndarray  # (V,) the meter
    emotion: str  # the window's top label
    confidence: float
    smoothed_emotion: str  # the meter's label
    smoothed_confidence: float
    latency_ms: float  # from the hop's last sample arriving to now
    hop_s: float = 0.0  # the hop in force: s since the hop before it
    slowed: bool = False  # stretched past the hop asked: the server is loaded

    @classmethod
    def of(cls, window: Window, probabilities: np.ndarray, smoothed: tuple[int, float, np.ndarray], labels) -> Hop:
        k_raw = int(np.argmax(probabilities))
        k, confidence, scores = smoothed
        latency = (time.perf_counter() - window.due) * 1000
        return cls(
            window.index, window.t_start, window.t_end, tuple(labels), np.asarray(probabilities), np.asarray(scores),
            labels[k_raw], float(probabilities[k_raw]), labels[k], float(confidence), latency, window.hop_s, window.slowed,
        )  # fmt: skip

    def message(self, sentiment=None) -> dict:
        """What a client gets per hop (the WebSocket's `hop` message); `sentiment` (sentiment.py):
        with a sentiment block for the window and for the meter."""
        label = label_of(self.smoothed_emotion)
        out = {
            "event": "hop",
            "hop": self.index,
            "t_start": round(self.t_start, 3),
            "t_end": round(self.t_end, 3),
            "emotion": self.emotion,
            "confidence": round(self.confidence, 4),
            "scores": rounded(self.probabilities, self.labels),
            "smoothed": {
                "emotion": self.smoothed_emotion,
                "label_zh": label.zh,
                "emoji": label.emoji,
                "confidence": round(self.smoothed_confidence, 4),
                "scores": rounded(self.smoothed, self.labels),
            },
            "latency_ms": round(self.latency_ms, 1),
            "hop_s": round(self.hop_s, 3),  # the hop in force; longer than asked while the server is loaded
            "slowed": self.slowed,
        }
        if sentiment is not None:
            out["sentiment"] = sentiment.of(dict(zip(self.labels, map(float, self.probabilities))))
            out["smoothed"]["sentiment"] = sentiment.of(dict(zip(self.labels, map(float, self.smoothed))))
        return out
