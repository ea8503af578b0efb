"""The soak's short form (bench/soak.py, an hour in docs/benchmarks.md): 20 s of mixed load on one
server, in a process of its own: REST clips at both granularities, long recordings, stereo
conversations, MCP calls and live takes over the WebSocket at once. The server must hold: RSS
after the warm-up grows at most 10 %, its open files and temp files come back to the baseline, no
5xx, every kind answered, and the outputs within their cap once the sweeper has run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from soak import Server, soak  # noqa: E402

pytestmark = pytest.mark.long  # started first in its worker (tests/workers.py)


def test_mixed_load_holds_memory_files_and_answers(tmp_path, tiny_dir):
    server = Server(tmp_path / "server", str(tiny_dir), cap_mb=2.0, sweep_s=3.0)
    try:
        figures = soak(server, seconds=20.0, clients=2, warmup=0.4, long_s=20.0, sample_s=1.0)
    finally:
        server.close()
    report = figures.table() + "\n" + (tmp_path / "server" / "server.log").read_text()[-3000:]
    assert figures.problems() == [], report
    kinds = ("clip 200", "frames 200", "recording 200", "conversation 200", "mcp 200", "live result")
    assert all(figures.statuses[k] >= 1 for k in kinds), report  # each once before the load, then mixed
    assert sum(figures.statuses.values()) >= len(kinds) + 10, report
    assert len(figures.samples) >= 10 and figures.rss_warm_mb > 0
