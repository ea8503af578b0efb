"""`/metrics`: the server's metrics in Prometheus' text format (prometheus_client), in both modes.

What is measured (names below; `docs/scale.md` lists them beside Ray Serve's own):
- `emotion_app_requests_total{route,method,status}` and `emotion_app_request_seconds{route}`: every
  HTTP request the app answers (the guard's refusals too: this middleware is outside it), by route;
  the routes are a short fixed list (`route_of`), never the raw path (no unbounded label values).
- `emotion_app_model_queue_seconds`, `emotion_app_model_seconds`: a model call's wait before the model
  and the model call itself; `emotion_app_batch_requests` and `emotion_app_batch_chunks`: how many
  requests' calls, and chunks, each model call merged (model/batcher.py). With Ray Serve the
  replicas measure these and hand them back with the results (scale/remote.py).
- `emotion_app_live_sessions`, `emotion_app_event_loop_lag_seconds` (the watchdog's probe, each
  0.1 s), `emotion_app_model_replicas` (1 in one process; the running Serve replicas otherwise) and,
  with Ray Serve, `emotion_app_replica_calls_in_flight`.

Each app has its own registry (several apps in one process, as in the tests, do not mix). The route
passes the same login as the REST routes.
"""

from __future__ import annotations

import contextlib
import logging
import time

from fastapi import Request

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
SIZE_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256)
EXACT_ROUTES = ("/api/predict", "/api/health", "/api/stream", "/metrics")
PREFIX_ROUTES = ("/api/outputs", "/mcp", "/gradio_api")


def route_of(path: str) -> str:
    """A request's route label: one of EXACT_ROUTES or PREFIX_ROUTES, `/api/other`, or `page` (the rest is Gradio's page)."""
    if path in EXACT_ROUTES:
        return path
    for prefix in PREFIX_ROUTES:
        if path == prefix or path.startswith(prefix + "/"):
            return prefix
    return "/api/other" if path == "/api" or path.startswith("/api/") else "page"


class Metrics:
    """The app's registry and its instruments. `engine`: what the model replicas are counted from
    (its backend's `replicas()` when it has one, else 1); `live`: the live hub (its sessions)."""

    def __init__(self, engine=None, live=None):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "emotion_app_requests", "HTTP requests answered, by route, method and status", ["route", "method", "status"],
            registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            "emotion_app_request_seconds", "Time from a request's arrival to its answer's last byte, by route", ["route"],
            buckets=TIME_BUCKETS, registry=registry,
        )  # fmt: skip
        self.queue = Histogram(
            "emotion_app_model_queue_seconds", "A request's model call: its wait before the model", buckets=TIME_BUCKETS,
            registry=registry,
        )  # fmt: skip
        self.model = Histogram("emotion_app_model_seconds", "One model call", buckets=TIME_BUCKETS, registry=registry)
        self.batch_requests = Histogram(
            "emotion_app_batch_requests", "Requests' calls merged into one model call", buckets=SIZE_BUCKETS, registry=registry
        )
        self.batch_chunks = Histogram(
            "emotion_app_batch_chunks", "Chunks in one model call", buckets=SIZE_BUCKETS, registry=registry
        )
        self.lag = Histogram(
            "emotion_app_event_loop_lag_seconds",
            "How late the event loop's probe woke up",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        sessions = Gauge("emotion_app_live_sessions", "Live takes running", registry=registry)
        sessions.set_function(lambda: live.active if live is not None else 0)
        replicas = Gauge("emotion_app_model_replicas", "Model replicas serving this app", registry=registry)
        backend = getattr(engine, "backend", None)
        count = getattr(backend, "replicas", None)
        replicas.set_function(count if callable(count) else lambda: 1 if engine is not None else 0)
        if callable(getattr(backend, "in_flight", None)):  # Ray Serve: the calls waiting for a replica
            waiting = Gauge(
                "emotion_app_replica_calls_in_flight", "Model calls sent to the replicas, not answered yet", registry=registry
            )
            waiting.set_function(backend.in_flight)

    def observe_batch(self, stats) -> None:
        """One model call (model/batcher.py's BatchStats); from any thread."""
        self.batch_requests.observe(stats.calls)
        self.batch_chunks.observe(stats.chunks)
        self.model.observe(stats.model_s)
        for wait in stats.queue_s:
            self.queue.observe(wait)

    def text(self) -> bytes:
        """The exposition (Prometheus' text format). Gauges may read the cluster: not on the event loop."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    @contextlib.asynccontextmanager
    async def lifespan(self, engine, watchdog):
        """While the server runs: the engine's model calls and the watchdog's probes are observed."""
        if engine is not None:
            engine.observers.append(self.observe_batch)
        if watchdog is not None:
            watchdog.observers.append(self.lag.observe)
        try:
            yield
        finally:
            if engine is not None:
                engine.observers.remove(self.observe_batch)
            if watchdog is not None:
                watchdog.observers.remove(self.lag.observe)


class MetricsMiddleware:
    """Counts and times each HTTP request (pure ASGI: the body streams through untouched)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = 500  # an exception before the answer started

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = route_of(scope.get("path", ""))
            self.metrics.requests.labels(route, scope.get("method", ""), str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - t0)


def add_metrics_route(app, metrics: Metrics, denied) -> None:
    """GET /metrics, behind `denied` (rest.auth_check: the REST routes' login)."""
    from fastapi.responses import Response
    from starlette.concurrency import run_in_threadpool

    @app.get("/metrics", include_in_schema=False)
    async def metrics_text(request: Request):
        if (refusal := denied(request)) is not None:
            return refusal
        return Response(await run_in_threadpool(metrics.text), media_type=CONTENT_TYPE)
