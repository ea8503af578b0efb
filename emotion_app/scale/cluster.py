"""Start or join Ray, deploy the model's replicas with Ray Serve, and give the front its engine.

`start_model` is what `emotion-app serve --ray-serve` runs: without an address it starts a local
Ray on 127.0.0.1 (batch/ray_pipeline.start_local_ray, the one way a local Ray starts) and stops it
on exit; with one it joins that cluster (every machine with the same Ray and Python), uses the
application `emotion` when it already runs there (`serve deploy deploy/serve.yaml`) and deploys
it otherwise. Serve's own HTTP proxy is not started: the front serves HTTP itself and calls the
replicas through a handle.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import asdict, dataclass

from ..errors import EmotionAppError

logger = logging.getLogger(__name__)

INFO_TIMEOUT_S = 120.0  # s for the first replica to load its model and answer


@dataclass(frozen=True)
class ServeOptions:
    """How the model is deployed: `replicas`, or `autoscale` (MIN, MAX) scaled by Serve on the calls
    in flight; each replica's `gpus_per_replica`, `cpus_per_replica`; batching: at most `max_batch`
    calls merged (0: the engine's batch size), waiting `batch_wait_ms` for more."""

    replicas: int = 1
    autoscale: tuple[int, int] | None = None
    gpus_per_replica: float = 0.0
    cpus_per_replica: float = 1.0
    max_batch: int = 0
    batch_wait_ms: float = 2.0

    def app_args(self, engine_options: dict) -> dict:
        """deployment.app's arguments (also a Serve config file's `args`)."""
        return {**asdict(self), "engine": dict(engine_options)}


def join(address: str) -> None:
    """Connect this process to the Ray cluster at `address` (EmotionAppError saying why it cannot)."""
    import ray

    try:
        ray.init(address=address)
    except (ConnectionError, RuntimeError) as exc:
        said, cause = [], exc
        while cause is not None and len(said) < 10:  # Ray wraps its GCS client's error: ConnectionError <- RuntimeError
            said.append(str(cause))
            cause = cause.__cause__ or cause.__context__
        if any("InvalidAuthToken" in text for text in said):
            raise EmotionAppError(
                f"The Ray cluster at {address} refused this front: it uses token authentication, and this front "
                "has no token or another one. Start the front with RAY_AUTH_MODE=token and the cluster's token in "
                "RAY_AUTH_TOKEN or in the file that RAY_AUTH_TOKEN_PATH names (docs/ray.md).",
                "unavailable",
            ) from None
        raise EmotionAppError(
            f"Could not join the Ray cluster at {address} ({said[0].splitlines()[0]}): check that it runs there "
            "(`ray start --head`) and that --ray-address names it (HEAD_IP:6379).",
            "unavailable",
        ) from None


@contextlib.contextmanager
def start_model(engine_options: dict, options: ServeOptions, *, address: str | None = None, num_cpus: int | None = None):
    """The front's engine on the replicas of the Serve application (deployment.APP_NAME), while the
    block runs. Local Ray (`address` None): started with `num_cpus` (None: this machine's), Serve and
    Ray shut down after. Joined cluster: an application already there is used and left running."""
    import ray
    from ray import serve

    from ..batch.ray_pipeline import start_local_ray
    from ..engine import Engine
    from .deployment import APP_NAME, app
    from .remote import RemoteBackend

    local = address is None
    if local:
        start_local_ray(num_cpus or os.cpu_count() or 1)
    else:
        join(address)
    try:
        serve.start(proxy_location="Disabled")  # no Serve HTTP proxy: the front is the only door
        if not local and APP_NAME in serve.status().applications:
            handle = serve.get_app_handle(APP_NAME)
            logger.info("using the running Serve application %r", APP_NAME)
        else:
            logger.info("deploying the model: %s", options)
            try:
                handle = serve.run(app(options.app_args(engine_options)), name=APP_NAME, route_prefix=None)
            except RuntimeError as exc:  # a replica's constructor failed (the model did not load)
                raise EmotionAppError(f"The model replicas did not start: {exc}", "model_load") from exc
        info = handle.info.remote().result(timeout_s=INFO_TIMEOUT_S)
        engine = Engine(engine_options, remote=RemoteBackend(handle, info, app_name=APP_NAME))
        yield engine
    finally:
        if local:
            with contextlib.suppress(Exception):
                serve.shutdown()
        ray.shutdown()
