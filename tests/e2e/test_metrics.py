"""Prometheus metrics on a real server: counters move by exactly what a known request did,
gauges (also under the vLLM names inference gateways read) move while requests run."""

import threading
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import MODEL_ID, Server

LABEL = {"model": MODEL_ID}
VLLM = {"model_name": MODEL_ID}


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory):
    s = Server("--parallel", "1", "--ctx-size", "4096", tmp=tmp_path_factory.mktemp("metrics"))
    yield s
    s.stop()


def scrape(server, headers=None):
    r = requests.get(server.base + "/metrics", headers=headers or {})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_move_by_exactly_one_request(one_slot):
    before = scrape(one_slot)
    r = requests.post(one_slot.base + "/v1/chat/completions", headers={"Cache-Control": "no-cache"}, json={
        "model": MODEL_ID, "messages": [{"role": "user", "content": "Count to ten."}],
        "max_tokens": 7, "ignore_eos": True})
    assert r.status_code == 200
    usage = r.json()["usage"]
    after = scrape(one_slot)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("lantern_requests_total", route="/v1/chat/completions", status="200") == 1
    assert delta("lantern_generation_tokens_total", **LABEL) == 7 == usage["completion_tokens"]
    assert delta("lantern_prompt_tokens_total", **LABEL) == usage["prompt_tokens"]
    assert delta("lantern_cached_prompt_tokens_total", **LABEL) == usage["prompt_tokens_details"]["cached_tokens"]
    assert delta("lantern_time_to_first_token_seconds_count", **LABEL) == 1
    assert delta("lantern_inter_token_latency_seconds_count", **LABEL) == 6
    assert delta("lantern_queue_time_seconds_count", **LABEL) == 1
    assert delta("lantern_e2e_request_latency_seconds_count", **LABEL) == 1
    assert delta("lantern_response_cache_total", result="bypass") == 1
    assert value(after, "lantern_slots_total", **LABEL) == 1
    assert value(after, "lantern_kv_cells_total", **LABEL) >= 4096
    assert value(after, "lantern_model_load_seconds", **LABEL) > 0
    total = int(value(after, "lantern_kv_cells_total", **LABEL))
    assert value(after, "vllm:cache_config_info", block_size="1", num_gpu_blocks=str(total), **VLLM) == 1


def test_rejections_are_counted_by_reason(one_slot):
    before = scrape(one_slot)
    r = requests.post(one_slot.base + "/v1/chat/completions", json={"model": "nope", "messages": [
        {"role": "user", "content": "hi"}]})
    assert r.status_code == 404
    after = scrape(one_slot)
    key = ("lantern_rejected_requests_total", (("reason", "model_not_found"),))
    assert after.get(key, 0) - before.get(key, 0) == 1


def test_gauges_move_while_requests_run(one_slot):
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Tell me a long story."}],
            "max_tokens": 120, "ignore_eos": True}
    threads = [threading.Thread(target=requests.post, args=(one_slot.base + "/v1/chat/completions",),
                                kwargs={"json": body, "headers": {"Cache-Control": "no-cache"}})
               for _ in range(3)]
    for t in threads:
        t.start()
    seen = {"running": 0, "waiting": 0, "kv": 0.0, "busy": 0}
    deadline = time.time() + 30
    while time.time() < deadline and not (seen["waiting"] >= 1 and seen["kv"] > 0):
        m = scrape(one_slot)
        seen["running"] = max(seen["running"], value(m, "vllm:num_requests_running", **VLLM))
        seen["waiting"] = max(seen["waiting"], value(m, "vllm:num_requests_waiting", **VLLM))
        seen["kv"] = max(seen["kv"], value(m, "vllm:kv_cache_usage_perc", **VLLM))
        seen["busy"] = max(seen["busy"], value(m, "lantern_slots_busy", **LABEL))
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert seen["running"] == 1 and seen["busy"] == 1, seen
    assert seen["waiting"] >= 1, seen
    assert 0 < seen["kv"] <= 1, seen
    idle = scrape(one_slot)
    assert value(idle, "vllm:num_requests_running", **VLLM) == 0
    assert value(idle, "vllm:num_requests_waiting", **VLLM) == 0
    assert value(idle, "vllm:kv_cache_usage_perc", **VLLM) == 0


def test_metrics_can_require_the_key(tmp_path):
    s = Server("--api-key", "sk-m", "--metrics-require-key", tmp=tmp_path)
    try:
        assert requests.get(s.base + "/metrics").status_code == 401
        assert scrape(s, {"Authorization": "Bearer sk-m"})
    finally:
        s.stop()


def test_metrics_are_public_by_default_with_keys(tmp_path):
    s = Server("--api-key", "sk-m", tmp=tmp_path)
    try:
        assert value(scrape(s), "lantern_slots_total", **LABEL) == 4
    finally:
        s.stop()
