"""Live emotion metering: a rolling score of the last few seconds while someone speaks.

    hub = LiveHub(engine, outputs_dir)                 # one per server
    session = hub.open(LiveOptions(window_s=3, hop_s=0.5), StreamFormat(48000))
    for window in session.feed(samples):               # (n,) float32 mono at 48 kHz
        probs = hub.submit(session, window).result()   # batched fairly with other sessions
        message = session.record(window, probs)        # smoothed causally, segments extended
    analysis = hub.finish(session)                     # the whole take, as an upload

No gradio, no web framework: the page (web/ui/tab_live.py) and the WebSocket (web/api/stream.py)
sit on top.
"""

from __future__ import annotations

from .hub import LiveBusyError, LiveHub
from .options import FrameError, LiveOptions, StreamFormat, StreamSettings, decode_frame, parse_settings
from .scheduler import LiveScheduler
from .session import LiveSession, Window

__all__ = [
    "FrameError",
    "LiveBusyError",
    "LiveHub",
    "LiveOptions",
    "LiveScheduler",
    "LiveSession",
    "StreamFormat",
    "StreamSettings",
    "Window",
    "decode_frame",
    "parse_settings",
]
