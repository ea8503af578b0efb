"""Slow down password guessing: failed logins are counted per client address.

A client gets `FREE_FAILURES` wrong tries; after that each further failure doubles the time it
must wait before its next try (1 s, 2 s, 4 s, ... up to `MAX_WAIT_S`), and tries made sooner are
answered 429 without checking the password. Failures are forgotten `WINDOW_S` after the last one,
and a correct login forgets them at once. Sustained guessing is held to about one try every
two minutes per address. Behind a reverse proxy every client has the proxy's address, so one
guesser slows everyone's logins; that is the price of not trusting forwarded headers.

Two ways in: `attempt()` checks and records in one step (the REST routes' HTTP Basic check, so
concurrent guesses cannot all slip through before the first failure is counted), and `begin()` /
`end()` around a login that another component checks (Gradio's `/login`); there a client may have
one login in flight at a time.

Every caller runs on the server's event loop (the guard and the routes' auth checks, all async),
so the records live on that one thread and need no lock: a thread lock taken on the loop could
stop the whole server (docs/live.md, "Threads and the event loop").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..i18n import t

FREE_FAILURES = 5
FIRST_WAIT_S = 1.0
MAX_WAIT_S = 120.0
WINDOW_S = 900.0  # failures older than this (since the last one) no longer count
MAX_CLIENTS = 10_000  # records kept; the stalest go first when a flood of addresses fills the table

# Gradio's login form says "incorrect credentials" for a 400 and nothing at all for any other
# answer, so a throttled login would fail in silence. The guard adds this script to the page (it
# sees the HTML on its way out): a 429 from /login shows the answer's message, which the guard wrote
# in the browser's language (Accept-Language), where the form is.
LOGIN_SCRIPT = """<script>(() => {
  const fetch0 = window.fetch;
  window.fetch = async (...args) => {
    const answer = await fetch0(...args);
    try {
      const url = new URL(String(args[0] && args[0].url || args[0]), location.href);
      if (answer.status === 429 && /\\/login\\/?$/.test(url.pathname)) {
        const body = await answer.clone().json();
        let box = document.getElementById("ea-login-wait");
        if (!box) {
          box = document.createElement("p");
          box.id = "ea-login-wait";
          box.setAttribute("role", "alert");
          box.style.cssText = "position:fixed;top:16px;left:50%;transform:translateX(-50%);z-index:1000;" +
            "margin:0;padding:10px 16px;border-radius:8px;background:#fef2f2;color:#991b1b;font:600 15px sans-serif";
          document.body.appendChild(box);
        }
        box.textContent = body.error;
      }
    } catch (e) {}
    return answer;
  };
})();</script>"""


@dataclass
class _Record:
    failures: int = 0
    last_failure: float = 0.0
    blocked_until: float = 0.0
    in_flight: bool = False


class LoginThrottle:
    """Per-client failure counts with exponential back-off; for one thread (the event loop)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._records: dict[str, _Record] = {}

    def attempt(self, client: str, check: Callable[[], bool]) -> tuple[bool, float]:
        """Run `check()` (does the password match?) unless `client` must wait.

        Returns (True, 0) for a match, (False, 0) for a counted failure, (False, seconds) when the
        client has to wait that long and nothing was checked."""
        wait = self._wait(client, self._clock())
        if wait:
            return False, wait
        ok = check()
        self._record(client, ok)
        return ok, 0.0

    def begin(self, client: str) -> float:
        """Before a login checked elsewhere: 0 to go ahead (then call `end`), else seconds to wait."""
        record = self._records.get(client)
        if record is not None and record.in_flight:
            return FIRST_WAIT_S  # one login at a time per client
        wait = self._wait(client, self._clock())
        if not wait:
            self._records.setdefault(client, _Record()).in_flight = True
        return wait

    def end(self, client: str, ok: bool | None) -> None:
        """After the login started by `begin` was answered: True (logged in), False (wrong
        credentials) or None (neither, e.g. the request was refused before the check)."""
        record = self._records.get(client)
        if record is not None:
            record.in_flight = False
        if ok is not None:
            self._record(client, ok)

    def _wait(self, client: str, now: float) -> float:
        record = self._records.get(client)
        if record is None or record.blocked_until <= now:
            return 0.0
        return record.blocked_until - now

    def _record(self, client: str, ok: bool) -> None:
        record = self._records.get(client)
        if ok:
            if record is not None and not record.in_flight:
                del self._records[client]
            elif record is not None:
                record.failures = 0
            return
        now = self._clock()
        if record is None:
            self._prune(now)
            record = self._records[client] = _Record()
        if now - record.last_failure > WINDOW_S:
            record.failures = 0
        record.failures += 1
        record.last_failure = now
        if record.failures >= FREE_FAILURES:
            doublings = min(record.failures - FREE_FAILURES, 30)  # 2**30 s is far past MAX_WAIT_S already
            record.blocked_until = now + min(MAX_WAIT_S, FIRST_WAIT_S * 2**doublings)

    def _prune(self, now: float) -> None:
        if len(self._records) < MAX_CLIENTS:
            return
        for client, record in list(self._records.items()):
            if now - record.last_failure > WINDOW_S and not record.in_flight:
                del self._records[client]
        while len(self._records) >= MAX_CLIENTS:
            stalest = min(self._records, key=lambda c: self._records[c].last_failure)
            del self._records[stalest]


def retry_message(wait: float, lang: str = "en") -> tuple[int, str]:
    """(whole seconds for Retry-After, the error message in `lang`) for a client that must wait `wait` s."""
    seconds = max(1, math.ceil(wait))
    return seconds, t("login_wait", lang, seconds=seconds)
