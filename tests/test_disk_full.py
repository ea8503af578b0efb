"""A disk that fills: a server whose outputs folder is a 4 MB filesystem of its own, filled for real
(the kernel answers ENOSPC). A result that cannot be written is a clear `disk_full` answer (507,
Retry-After) with no half-written folder; the server keeps serving and recovers once space is
freed; when the free space falls under the floor the sweeper deletes the oldest results at once.

The filesystem is a tmpfs mounted in a mount namespace of the server's own (`unshare --user
--map-root-user --mount`: no root needed where user namespaces are allowed); the test reaches it
through /proc/<server>/root, as the server's processes see it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from audio_files import speechlike
from conftest import free_port
from test_stream import wait_for

SIZE = "4m"
FLOOR_MB = 1.0
SERVER = r"""
import logging, sys
from pathlib import Path
from emotion_app import Engine
from emotion_app.web.server import AppSettings, launch
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
model, outputs, port, floor = sys.argv[1:5]
settings = AppSettings(port=int(port), outputs_dir=Path(outputs), min_free_disk_mb=float(floor), disk_check_s=0.1, keep_hours=0)
launch(Engine(model=model), settings)
"""
MOUNT = 'mount -t tmpfs -o size={size} tmpfs "$0" && exec "$@"'


def namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt || exit 1"]
    return subprocess.run(probe, capture_output=True, timeout=20).returncode == 0


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory, tiny_dir):
    """The server on 127.0.0.1 with its outputs on a 4 MB tmpfs, a 1 MB free-space floor checked every 0.1 s."""
    # CI's machine allows them, as this one does: a machine that does not is a failure to look at, never a skip
    assert namespaces_work(), "no user and mount namespaces here (unshare -rm): the small filesystem cannot be made"
    root = tmp_path_factory.mktemp("small_disk")
    outputs, log = root / "outputs", root / "server.log"
    outputs.mkdir()
    port = free_port()
    argv = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", MOUNT.format(size=SIZE), str(outputs)]
    argv += [sys.executable, "-c", SERVER, str(tiny_dir), str(outputs), str(port), str(FLOOR_MB)]
    with open(log, "wb") as err:
        server = subprocess.Popen(argv, stdout=err, stderr=subprocess.STDOUT)  # unshare and sh exec: the pid is Python's
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return server.poll() is None and httpx.get(f"{url}/api/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_for(lambda: up() or server.poll() is not None, 120) and server.poll() is None, log.read_text()
        seen = Path(f"/proc/{server.pid}/root") / str(outputs).lstrip("/")  # the tmpfs, as the server sees it
        assert os.statvfs(seen).f_blocks * os.statvfs(seen).f_frsize == 4 * 2**20
        yield type("Disk", (), {"url": url, "outputs": seen, "log": log})
    finally:
        server.terminate()
        server.wait(30)


def post(url: str, data: bytes, **fields) -> httpx.Response:
    return httpx.post(f"{url}/api/predict", files={"audio": ("clip.wav", data)}, data=fields, timeout=60)


def entries(outputs: Path) -> list[str]:
    return sorted(p.name for p in outputs.iterdir() if p.name not in (".secret", "filler"))


def fill(outputs: Path, leave: int) -> None:
    """A file that leaves `leave` bytes free on the disk."""
    free = shutil.disk_usage(outputs).free
    filler = outputs / "filler"
    size = filler.stat().st_size if filler.exists() else 0
    with open(filler, "ab") as f:
        f.truncate(size)  # a tmpfs allocates on write: written below
        f.write(b"\0" * max(0, free - leave))


def test_a_full_disk_is_a_clear_error_with_nothing_left_and_the_server_recovers(small_disk):
    data, long = _wav(2.0), _wav(12.0)
    fill(small_disk.outputs, 16 * 1024)
    for fields, what in (({}, "a clip"), ({"segment": "vad", "lang": "zh"}, "a recording (its audio streamed to the disk)")):
        answer = post(small_disk.url, long if fields else data, **fields)
        assert answer.status_code == 507, what
        assert answer.json()["code"] == "disk_full" and int(answer.headers["retry-after"]) > 0
        assert answer.json()["error"].startswith("服务器磁盘已满" if fields else "The server's disk is full")
        assert entries(small_disk.outputs) == [], what  # no output folder, no .tmp-* folder
    assert httpx.get(f"{small_disk.url}/api/health", timeout=10).status_code == 200  # still serving
    assert "is full: a result could not be written" in small_disk.log.read_text()
    (small_disk.outputs / "filler").unlink()  # space freed
    answer = post(small_disk.url, long, segment="vad")
    assert answer.status_code == 200
    folder = small_disk.outputs / answer.json()["output_dir"]
    assert (folder / "result.json").is_file() and (folder / "processed_audio.wav").stat().st_size > 12 * 16000 * 2


def test_under_the_floor_the_sweeper_deletes_the_oldest_results_at_once(small_disk):
    for _ in range(3 - len(entries(small_disk.outputs))):
        assert post(small_disk.url, _wav(2.0)).status_code == 200
    folders = sorted((small_disk.outputs / n for n in entries(small_disk.outputs)), key=lambda p: p.stat().st_mtime)
    assert len(folders) == 3
    oldest = sum(f.stat().st_size for f in folders[0].rglob("*") if f.is_file())
    fill(small_disk.outputs, int(FLOOR_MB * 2**20) - oldest // 2)  # deleting the oldest alone is enough
    assert wait_for(lambda: not folders[0].exists()), "the sweeper did not run"
    assert wait_for(lambda: "deleted early" in small_disk.log.read_text())
    assert folders[1].is_dir() and folders[2].is_dir()  # oldest first, and only as many as needed
    assert shutil.disk_usage(small_disk.outputs).free >= FLOOR_MB * 2**20
    (small_disk.outputs / "filler").unlink()


def _wav(seconds: float) -> bytes:
    import io

    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, speechlike(seconds), 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_enospc_and_a_writer_without_errno_on_a_full_disk_are_disk_full_other_failures_are_not(tmp_path, monkeypatch):
    import errno

    from emotion_app import outputs
    from emotion_app.outputs import DiskFull, temp_folder

    def failing(exc: BaseException) -> type[BaseException]:
        with pytest.raises(BaseException) as raised:
            with temp_folder(tmp_path) as tmp:
                (tmp / "part.bin").write_bytes(b"x")
                raise exc
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]  # removed either way
        return type(raised.value)

    assert failing(OSError(errno.ENOSPC, "No space left on device")) is DiskFull
    assert failing(OSError(errno.EDQUOT, "Disk quota exceeded")) is DiskFull
    assert failing(OSError(errno.EACCES, "Permission denied")) is PermissionError
    assert failing(RuntimeError("System error.")) is RuntimeError  # plenty of space here: not a full disk
    monkeypatch.setattr(outputs, "FULL_BYTES", 1 << 62)  # now every disk is "all but full"
    assert failing(RuntimeError("System error.")) is DiskFull
    assert failing(KeyboardInterrupt()) is KeyboardInterrupt
