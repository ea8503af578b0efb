"""The model as a Ray Serve deployment: each replica one engine; the calls of many requests (from
every front) merged into shared model calls with `@serve.batch`, grouped by model/batcher.py's
`run_merged` as the single-process server groups them.

`app(args)` is the application builder, for `serve deploy` (deploy/serve.yaml) and for
`emotion-app serve --ray-serve` (cluster.py) alike. Imported only where Ray Serve is used.
"""

from __future__ import annotations

import asyncio
import logging
import os

from ray import serve

from ..engine import Engine
from ..model.batcher import Call, run_merged
from ..model.head import engine_model_id

logger = logging.getLogger(__name__)

APP_NAME = "emotion"  # the Serve application the fronts look up
DEPLOYMENT = "Model"


@serve.deployment(
    name=DEPLOYMENT,
    max_ongoing_requests=64,  # calls a replica holds at once: what its batches are made of
    health_check_period_s=2.0,  # a dead replica is noticed within seconds and replaced
    graceful_shutdown_wait_loop_s=0.5,  # a replica being stopped checks for calls in flight this often
    graceful_shutdown_timeout_s=10.0,
)
class Model:
    """One replica: an engine loaded from `engine_options` (EngineOptions' fields), its model calls
    batched across requests (at most `max_batch` calls merged, 0: the engine's batch size; the first
    call waits at most `batch_wait_ms` for others)."""

    def __init__(self, engine_options: dict, max_batch: int = 0, batch_wait_ms: float = 2.0):
        bind_internal_grpc_to_node_address()  # before Serve starts this replica's gRPC server
        self.engine = Engine(engine_options)
        self.max_chunks = max_batch or self.engine.batch_size
        self._batched.set_max_batch_size(self.max_chunks)
        self._batched.set_batch_wait_timeout_s(batch_wait_ms / 1000)

    def info(self) -> dict:
        """What the front's engine needs to know of the model (remote.py), and this replica's pid."""
        engine = self.engine
        return {
            "labels": list(engine.labels), "embed_dim": engine.embed_dim, "device": str(engine.device),
            "dtype": engine.dtype, "model_id": engine_model_id(engine),
            "batch_size": engine.batch_size, "max_batch_samples": engine.max_batch_samples, "pid": os.getpid(),
        }  # fmt: skip

    async def run(self, chunks: list, keep_frames: bool = False) -> tuple:
        """One request's model call: (its ChunkOutputs or the model's exception, the BatchStats of the
        model calls it took part in, given to the first call of each Serve batch only)."""
        return await self._batched(Call(chunks, keep_frames))

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
    async def _batched(self, calls: list[Call]) -> list[tuple]:
        stats: list = []
        # In a thread: the replica's event loop keeps taking calls (the next batch) meanwhile.
        results = await asyncio.to_thread(
            run_merged, self.engine.run_chunks, calls, self.max_chunks, self.engine.max_batch_samples, stats.append
        )
        return [(result, stats if i == 0 else []) for i, result in enumerate(results)]

    async def head(self, mean):
        """(D,) feature -> (V,) probabilities (a long input's utterance reading)."""
        return await asyncio.to_thread(self.engine.head_probabilities, mean)


def bind_internal_grpc_to_node_address() -> None:
    """Ray Serve 2.60 starts each replica's inter-deployment gRPC server on "[::]:0": every interface of
    the machine, whatever address Ray's own services listen on, with no setting for it (ray-project/ray
    #64544 asks for one for the port). Our fronts never use it (their handle calls are Ray actor calls;
    RAY_SERVE_USE_GRPC_BY_DEFAULT is off), so in this replica it is bound to the node's Ray address
    instead: 127.0.0.1 on the local Ray of `--ray-serve`, the node's own address in a cluster. Called
    in the replica's constructor, which Serve runs before it starts that server."""
    import ray
    from ray.serve._private import replica

    add_port = getattr(replica, "add_port_to_grpc_server", None)
    if add_port is None or getattr(add_port, "node_address", False):
        if add_port is None:
            logger.warning("Ray Serve changed: this replica's internal gRPC server may listen on every interface")
        return
    host = ray.util.get_node_ip_address()
    host = f"[{host}]" if ":" in host else host

    def on_node_address(server, address: str):
        if address.startswith("[::]:"):
            address = f"{host}:{address[5:]}"
        return add_port(server, address)

    on_node_address.node_address = True
    replica.add_port_to_grpc_server = on_node_address


def app(args: dict):
    """The Serve application: `args` = {"engine": EngineOptions' fields (model: a folder or hub id each
    replica's machine can load), "replicas": N or "autoscale": [MIN, MAX], "gpus_per_replica",
    "cpus_per_replica", "max_batch", "batch_wait_ms"}; the names and defaults of cluster.ServeOptions."""
    autoscale = args.get("autoscale")
    replicas = {"num_replicas": int(args.get("replicas", 1))}
    if autoscale:
        low, high = (int(n) for n in autoscale)
        replicas = {"autoscaling_config": {"min_replicas": low, "max_replicas": high, "target_ongoing_requests": 8}}
    cpus, gpus = float(args.get("cpus_per_replica", 1)), float(args.get("gpus_per_replica", 0))
    engine = dict(args.get("engine") or {})
    if not gpus and not engine.get("threads"):  # torch's threads: the CPUs the replica took, not all the node's
        engine["threads"] = max(1, int(cpus))
    deployment = Model.options(ray_actor_options={"num_cpus": cpus, "num_gpus": gpus}, **replicas)
    return deployment.bind(engine, int(args.get("max_batch", 0)), float(args.get("batch_wait_ms", 2.0)))
