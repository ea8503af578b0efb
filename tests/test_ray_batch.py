"""batch --ray: the local batch's records on Ray Data, resume, and a worker killed mid-run.

Ray is an extra (requirements-ray.txt): without it these tests are skipped. One local Ray
(ray_pipeline.start_local_ray(2), on 127.0.0.1 only) serves the in-process tests; the CLI test
starts its own.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from audio_files import espeak, speechlike, write_audio
from test_cli import run

ray = pytest.importorskip("ray")

from emotion_app.batch.inputs import Extractor, collect_inputs  # noqa: E402
from emotion_app.batch.local import iter_batch  # noqa: E402
from emotion_app.batch.ray_pipeline import RayOptions, Shards, run_ray_batch, start_local_ray  # noqa: E402
from emotion_app.batch.ray_stages import Scorer, collect_rows  # noqa: E402
from emotion_app.batch.tables import ResultsWriter  # noqa: E402
from emotion_app.request import RequestOptions  # noqa: E402

pytestmark = pytest.mark.long  # started first in its worker (tests/workers.py)

SMALL = RayOptions(files_per_task=2, rows_per_call=2, decoder_memory_gb=0.5, actor_memory_gb=1.0)  # several blocks


def mixed_set(root: Path) -> list[Path]:
    """Good files of two formats and rates, a bad file, a zip (two members), a damaged zip, a
    40 s recording (two model windows) and, with --segment vad, speech between pauses."""
    root.mkdir(parents=True, exist_ok=True)
    a = write_audio(root / "a.wav", speechlike(2.0, seed=1), 16000, "wav")
    b = write_audio(root / "b.mp3", speechlike(3.0, 44100, seed=2), 44100, "mp3")
    (root / "broken.flac").write_bytes(b"fLaC but not really" * 10)
    write_audio(root / "long.flac", speechlike(40.0, seed=5), 16000, "flac")
    pause = np.zeros(8000, np.float32)
    talk = np.concatenate([pause, espeak("Hello, how are you today?"), pause, pause, espeak("Fine, thanks."), pause])
    write_audio(root / "talk.wav", talk, 16000, "wav")
    with zipfile.ZipFile(root / "pack.zip", "w") as zf:
        zf.write(a, "in/a.wav")
        zf.write(b, "in/deeper/b.mp3")
    (root / "damaged.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 300)
    return [root, root / "pack.zip", root / "damaged.zip"]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def local_batch(engine, paths, request, out: Path, fmt: str = "jsonl") -> Path:
    """What `batch --format FMT` writes (cli._batch's loop, in-process); the results file."""
    inputs = collect_inputs(paths, absolute=True)
    writer = ResultsWriter(out, fmt, overwrite=True)
    with tempfile.TemporaryDirectory() as tmp:
        for j, result, error in iter_batch(engine, inputs, request, extractor=Extractor(Path(tmp)), group=32):
            writer.write(inputs[j].name, result, error)
    writer.close()
    return writer.path


def local_records(engine, paths, request, out: Path) -> list[dict]:
    return read_jsonl(local_batch(engine, paths, request, out))


def assert_same(got, want, path="record"):
    """Equal but for timings and timestamps; floats within 1e-5."""
    if isinstance(want, dict):
        assert set(got) == set(want), (path, set(got) ^ set(want))
        for k in want:
            if k not in ("timings", "timestamp"):
                assert_same(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{path}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert got == pytest.approx(want, abs=1e-5), path
    else:
        assert got == want, path


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_cli_ray_gives_the_local_table(tiny_dir, tiny_engine, tmp_path):
    paths = mixed_set(tmp_path / "data")
    request = RequestOptions.from_fields({}, charts=False)
    want = read_csv(local_batch(tiny_engine, paths, request, tmp_path / "local", "csv"))
    args = ("batch", *map(str, paths), "--model", str(tiny_dir), "--format", "csv", "--out", str(tmp_path / "ray"))
    proc = run(*args, "--ray", "--actors", "1")
    assert proc.returncode == 1, proc.stderr[-3000:]
    got = read_csv(tmp_path / "ray" / "results.csv")
    assert got == want and len(got) == 8  # every column, every row, in order (scores at 3 decimals)
    assert "6 done, 2 failed, 0 skipped" in proc.stderr and "h) in" in proc.stderr
    assert "error: " in proc.stderr and not list((tmp_path / "ray" / ".shards").glob("*"))
    again = ("batch", str(paths[0] / "a.wav"), str(paths[1]), *args[4:])  # finished files: Ray is not even started
    done = run(*again, "--ray")
    assert done.returncode == 0 and "3 files, all done already" in done.stderr, done.stderr[-3000:]


@pytest.fixture(scope="module")
def local_ray():
    start_local_ray(2)
    yield
    ray.shutdown()


def descendants(root: int) -> set[int]:
    """`root` and every process below it (Linux /proc): the driver, gcs_server, the raylet, its workers and agents."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # a process that ended meanwhile
            continue
    found = {root}
    while below := {pid for pid, parent in parents.items() if parent in found} - found:
        found |= below
    return found


def listening_sockets(pids: set[int]) -> list[tuple[int, str, ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    """(pid, process name, local address) of each TCP socket in LISTEN state that one of `pids` holds,
    from /proc/net/tcp{,6} (addresses in hex, 32-bit words little-endian) and the processes' fds."""
    owner = {}
    for pid in pids:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    owner[target[8:-1]] = (pid, name)
        except OSError:  # ended meanwhile
            continue
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in owner:  # 0A: LISTEN; [9]: the socket's inode
                raw = bytes.fromhex(fields[1].split(":")[0])
                ip = ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4)))
                found.append((*owner[fields[9]], ip))
    return found


def test_a_local_ray_listens_on_loopback_only(local_ray):
    """The local Ray (driver, gcs_server, raylet, workers, agents) listens on 127.0.0.1 only, though
    `ray` was imported before it started (as here): nothing of it is reachable from the network."""

    @ray.remote
    def worker_pid() -> int:
        return os.getpid()

    worker = ray.get(worker_pid.remote())
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    sockets = listening_sockets(descendants(os.getpid()))
    exposed = [(name, str(ip)) for _, name, ip in sockets if not (getattr(ip, "ipv4_mapped", None) or ip).is_loopback]
    assert not exposed, exposed
    names = {name for _, name, _ in sockets}
    assert {"gcs_server", "raylet"} <= names and worker in {pid for pid, _, _ in sockets}, sockets


@pytest.mark.parametrize(
    "fields", [{"granularity": "frame"}, {"segment": "vad", "labels": "iemocap4", "sentiment": True}], ids=["frame", "vad"]
)
def test_ray_records_equal_the_local_batch(local_ray, tiny_dir, tiny_engine, tmp_path, fields):
    paths = mixed_set(tmp_path / "data")
    request = RequestOptions.from_fields(fields, charts=False)
    want = local_records(tiny_engine, paths, request, tmp_path / "local")
    engine_options = {"model": str(tiny_dir), "device": "cpu", "threads": 1}
    summary = run_ray_batch(collect_rows(paths), request, engine_options, tmp_path / "ray", options=SMALL)
    got = read_jsonl(tmp_path / "ray" / "results.jsonl")
    assert [r["file"] for r in got] == [r["file"] for r in want] and len(got) == 8
    for g, w in zip(got, want):
        assert_same(g, w)
    assert (summary.done, summary.failed, summary.skipped) == (6, 2, 0)
    if "segment" in fields:
        talk = next(r for r in got if r["file"].endswith("talk.wav"))
        assert talk["summary"]["num_segments"] == 2 and talk["audio"]["source"] == talk["file"]
        assert (
            talk["label_set"] == ["angry", "happy", "neutral", "sad"] and list(talk["segments"][0]["scores"]) == talk["label_set"]
        )
        assert all(s["sentiment"]["label"] in ("positive", "negative", "neutral") for s in talk["segments"])


@pytest.mark.parametrize("mode", ["channels", "turns", "corpus"])
def test_ray_conversations_equal_the_local_batch(local_ray, tiny_dir, tiny_engine, tmp_path, mode):
    """Stereo calls (one party per channel), recordings with their turns beside them and recordings
    with one RTTM of them all (a corpus's: each file its file id's lines): Ray's records, speakers
    and conversation blocks included, are the local batch's."""
    import soundfile as sf
    from conversation_audio import call

    root = tmp_path / "calls"
    root.mkdir()
    for k in range(2):
        c = call(2 + k)
        if mode == "channels":
            sf.write(root / f"call{k}.wav", c.stereo(), 16000)
        elif mode == "turns":
            sf.write(root / f"call{k}.wav", c.mono(), 16000)
            (root / f"call{k}.srt").write_text(c.srt(), encoding="utf-8")
        else:
            sf.write(root / f"call{k}.wav", c.mono(), 16000)
            with open(tmp_path / "corpus.rttm", "a", encoding="utf-8") as corpus:
                corpus.write(c.rttm(("Agent", "Customer") if k == 0 else ("Ann", "Bob"), file_id=f"call{k}"))
    fields = {"channels": {"speakers": "channels", "names": "Agent,Customer"}, "corpus": {"turns": str(tmp_path / "corpus.rttm")}}
    request = RequestOptions.from_fields(fields.get(mode, {}), charts=False)
    if mode == "turns":
        request = request.with_turns(None)  # each file's turns beside it
    want = local_records(tiny_engine, [root], request, tmp_path / "local")
    summary = run_ray_batch(
        collect_rows([root]), request, {"model": str(tiny_dir), "device": "cpu"}, tmp_path / "ray", options=SMALL
    )
    got = read_jsonl(tmp_path / "ray" / "results.jsonl")
    assert summary.done == 2 and [r["file"] for r in got] == [r["file"] for r in want]
    for g, w in zip(got, want):
        assert_same(g, w)
    assert [s["name"] for s in got[0]["speakers"]] == ["Agent", "Customer"] and got[1]["conversation"]["num_speakers"] == 2
    if mode == "corpus":  # the second file's own lines
        assert [s["name"] for s in got[1]["speakers"]] == ["Ann", "Bob"] and len(got[1]["segments"]) == 6


def test_resume_merges_a_killed_runs_shards(local_ray, tiny_dir, tmp_path):
    paths = mixed_set(tmp_path / "data")
    rows = collect_rows(paths)
    by_name = {Path(r["name"]).name: r["name"] for r in rows}
    out = tmp_path / "ray"
    # what a driver killed mid-run leaves: one finished shard (a success and a failure), a half-written one
    done_before = {"index": 0, "file": by_name["a.wav"], "error": None, "result": {"file": by_name["a.wav"], "x": 1}}
    failed_before = {"index": 1, "file": by_name["b.mp3"], "error": "b.mp3: failed last time", "result": None}
    Shards(out).write([json.dumps(done_before), json.dumps(failed_before)])
    (out / ".shards" / "half.tmp").write_text('{"index": 2, "fi')
    request = RequestOptions.from_fields({}, charts=False)
    summary = run_ray_batch(rows, request, {"model": str(tiny_dir), "device": "cpu"}, out, options=SMALL)
    assert (summary.done, summary.failed, summary.skipped) == (5, 2, 1)
    records = read_jsonl(out / "results.jsonl")
    assert sorted(r["file"] for r in records) == sorted(r["name"] for r in rows)  # each once
    assert next(r for r in records if r["file"] == by_name["a.wav"])["x"] == 1  # taken from the shard, not rerun
    assert "emotion" in next(r for r in records if r["file"] == by_name["b.mp3"])  # the failure ran again
    assert not list((out / ".shards").iterdir())


def test_a_killed_actor_loses_and_duplicates_nothing(local_ray, tiny_dir, tiny_engine, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    paths = [write_audio(root / f"c{i}.wav", speechlike(1.0 + i / 4, seed=i), 16000, "wav") for i in range(8)]
    flag = tmp_path / "crash-once"
    flag.touch()

    class CrashOnce(Scorer):
        """Kills its own process at the first batch holding c5.wav, once (the flag file says so)."""

        def __call__(self, batch):
            if any(str(n).endswith("c5.wav") for n in batch["name"]) and flag.exists():
                flag.unlink()
                os._exit(1)
            return super().__call__(batch)

    request = RequestOptions.from_fields({}, charts=False)
    rows = collect_rows(paths)
    engine_options = {"model": str(tiny_dir), "device": "cpu"}
    summary = run_ray_batch(rows, request, engine_options, tmp_path / "ray", options=SMALL, scorer=CrashOnce)
    assert not flag.exists()  # the actor did die
    got = read_jsonl(tmp_path / "ray" / "results.jsonl")
    assert [r["file"] for r in got] == [r["name"] for r in rows] and summary.done == 8  # none lost, none doubled
    for g, w in zip(got, local_records(tiny_engine, paths, request, tmp_path / "local")):
        assert_same(g, w)


def test_uri_inputs_through_both_stages_without_ray(tiny_dir, tiny_engine, tmp_path):
    """pyarrow URIs (file:// here; s3://, gs:// the same way): listed, read and named by URI."""
    from emotion_app.batch.ray_stages import DecodeConfig, decode_rows

    root = tmp_path / "bucket"
    (root / "sub").mkdir(parents=True)
    clip = write_audio(root / "sub" / "a.flac", speechlike(1.5, seed=3), 16000, "flac")
    with zipfile.ZipFile(root / "z.zip", "w") as zf:
        zf.write(clip, "a.flac")
    uri = f"file://{root}"
    rows = collect_rows([uri, f"{uri}/z.zip", f"{uri}/gone.wav"], recursive=True)
    assert [r["name"] for r in rows] == [f"{uri}/sub/a.flac", f"{uri}/z.zip", f"{uri}/gone.wav"]
    assert "zip archives are opened from folders only" in rows[1]["error"] and "no such file" in rows[2]["error"]

    def columns(dicts):
        return {k: [v for d in dicts for v in d[k]] for k in dicts[0]}

    decoded = columns(list(decode_rows(columns([{k: [v] for k, v in r.items()} for r in rows]), DecodeConfig(None, 600.0))))
    out = Scorer({"model": str(tiny_dir), "device": "cpu"}, RequestOptions.from_fields({}, charts=False))(decoded)
    records = [json.loads(line) for line in out["line"]]
    assert [r["index"] for r in records] == [0, 1, 2] and [bool(e) for e in out["error"]] == [False, True, True]
    result = records[0]["result"]
    assert result["file"] == result["audio"]["source"] == f"{uri}/sub/a.flac" and result["audio"]["codec"] == "flac"
    expected = tiny_engine.predict(clip)
    np.testing.assert_allclose([result["probabilities"][k] for k in expected.labels], expected.probabilities, atol=1e-5)
