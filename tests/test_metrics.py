"""/metrics of the single-process server: Prometheus text that prometheus_client's own parser reads,
requests by route and status, the model calls merged across concurrent requests, live sessions,
the event loop's lag and the replica count."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
from audio_files import speechlike, write_audio

from emotion_app.web.api.metrics import route_of


def scrape(url: str) -> dict[str, float]:
    """Every sample of /metrics: 'name{label="value",...}' -> value (labels sorted)."""
    from prometheus_client.parser import text_string_to_metric_families

    answer = httpx.get(url + "/metrics", timeout=30)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}"] = s.value
    return samples


def test_routes_are_a_fixed_short_list():
    assert route_of("/api/predict") == "/api/predict" and route_of("/api/outputs/a/b/c.json") == "/api/outputs"
    assert route_of("/mcp") == "/mcp" and route_of("/gradio_api/queue/join") == "/gradio_api"
    assert route_of("/api/nope") == "/api/other" and route_of("/assets/x.js") == "page" == route_of("/")


def test_metrics_count_requests_and_merged_model_calls(web, tmp_path):
    paths = [write_audio(tmp_path / f"s{i}.wav", speechlike(1.0 + 0.05 * i, 16000, seed=i), 16000) for i in range(6)]
    before = scrape(web.url)

    def post(path):
        with open(path, "rb") as f:
            return httpx.post(web.url + "/api/predict", files={"audio": f}, timeout=60).status_code

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(post, paths)) == [200] * 6
    assert httpx.get(web.url + "/api/nothing-here", timeout=10).status_code == 404
    after = scrape(web.url)

    def grew(key):
        return after.get(key, 0) - before.get(key, 0)

    assert grew('emotion_app_requests_total{method="POST",route="/api/predict",status="200"}') == 6
    assert grew('emotion_app_requests_total{method="GET",route="/api/other",status="404"}') == 1
    assert grew('emotion_app_request_seconds_count{route="/api/predict"}') == 6
    # every request's model call was observed once, merged or not (the batcher is on by default)
    assert grew("emotion_app_batch_requests_sum{}") == 6 == grew("emotion_app_model_queue_seconds_count{}")
    assert 1 <= grew("emotion_app_model_seconds_count{}") <= 6 == grew("emotion_app_batch_chunks_sum{}")
    assert after["emotion_app_model_replicas{}"] == 1 and after["emotion_app_live_sessions{}"] == web.live.active
    assert after["emotion_app_event_loop_lag_seconds_count{}"] > 0  # the watchdog's probe, each 0.1 s
