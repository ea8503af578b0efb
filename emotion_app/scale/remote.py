"""The front's side of Ray Serve: an engine backend whose model calls go to the replicas through a
Serve handle (`Engine(options, remote=RemoteBackend(...))`), so that every route of the web front
(page, REST, Gradio API, MCP, live) runs unchanged on replicas elsewhere.

It is `concurrent`: the engine calls it from every request thread at once, unserialised, and the
replicas merge the calls into batches (deployment.py). Each call blocks its thread (a request's
worker or the live scheduler's, never the event loop) for at most `call_timeout_s`. The calls a
replica held when it died (kill -9, its node lost) are routed again by Serve's router itself
(Ray 2.60). What still fails here (no replica ready, an actor error the router passes on, a call
past its time) is sent again until `retry_s` has passed; then the request is answered as
`unavailable` (503 with Retry-After). Serve starts a new replica meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from ..errors import EmotionAppError

logger = logging.getLogger(__name__)


class ReplicasUnavailable(EmotionAppError):
    """No replica answered within the retries: 503 with Retry-After (Serve restarts failed replicas)."""

    code = "unavailable"
    retry_after_s = 5


RETRY_S = 30.0  # s a call is retried on other replicas before the request is answered 503
CALL_TIMEOUT_S = 300.0  # s one call may take (a long batch of chunks on a busy CPU replica) before it is retried
REPLICAS_TTL_S = 2.0  # s the replica count is cached for /metrics (it asks Serve's controller)


def retryable() -> tuple[type[BaseException], ...]:
    """The exceptions of a call that another replica may answer: its replica died or was unreachable,
    Serve had none ready, the call timed out."""
    from ray import exceptions as ray_errors
    from ray.serve import exceptions as serve_errors

    return (
        ray_errors.RayActorError,  # ActorDiedError, ActorUnavailableError
        ray_errors.GetTimeoutError,
        serve_errors.BackPressureError,
        serve_errors.DeploymentUnavailableError,
        TimeoutError,
    )


class RemoteBackend:
    """The model of `handle` (deployment.Model), described by its `info()`."""

    concurrent = True
    backend = "ray-serve"

    def __init__(self, handle, info: dict, *, app_name: str, retry_s: float = RETRY_S, call_timeout_s: float = CALL_TIMEOUT_S):
        self.handle, self.app_name = handle, app_name
        self.labels = tuple(info["labels"])
        self.embed_dim = int(info["embed_dim"])
        self.device, self.dtype = info["device"], info["dtype"]
        self.model_id = info.get("model_id")
        self.retry_s, self.call_timeout_s = retry_s, call_timeout_s
        self.observe = None  # set by the engine: the replicas' BatchStats go to its observers
        self.retries = 0  # calls sent again after a replica failed them
        self._waiting = 0  # calls sent, not answered yet
        self._count_lock = threading.Lock()  # for both counts (request threads; a plain lock: never on the event loop)
        self._retryable = retryable()
        self._replicas = (0.0, 0)
        self._replicas_lock = threading.Lock()

    def run_chunks(self, chunks, keep_frames: bool = False):
        """As TorchModel.run_chunks, on a replica: the chunks' ChunkOutputs."""
        result, stats = self._call("run", [np.asarray(c, dtype=np.float32) for c in chunks], keep_frames)
        if self.observe is not None:
            for batch in stats:
                self.observe(batch)
        if isinstance(result, BaseException):  # the model's own error, raised in the request
            raise result
        return result

    def head_probabilities(self, mean: np.ndarray) -> np.ndarray:
        return self._call("head", np.asarray(mean))

    def replicas(self) -> int:
        """The replicas running now (Serve's status, cached for REPLICAS_TTL_S); blocks: not on the event loop."""
        with self._replicas_lock:
            at, count = self._replicas
            if time.monotonic() - at > REPLICAS_TTL_S:
                from ray import serve

                from .deployment import DEPLOYMENT

                try:
                    states = serve.status().applications[self.app_name].deployments[DEPLOYMENT].replica_states
                    count = int(states.get("RUNNING", 0))
                except Exception:  # noqa: BLE001 - the count is a metric: the last one stands
                    logger.warning("could not read the replicas' status", exc_info=True)
                self._replicas = (time.monotonic(), count)
            return count

    def in_flight(self) -> int:
        """The calls sent to the replicas and not answered yet."""
        return self._waiting

    def _call(self, method: str, *args):
        with self._count_lock:
            self._waiting += 1
        try:
            return self._retried(method, args)
        finally:
            with self._count_lock:
                self._waiting -= 1

    def _retried(self, method: str, args: tuple):
        deadline = time.monotonic() + self.retry_s
        pause = 0.1
        while True:
            try:
                return getattr(self.handle, method).remote(*args).result(timeout_s=self.call_timeout_s)
            except self._retryable as exc:
                if time.monotonic() + pause > deadline:
                    raise ReplicasUnavailable(
                        f"The model replicas did not answer for {self.retry_s:g} s ({type(exc).__name__}); "
                        "try again in a moment (Ray Serve restarts failed replicas)."
                    ) from exc
                with self._count_lock:
                    self.retries += 1
                logger.warning("a model replica failed a call (%s); sending it again", type(exc).__name__)
                time.sleep(pause)
                pause = min(1.0, pause * 2)
