"""Corpus-scale batches on Ray Data: `python -m emotion_app batch PATH... --out DIR --ray`.

The local batch's inputs, options and records, on one machine or a cluster:

    inputs (the driver: files, folders, zips as `collect_inputs` lists them; pyarrow URIs)
      -> decode (CPU tasks, ray_stages.decode_rows: read, decode, resample; VAD and cutting for
         --segment vad|window, so only speech travels on and a file is decoded once)
      -> score (an actor pool, ray_stages.Scorer: one engine per actor, GPU in fp16 when
         --gpus-per-actor > 0; each call batches its rows sorted by length)
      -> the driver, which writes each block as a JSONL shard under OUT/.shards/ (whole: a
         temporary name, then renamed) and at the end merges the shards into results.jsonl|csv.

Order is kept (`preserve_order`), so a fresh run's table is the local batch's, row for row.
Resume: a rerun first merges the shards a killed run left, then skips every file that succeeded
(failed ones run again, as in the local batch). Faults: every Python-level failure is an error
row; a worker process that dies is replaced and its block retried by Ray Data's defaults (tasks
`max_retries=-1`; actors `max_restarts=-1`, `max_task_retries=-1`), and a block's records reach
the shards only once, through the driver. Memory: each stage reserves `memory=` per task/actor,
blocks between stages are capped (`block_mb`), and a decode task holds one decoded file at a time.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import ray
import ray.data

from ..request import RequestOptions
from .ray_stages import DecodeConfig, Scorer, decode_rows
from .tables import ResultsWriter, columns_for, summary_text

logger = logging.getLogger(__name__)

GIB = 1024**3
SHARDS = ".shards"


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide the pipeline runs. Memory values reserve Ray's `memory` resource."""

    address: str | None = None  # a running cluster (`ray start --head`); None: a local Ray, on 127.0.0.1 only
    actors: int = 1  # engines, one per actor
    gpus_per_actor: float = 0.0  # > 0: the engines run on CUDA (fp16 unless --dtype says otherwise); 0.5: two per GPU
    cpus_per_actor: float = 1.0  # on CPU also the engine's torch threads
    cpus_per_decoder: float = 1.0
    decoder_memory_gb: float = 2.0  # per decode task: a 2-hour file decodes to 0.46 GB, plus its segments
    actor_memory_gb: float = 4.0  # per actor: the model (1.3 GB on CPU for plus_large) and a batch
    files_per_task: int = 16  # inputs per decode task (and per input block)
    rows_per_call: int = 0  # decoded inputs per actor call; 0: 8 x the engine's batch size
    block_mb: int = 64  # target size of the blocks between the stages

    def __post_init__(self):
        checks = [
            (self.actors >= 1, "--actors must be at least 1"),
            (self.gpus_per_actor >= 0, "--gpus-per-actor must be 0 or more"),
            (self.cpus_per_actor > 0 and self.cpus_per_decoder > 0, "--cpus-per-actor and --cpus-per-decoder must be over 0"),
            (self.decoder_memory_gb > 0 and self.actor_memory_gb > 0, "--decoder-memory and --actor-memory must be over 0"),
            (self.files_per_task >= 1 and self.block_mb >= 1 and self.rows_per_call >= 0, "files_per_task, block_mb >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass
class BatchSummary:
    """What a run did, for the summary lines (tables.summary_text)."""

    path: Path
    done: int = 0
    failed: int = 0
    skipped: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    emotions: Counter = field(default_factory=Counter)

    def text(self) -> str:
        return summary_text(self.done, self.failed, self.skipped, self.path, self.audio_s, self.wall_s, self.emotions)


# -- shards ----------------------------------------------------------------------------------------
class Shards:
    """Per-block JSONL files under OUT/.shards/, each written whole (temporary name, then renamed)."""

    def __init__(self, out_dir: Path):
        self.dir = Path(out_dir) / SHARDS
        self.run = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        self.seq = 0

    def write(self, lines: Iterable[str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{self.run}-{self.seq:09d}.jsonl"
        self.seq += 1
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        tmp.replace(path)

    def clear(self) -> None:
        for f in self.dir.glob("*.*"):
            f.unlink()

    def fold(self, writer: ResultsWriter, keep_failed: bool) -> set[str]:
        """Append the shards' records to `writer` in shard order, then remove the shards. Successes
        already in the results file are not written twice; failures only with `keep_failed` (a
        run's start drops them: they run again). Returns the files written as done."""
        done: set[str] = set()
        for shard in sorted(self.dir.glob("*.jsonl")):
            for line in shard.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                name = record["file"]
                if record["error"]:
                    if keep_failed:
                        writer.write(name, None, record["error"])
                elif name not in writer.done and name not in done:
                    writer.write(name, record["result"], None)
                    done.add(name)
            shard.unlink()
        for tmp in self.dir.glob("*.tmp"):  # a shard the driver was writing when it was killed
            tmp.unlink()
        return done


# -- the pipeline ----------------------------------------------------------------------------------
def connect(options: RayOptions) -> bool:
    """Join `options.address`, or start a local Ray (start_local_ray: on 127.0.0.1 only) with enough
    CPUs for the actors and one decoder. Returns whether this call started Ray (and so should shut
    it down)."""
    if ray.is_initialized():
        return False
    if options.address:
        try:
            ray.init(address=options.address)
        except ConnectionError as exc:
            from ..errors import EmotionAppError

            raise EmotionAppError(
                f"cannot join the Ray cluster at {options.address} ({exc}). Clusters from `ray start` use token "
                "authentication: run with RAY_AUTH_MODE=token and the cluster's token (~/.ray/auth_token or RAY_AUTH_TOKEN)",
                "ray_connect",
            ) from None
    else:
        needed = math.ceil(options.actors * options.cpus_per_actor + options.cpus_per_decoder)
        start_local_ray(max(os.cpu_count() or 1, needed))
    return True


def start_local_ray(num_cpus: int) -> None:
    """Start a new Ray on this machine that listens on 127.0.0.1 only (no dashboard), even if a
    `ray start` cluster runs here too. Every local Ray of the project starts here (the tests too).

    `_node_ip_address="127.0.0.1"` alone is not enough: Ray 2.60 rewrites a loopback node address
    to the machine's routable one (services.resolve_ip_for_localhost -> get_node_ip_address), and
    then gcs_server, the raylet and the workers listen on all interfaces. It keeps the loopback
    address only where RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (ray_constants.ENABLE_RAY_CLUSTER, read
    when `ray` is imported). So the variable is set for the processes ray.init starts (they inherit
    it) and the driver's copy of the constant with it; both are restored after, so that a later
    `ray.init(address=...)` in this process joins a cluster as usual."""
    from ray._private import ray_constants

    name = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
    saved = os.environ.get(name), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[name], ray_constants.ENABLE_RAY_CLUSTER = "0", False
    try:
        ray.init(address="local", num_cpus=num_cpus, _node_ip_address="127.0.0.1", include_dashboard=False)
    finally:
        if saved[0] is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved[0]
        ray_constants.ENABLE_RAY_CLUSTER = saved[1]


def _check_resources(options: RayOptions) -> None:
    """Refuse what the cluster can never schedule (Ray would wait for it forever)."""
    from ..errors import EmotionAppError

    have = ray.cluster_resources()
    if options.gpus_per_actor > have.get("GPU", 0):
        raise EmotionAppError(f"--gpus-per-actor {options.gpus_per_actor:g}: the Ray cluster has {have.get('GPU', 0):g} GPUs")
    memory = have.get("memory", 0) / GIB
    if options.actor_memory_gb + options.decoder_memory_gb > memory:
        raise EmotionAppError(
            f"the Ray cluster offers {memory:.1f} GB of memory; one actor and one decoder reserve "
            f"{options.actor_memory_gb + options.decoder_memory_gb:g} GB (lower --actor-memory / --decoder-memory)"
        )


def _vad_file(engine_options: dict) -> str | None:
    """Silero's ONNX file in an export-onnx folder, which the engine uses for the ONNX backend."""
    from ..audio.vad import ONNX_NAME

    if engine_options.get("backend") != "onnx":
        return None
    path = Path(engine_options["model"]) / ONNX_NAME
    return str(path) if path.is_file() else None


def build_dataset(rows: list[dict], request: RequestOptions, engine_options: dict, options: RayOptions, scorer=Scorer):
    """rows -> decode tasks -> scoring actors: a lazy Dataset of shard lines (ray_stages._table)."""
    from ..engine_options import EngineOptions

    cuda = options.gpus_per_actor > 0
    per_call = options.rows_per_call or 8 * (engine_options.get("batch_size") or (16 if cuda else 4))
    max_s = EngineOptions.make(engine_options).max_duration_s
    config = DecodeConfig(request.segment, max_s, _vad_file(engine_options), request.speakers, request.turns)
    ds = ray.data.from_items(rows, override_num_blocks=max(1, math.ceil(len(rows) / options.files_per_task)))
    ds = ds.map_batches(
        decode_rows,
        fn_kwargs={"config": config},
        batch_size=options.files_per_task,
        num_cpus=options.cpus_per_decoder,
        memory=int(options.decoder_memory_gb * GIB),
    )
    return ds.map_batches(
        scorer,
        fn_constructor_kwargs={"engine_options": engine_options, "request": request},
        batch_size=per_call,
        compute=ray.data.ActorPoolStrategy(size=options.actors),
        num_cpus=options.cpus_per_actor,
        num_gpus=options.gpus_per_actor or None,
        memory=int(options.actor_memory_gb * GIB),
    )


def run_ray_batch(
    rows: list[dict],
    request: RequestOptions,
    engine_options: dict,
    out_dir: Path,
    *,
    fmt: str = "jsonl",
    overwrite: bool = False,
    options: RayOptions = RayOptions(),
    scorer=Scorer,
    on_error: Callable[[str], None] | None = None,
) -> BatchSummary:
    """Run `rows` (collect_rows) through the pipeline into OUT/results.<fmt>, resuming what is done
    there. Uses the running Ray if there is one, else `connect(options)`. `on_error(message)` is
    called for each failed file as its block arrives."""
    writer = ResultsWriter(Path(out_dir), fmt, overwrite, columns_for(request))
    shards = Shards(Path(out_dir))
    if overwrite:
        shards.clear()
    done = writer.done | shards.fold(writer, keep_failed=False)
    todo = [row for row in rows if row["name"] not in done]
    summary = BatchSummary(writer.path, skipped=len(rows) - len(todo))
    t0 = time.perf_counter()
    try:
        if todo:
            _stream(todo, request, engine_options, options, scorer, shards, summary, on_error)
        shards.fold(writer, keep_failed=True)
    finally:
        writer.close()
    summary.wall_s = time.perf_counter() - t0
    return summary


def _stream(todo, request, engine_options, options, scorer, shards: Shards, summary: BatchSummary, on_error) -> None:
    _check_model(engine_options, options)
    started = connect(options)
    ctx = ray.data.DataContext.get_current()
    saved = ctx.execution_options.preserve_order, ctx.target_max_block_size
    try:
        _check_resources(options)
        ctx.execution_options.preserve_order = True  # the table comes out in input order
        ctx.target_max_block_size = options.block_mb * 1024**2
        ds = build_dataset(todo, request, engine_options, options, scorer)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            shards.write(batch["line"])
            for error, seconds, emotion in zip(batch["error"], batch["duration_s"], batch["emotion"]):
                if error:
                    summary.failed += 1
                    if on_error:
                        on_error(str(error))
                else:
                    summary.done += 1
                    summary.audio_s += float(seconds)
                    summary.emotions[str(emotion)] += 1
    finally:
        ctx.execution_options.preserve_order, ctx.target_max_block_size = saved
        if started:
            ray.shutdown()


def _check_model(engine_options: dict, options: RayOptions) -> None:
    """On a local Ray, resolve the model here first: a wrong folder is one line (not an actor's
    traceback), and a hub model is downloaded once, not by each actor at the same time."""
    if options.address or engine_options.get("backend", "torch") != "torch":
        return
    from ..model.hub import resolve_model

    resolve_model(engine_options["model"], engine_options.get("hub", "ms"), cache_dir=engine_options.get("cache_dir"))
