"""What the live meter can carry on this machine, in this mode, and how it degrades past that.

The model's cost is measured, not guessed: `measure_cost` times a batch of windows at start-up
(`Capacity.measured`, what admission reads), and every batch the scheduler runs updates the recent
cost (`Capacity.cost`: the median of the last `COST_SAMPLES` batches, so one batch slowed by a
pause does not stretch every meter), where uploads that share the engine or a busier machine show
up. The unit is seconds of model time per second of window audio scored, so sessions with other
window lengths add up.

Each session asks for `window_s / hop_s` seconds of audio to be scored per second (its demand).
While the sessions' demand times the cost stays under `TARGET_LOAD`, every hop is scored as asked.
Past it the hops **stretch** for every session alike, by a whole factor k (a 0.5 s hop becomes 1 s,
1.5 s, ...): at once when a take opens, the smallest factor that brings the load under the target
at the start-up cost; and further when windows of two batches in a row wait for the model longer
than `LATE_S` (the machine got busier, an upload holds the engine): one more at least. The meter
reads less often instead of falling behind the voice. When nothing was late for `QUIET_S` and the
load at the smaller factor stays under `RELAX_LOAD` (a margin, so that it does not flap), the factor
steps down and the meter catches up.

A new take is admitted only while the sessions, the new one included, fit (at the cost measured at
start-up: what the machine carries in this mode, not a passing slowdown) at the largest stretch
(`MAX_STRETCH`) and one window of each, all due at the same moment, is scored within
`DELAY_BOUND_S`: past that no stretch keeps the delay bounded, so the take is refused as busy
and the others keep their meter. The first take is always admitted (it delays no one else; on a
machine too slow for even one window in the bound its meter reads at the largest stretch). The
count `--max-live-sessions` stays as an upper limit.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..constants import SAMPLE_RATE

TARGET_LOAD = 0.75  # the model's busy share the stretch aims for: headroom for uploads and jitter
RELAX_LOAD = 0.6  # the stretch steps down only when the load at the smaller factor stays under this
MAX_STRETCH = 4  # hops stretch to at most 4x what the session asked (0.5 s -> 2 s)
DELAY_BOUND_S = 1.0  # s: one window of every session, due together, scored within this
COST_SAMPLES = 15  # batches whose median cost is the cost
LATE_S = 0.5  # s a window may wait for the model before the meter counts as falling behind
LATE_BATCHES = 2  # batches in a row with such a window before the hops stretch (one alone is a passing pause)
QUIET_S = 5.0  # s without a late window before the stretch steps down
EPS = 1e-9  # rounding room in the comparisons, so that admits() and sessions() agree at the bounds
REFERENCE_WINDOW = (3.0, 0.5)  # s: the default window and hop, for the capacity reported in /api/health


@dataclass(frozen=True)
class Demand:
    """What a set of sessions asks of the model: audio seconds per wall second at stretch 1, and the
    audio seconds of one window of each (their worst burst)."""

    rate: float = 0.0  # sum of window_s / hop_s
    burst_s: float = 0.0  # sum of window_s
    sessions: int = 0

    def plus(self, window_s: float, hop_s: float) -> Demand:
        return Demand(self.rate + window_s / hop_s, self.burst_s + window_s, self.sessions + 1)


def demand_of(options) -> Demand:
    """The demand of sessions with these LiveOptions."""
    total = Demand()
    for o in options:
        total = total.plus(o.window_s, o.hop_s)
    return total


def measure_cost(
    engine, window_s: float = REFERENCE_WINDOW[0], hop_s: float = REFERENCE_WINDOW[1], batch: int = 2, repeats: int = 3
) -> float:
    """Seconds of model time per second of window audio, batched as the scheduler batches: a warm-up
    batch, then the fastest of `repeats` batches of `batch` windows of quiet noise (the fastest: what
    the engine can do; a pause of the machine during one run is not its capacity). On an engine that
    slides (model/sliding.py) each batch is the next hop of `batch` streams, as a take's windows are
    scored: the new hop's conv features and the whole window's transformer."""
    from ..model.sliding import FeatureCache, StreamWindow

    rng = np.random.default_rng(0)
    n, hop = int(window_s * SAMPLE_RATE), int(hop_s * SAMPLE_RATE)
    streams = [(0.01 * rng.standard_normal(n + repeats * hop)).astype(np.float32) for _ in range(batch)]
    slides = bool(getattr(engine, "slides", False))
    caches = [FeatureCache() for _ in streams]

    def run(end: int) -> None:
        if slides:
            engine.run_windows([StreamWindow(s[end - n : end], end, c) for s, c in zip(streams, caches)])
        else:
            engine.run_chunks([s[end - n : end] for s in streams])

    if slides:
        run(n)  # warm-up: every frame of the first windows
    else:
        engine.run_chunks([streams[0][:n]])  # warm-up
    best = math.inf
    for k in range(1, repeats + 1):
        t0 = time.perf_counter()
        run(n + k * hop)
        best = min(best, time.perf_counter() - t0)
    return max(best, 1e-6) / (batch * window_s)


class Capacity:
    """The measured cost and what follows from it: the stretch in force and admission (see the
    module docstring). Plain numbers, written under the hub's lock and read anywhere without a
    lock: a float or int read is atomic."""

    def __init__(self, cost: float, clock=time.perf_counter):
        """`cost`: measured at start-up (measure_cost); `clock`: the time the lateness is told in."""
        self.clock = clock
        self.measured = cost  # s of model time per s of window audio, at start-up: what admission reads
        self.cost = cost  # the same, from the last batches: what the stretch reads
        self.stretch = 1  # the factor in force
        self._samples: deque[float] = deque([cost], maxlen=COST_SAMPLES)
        self._late = 0  # batches with a window cut under the stretch in force that waited past LATE_S
        self._late_at = -math.inf  # time.perf_counter() of the last late window
        self._raised_at = -math.inf  # when the stretch last went up

    def observe(self, seconds: float, audio_s: float, late_due: float | None = None) -> None:
        """A batch of `audio_s` seconds of windows took `seconds` in the model (the lock's wait included:
        an upload holding the engine makes the meter's share smaller, and that is real); `late_due`:
        when the latest of its windows that waited past LATE_S became due (None: none did)."""
        if audio_s > 0:
            self._samples.append(seconds / audio_s)
            self.cost = statistics.median(self._samples)
        if late_due is None:
            self._late = 0  # in time again: the late batches must come one after another
        else:
            self._late_at = self.clock()
            self._late += late_due > self._raised_at  # windows cut before the last raise do not count

    @property
    def backlog(self) -> bool:
        """Whether windows were late in LATE_BATCHES batches in a row since the stretch last went up."""
        return self._late >= LATE_BATCHES

    def load(self, demand: Demand, stretch: int = 1, cost: float | None = None) -> float:
        """The model's busy share if `demand` is scored with hops stretched by `stretch` (at the
        recent cost, or `cost`)."""
        return (self.cost if cost is None else cost) * demand.rate / stretch

    def update(self, demand: Demand) -> int:
        """Set and return the stretch for `demand`. At once, the smallest factor that keeps the load
        under TARGET_LOAD at the start-up cost (what the sessions ask is known when they open). It goes
        further up when windows of LATE_BATCHES batches in a row waited past LATE_S (one slow batch is
        a pause, two are a backlog): to the smallest factor under TARGET_LOAD at the recent cost, and by
        one at least (an upload that holds the engine makes the meter late at any load). When nothing
        was late for QUIET_S it steps down to the smallest factor that keeps the load under RELAX_LOAD
        at the recent cost and at the start-up one; with no session left, to 1."""
        now = self.clock()
        if demand.sessions == 0:  # nobody left: the next take starts at its own hops
            self.stretch, self._late = 1, 0
            return 1
        planned = self._factor(self.load(demand, cost=self.measured))
        if self.backlog:
            self._late = 0
            raised = min(MAX_STRETCH, max(planned, self._factor(self.load(demand)), self.stretch + 1))
        else:
            raised = planned
        if raised > self.stretch:
            self.stretch, self._raised_at = raised, now
        elif self.stretch > planned and now - self._late_at > QUIET_S:
            # down to the smallest factor that keeps the load under RELAX_LOAD at both costs
            fits = [k for k in range(planned, self.stretch) if self._relaxed(demand, k)]
            self.stretch = fits[0] if fits else self.stretch
        return self.stretch

    def _relaxed(self, demand: Demand, stretch: int) -> bool:
        return max(self.load(demand, stretch), self.load(demand, stretch, self.measured)) <= RELAX_LOAD + EPS

    @staticmethod
    def _factor(load: float) -> int:
        """The smallest whole stretch that brings `load` under TARGET_LOAD, at most MAX_STRETCH."""
        return min(MAX_STRETCH, max(1, math.ceil(load / TARGET_LOAD - EPS)))

    def admits(self, demand: Demand) -> bool:
        """Whether sessions asking `demand` (a new one included) keep their delay bounded, at the cost
        measured at start-up: what this machine can carry in this mode, not a passing slowdown."""
        at_most = self.load(demand, MAX_STRETCH, self.measured) <= TARGET_LOAD + EPS
        return at_most and self.measured * demand.burst_s <= DELAY_BOUND_S + EPS

    def sessions(self, window_s: float = REFERENCE_WINDOW[0], hop_s: float = REFERENCE_WINDOW[1]) -> tuple[int, int]:
        """(sessions scored at every hop, sessions admitted) of one window and hop."""
        one = Demand().plus(window_s, hop_s)
        per_load = max(self.load(one, cost=self.measured), 1e-12)
        admitted = min(TARGET_LOAD * MAX_STRETCH / per_load, DELAY_BOUND_S / max(self.measured * one.burst_s, 1e-12))
        return int(TARGET_LOAD / per_load + EPS), max(1, int(admitted + EPS))
