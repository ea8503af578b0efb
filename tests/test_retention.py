"""Retention: output folders deleted by age and by size (oldest first), temp folders, nothing else touched."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import free_port

from emotion_app.outputs import new_temp_folder
from emotion_app.retention import Sweeper, output_folders, remove_temp_folders, sweep

NOW = 1_800_000_000.0  # a fixed "now", s since the epoch
HOUR = 3600.0


def make(root, name: str, age_h: float, size: int = 1000, now: float = NOW):
    """A folder `name` in `root` holding `size` bytes, written `age_h` hours before `now`."""
    folder = root / name
    (folder / "files").mkdir(parents=True)
    (folder / "result.json").write_bytes(b"x" * (size // 2))
    (folder / "files" / "nested.bin").write_bytes(b"y" * (size - size // 2))
    t = now - age_h * HOUR
    os.utime(folder, (t, t))
    return folder


def names(root) -> set[str]:
    return {p.name for p in root.iterdir()}


@pytest.mark.parametrize("keep_hours, expected", [(24, {"d"}), (1, set()), (100, {"a", "b", "c", "d"}), (None, None), (0, None)])
def test_sweep_by_age(tmp_path, keep_hours, expected):
    ages = {"a": 72, "b": 30, "c": 25, "d": 2}
    for key, age in ages.items():
        make(tmp_path, f"outputs_20260101_00000{ord(key) - 96}", age)
    report = sweep(tmp_path, keep_hours, None, NOW)
    kept = {chr(96 + int(n[-1])) for n in names(tmp_path)}
    assert kept == (expected if expected is not None else set(ages))  # None or 0: no age limit
    assert report.kept == len(kept) and len(report.removed) == 4 - len(kept)
    assert report.removed == sorted(report.removed, key=lambda n: -ages[chr(96 + int(n[-1]))])  # oldest first


def test_sweep_by_size_deletes_oldest_first(tmp_path):
    for i, age in enumerate([5, 1, 9, 3, 7]):  # names do not follow age: the times decide
        make(tmp_path, f"outputs_20260101_12000{i}", age, size=1000)
    assert sum(f.size for f in output_folders(tmp_path)) == 5000
    report = sweep(tmp_path, None, 2500, NOW)
    assert report.removed == ["outputs_20260101_120002", "outputs_20260101_120004", "outputs_20260101_120000"]
    assert names(tmp_path) == {"outputs_20260101_120001", "outputs_20260101_120003"}
    assert report.freed_bytes == 3000 and report.kept_bytes == 2000
    assert sweep(tmp_path, None, 2000, NOW).removed == []  # at the cap is within it


def test_age_and_size_together(tmp_path):
    make(tmp_path, "outputs_20260101_000000", 48, size=100)
    make(tmp_path, "outputs_20260102_000000", 10, size=4000)
    make(tmp_path, "outputs_20260103_000000", 1, size=4000)
    report = sweep(tmp_path, 24, 5000, NOW)
    assert report.removed == ["outputs_20260101_000000", "outputs_20260102_000000"]
    assert names(tmp_path) == {"outputs_20260103_000000"}


def test_temp_folders_all_at_start_old_ones_while_running(tmp_path):
    make(tmp_path, ".tmp-fresh", 0.1)
    make(tmp_path, ".tmp-stale", 2)
    sweep(tmp_path, 24, None, NOW)  # while running: a fresh one may be a request's work in progress
    assert names(tmp_path) == {".tmp-fresh"}
    assert remove_temp_folders(tmp_path, now=NOW) == [".tmp-fresh"]  # at start: all of them
    assert names(tmp_path) == set()


def test_a_starting_server_leaves_the_temp_folders_of_live_writers(tmp_path):
    """Servers sharing one outputs folder (docs/scale.md): a temp folder's name says whose it is."""
    host = socket.gethostname()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        folders = {
            "live": f".tmp-{child.pid}@{host}~a1",
            "dead": f".tmp-{int(dead.stdout)}@{host}~b2",
            "other host": f".tmp-{child.pid}@elsewhere.example~c3",
            "old name": ".tmp-d4",
        }
        for name in folders.values():
            make(tmp_path, name, 0.1)
        assert sorted(remove_temp_folders(tmp_path, now=NOW)) == sorted([folders["dead"], folders["old name"]])
        assert names(tmp_path) == {folders["live"], folders["other host"]}
        assert remove_temp_folders(tmp_path, older_than_s=3600, now=NOW + 7200) == [folders["other host"]]  # by age
        assert names(tmp_path) == {folders["live"]}  # its writer runs: never removed
    finally:
        child.kill()
        child.wait()
    assert new_temp_folder(tmp_path).name.startswith(f".tmp-{os.getpid()}@{host}~")


def test_nothing_else_is_touched(tmp_path):
    outputs, outside = tmp_path / "outputs", tmp_path / "outside"
    outputs.mkdir()
    target = make(outside, "outputs_20200101_000000", 1000)  # old, but outside the outputs folder
    (outputs / "outputs_20200101_000000").symlink_to(target, target_is_directory=True)  # a symlinked output folder
    (outputs / ".tmp-link").symlink_to(target, target_is_directory=True)
    make(outputs, "notes", 1000)
    make(outputs, "outputs_2020", 1000)  # not an output folder's name
    (outputs / "outputs_20200101_000001").write_text("a file, not a folder")
    (outputs / ".secret").write_text("k" * 64)
    before = names(outputs)
    report = sweep(outputs, 1, 1, NOW)
    assert remove_temp_folders(outputs, now=NOW) == []
    assert report.removed == [] and names(outputs) == before
    assert (target / "result.json").is_file() and (target / "files" / "nested.bin").is_file()


def test_sweeper_thread_sweeps_until_stopped(tmp_path):
    make(tmp_path, "outputs_20260101_000000", 48, now=time.time())
    sweeper = Sweeper(tmp_path, keep_hours=24, max_bytes=None, interval_s=0.05)
    sweeper.start()
    thread = sweeper._thread
    try:
        deadline = time.time() + 5
        while names(tmp_path) and time.time() < deadline:
            time.sleep(0.02)
        assert names(tmp_path) == set()  # the first pass, at start
        make(tmp_path, "outputs_20260102_000000", 30, now=time.time())
        deadline = time.time() + 5
        while names(tmp_path) and time.time() < deadline:
            time.sleep(0.02)
        assert names(tmp_path) == set()  # a later pass
    finally:
        sweeper.stop()
    assert not thread.is_alive()
    make(tmp_path, "outputs_20260103_000000", 30, now=time.time())
    time.sleep(0.2)
    assert names(tmp_path) == {"outputs_20260103_000000"}  # stopped: no more passes


def test_server_cleans_at_start_sweeps_while_running_and_stops_on_close(tmp_path, tiny_dir):
    from emotion_app import Engine
    from emotion_app.web.server import AppSettings, cache_schedule, launch

    outputs = tmp_path / "outputs"
    now = time.time()
    make(outputs, ".tmp-killed", 0.01, now=now)  # left by a killed process, however recent
    make(outputs, "outputs_20200101_000000", 30, now=now)
    make(outputs, "outputs_20990101_000000", 1, now=now)

    def sweepers() -> int:
        return sum(t.name == "emotion-app-sweeper" for t in threading.enumerate())

    running = sweepers()
    settings = AppSettings(port=free_port(), outputs_dir=outputs, keep_hours=24, sweep_interval_s=0.1)
    served = launch(Engine(model=str(tiny_dir)), settings, block=False)
    try:
        assert ".tmp-killed" not in names(outputs) and (outputs / ".secret").is_file()
        assert served.demo.delete_cache == cache_schedule(24) == (3600, 86400)  # Gradio's cache: uploads and page copies
        assert sweepers() == running + 1
        make(outputs, ".tmp-stale", 2, now=time.time())
        deadline = time.time() + 5
        while {"outputs_20200101_000000", ".tmp-stale"} & names(outputs) and time.time() < deadline:
            time.sleep(0.05)
        assert names(outputs) == {".secret", "outputs_20990101_000000"}
    finally:
        served.close()
    assert sweepers() == running


def test_a_running_requests_temp_folder_is_never_swept(tmp_path):
    """A long recording can model for more than TMP_MAX_AGE_S: its folder stays while it runs."""
    import os
    import time

    from emotion_app.outputs import new_temp_folder
    from emotion_app.retention import TMP_MAX_AGE_S, remove_temp_folders

    running = new_temp_folder(tmp_path)
    stale = tmp_path / ".tmp-left-by-a-killed-process"
    stale.mkdir()
    old = time.time() - 2 * TMP_MAX_AGE_S
    for path in (running, stale):
        os.utime(path, (old, old))
    assert remove_temp_folders(tmp_path, TMP_MAX_AGE_S) == [stale.name]
    assert running.is_dir() and not stale.exists()


def test_under_the_free_space_floor_the_oldest_go_until_it_is_back(tmp_path, monkeypatch):
    from emotion_app import retention

    for i, age in enumerate([5, 1, 9, 3]):
        make(tmp_path, f"outputs_20260101_13000{i}", age, size=1000)
    free = {"bytes": 500}  # the disk: 500 bytes free, each folder deleted gives its 1000 back
    monkeypatch.setattr(retention, "free_bytes", lambda path: free["bytes"] + 1000 * (4 - len(output_folders(tmp_path))))
    report = sweep(tmp_path, None, None, NOW, min_free_bytes=2000)
    assert report.removed == ["outputs_20260101_130002", "outputs_20260101_130000"] and report.low_disk  # oldest first; two do
    assert sweep(tmp_path, None, None, NOW, min_free_bytes=2000).removed == []
    assert sweep(tmp_path, None, None, NOW, min_free_bytes=None).removed == []
