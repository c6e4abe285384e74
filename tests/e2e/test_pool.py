"""Several models from a config file: aliases, lazy loading, idle unload, replicas, queue limits."""

import threading
import time

import openai
import pytest
import requests

from conftest import MODEL, Server, concurrently

CONFIG = f"""
max_queue = 0
[cache]
enabled = false

[[models]]
id = "smol-a"
path = "{MODEL}"
aliases = ["gpt-4o-mini"]
parallel = 2
ctx_size = 2048

[[models]]
id = "smol-lazy"
path = "{MODEL}"
load = "lazy"
idle_unload_secs = 3
parallel = 3
ctx_size = 3072

[[models]]
id = "smol-pair"
path = "{MODEL}"
replicas = 2
parallel = 1
ctx_size = 1024
threads = 1
"""


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pool")
    cfg = tmp / "lantern.toml"
    cfg.write_text(CONFIG)
    s = Server("--config", str(cfg), tmp=tmp)
    yield s
    s.stop()


def statuses(pool):
    return {m["id"]: m["status"] for m in requests.get(pool.base + "/v1/models").json()["data"]}


def chat(pool, model, **kw):
    body = {"model": model, "messages": [{"role": "user", "content": "Name a color."}], "max_tokens": 8,
            "temperature": 0, **kw}
    return requests.post(pool.base + "/v1/chat/completions", json=body, timeout=120)


def test_models_list_ids_aliases_and_status(pool):
    s = statuses(pool)
    assert set(s) == {"smol-a", "gpt-4o-mini", "smol-lazy", "smol-pair"}
    assert s["smol-a"] == "loaded" and s["gpt-4o-mini"] == "loaded"
    assert s["smol-pair"] == "loaded"
    alias = requests.get(pool.base + "/v1/models/gpt-4o-mini").json()
    assert alias["id"] == "gpt-4o-mini" and alias["status"] == "loaded"


def test_alias_routes_to_its_model(pool):
    client = pool.client()
    by_alias = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}],
                                              temperature=0, max_tokens=8)
    by_id = client.chat.completions.create(model="smol-a", messages=[{"role": "user", "content": "Hi"}],
                                           temperature=0, max_tokens=8)
    assert by_alias.choices[0].message.content == by_id.choices[0].message.content
    assert by_alias.model == "gpt-4o-mini"


def test_unknown_model_404_lists_the_ids(pool):
    with pytest.raises(openai.NotFoundError) as e:
        pool.client().chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "x"}])
    message = e.value.body["message"]
    assert all(i in message for i in ("smol-a", "smol-lazy", "smol-pair"))


def test_lazy_model_loads_on_first_use_with_concurrent_waiters_then_unloads_when_idle(pool):
    assert statuses(pool)["smol-lazy"] == "unloaded"
    results = concurrently(3, lambda: chat(pool, "smol-lazy"))
    assert [r.status_code for r in results] == [200, 200, 200], [r.text for r in results]
    assert all(r.json()["usage"]["completion_tokens"] >= 1 for r in results)
    assert statuses(pool)["smol-lazy"] == "loaded"
    # One load served all three waiters.
    loads = [l for l in pool.logs().splitlines() if "loading model" in l and "smol-lazy" in l]
    assert len(loads) == 1, loads
    # idle_unload_secs = 3
    deadline = time.time() + 15
    while statuses(pool)["smol-lazy"] != "unloaded":
        assert time.time() < deadline, "the idle model was not unloaded"
        time.sleep(0.5)
    assert "unloaded idle model" in pool.logs()
    again = chat(pool, "smol-lazy")
    assert again.status_code == 200
    assert statuses(pool)["smol-lazy"] == "loaded"


def test_queue_full_is_429_while_accepted_requests_complete(pool):
    # smol-pair: 2 replicas x 1 slot, max_queue 0 -> two requests run at once, the rest are refused.
    results = []
    lock = threading.Lock()

    def go():
        r = chat(pool, "smol-pair", max_tokens=96, ignore_eos=True)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=go) for _ in range(5)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    ok = [r for r in results if r.status_code == 200]
    refused = [r for r in results if r.status_code == 429]
    assert len(ok) + len(refused) == 5
    # Both replicas took a request: one replica alone would have accepted only one.
    assert len(ok) == 2, [r.status_code for r in results]
    assert all(r.json()["usage"]["completion_tokens"] == 96 for r in ok)
    for r in refused:
        assert r.headers["retry-after"] == "1"
        err = r.json()["error"]
        assert err["type"] == "rate_limit_error" and err["code"] == "rate_limit_exceeded"
    # After the burst the model serves again.
    assert chat(pool, "smol-pair").status_code == 200


LIMITS = f"""
max_loaded_models = 2
[cache]
enabled = false

[[models]]
id = "m1"
path = "{MODEL}"
parallel = 1
ctx_size = 1024

[[models]]
id = "m2"
path = "{MODEL}"
load = "lazy"
parallel = 1
ctx_size = 1024

[[models]]
id = "m3"
path = "{MODEL}"
load = "lazy"
parallel = 1
ctx_size = 1024

[[models]]
id = "broken"
path = "{{broken}}"
load = "lazy"
"""


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limited")
    broken = tmp / "truncated.gguf"
    broken.write_bytes(MODEL.read_bytes()[:3_000_000])
    cfg = tmp / "lantern.toml"
    cfg.write_text(LIMITS.replace("{broken}", str(broken)))
    s = Server("--config", str(cfg), tmp=tmp)
    yield s
    s.stop()


def test_least_recently_used_model_is_evicted_at_max_loaded_models(limited):
    assert statuses(limited) == {"m1": "loaded", "m2": "unloaded", "m3": "unloaded", "broken": "unloaded"}
    assert chat(limited, "m2").status_code == 200
    assert chat(limited, "m1").status_code == 200  # m1 is now more recent than m2
    assert chat(limited, "m3").status_code == 200
    s = statuses(limited)
    assert (s["m1"], s["m2"], s["m3"]) == ("loaded", "unloaded", "loaded"), s
    assert "evicted least recently used model" in limited.logs()
    # An evicted model comes back on demand, evicting the next least recently used (m1).
    assert chat(limited, "m2").status_code == 200
    s = statuses(limited)
    assert (s["m1"], s["m2"], s["m3"]) == ("unloaded", "loaded", "loaded"), s


def test_failed_lazy_load_answers_every_waiter_with_503(limited):
    for r in concurrently(2, lambda: chat(limited, "broken")):
        assert r.status_code == 503
        err = r.json()["error"]
        assert err["code"] == "model_load_failed"
        assert "could not be loaded" in err["message"] and "truncated" in err["message"]
    assert statuses(limited)["broken"] == "unloaded"
    # Other models are unaffected.
    assert chat(limited, "m3").status_code == 200


@pytest.fixture
def pair(tmp_path):
    cfg = tmp_path / "pair.toml"
    cfg.write_text(f'[cache]\nenabled = false\n[[models]]\nid = "pair"\npath = "{MODEL}"\n'
                   f'replicas = 2\nparallel = 1\nctx_size = 1024\nthreads = 1\n')
    s = Server("--config", str(cfg), tmp=tmp_path)
    yield s
    s.stop()


def test_replica_holding_the_prompt_prefix_gets_the_request(pair):
    client = pair.client()
    system = {"role": "system", "content": "You are a terse assistant for the harbour office."}
    turn1 = [system, {"role": "user", "content": "Name three ships."}]
    first = client.chat.completions.create(model="pair", messages=turn1, temperature=0, max_tokens=16)
    # An unrelated prompt goes to the other, empty replica instead of overwriting turn 1's KV.
    client.completions.create(model="pair", prompt="Zebras and giraffes live in", max_tokens=16, temperature=0)
    turn2 = turn1 + [{"role": "assistant", "content": first.choices[0].message.content},
                     {"role": "user", "content": "And three ports?"}]
    second = client.chat.completions.create(model="pair", messages=turn2, temperature=0, max_tokens=8)
    assert second.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens - 1


def test_max_memory_bytes_counts_kv_cache_and_compute_buffer(tmp_path):
    # Each model: 98 MB of weights, 4096 tokens x 23040 bytes of f16 KV (94 MB), and a compute
    # buffer for 512-token micro-batches, mostly 512 x 49152 f32 logits (110 MB): 303 MB. Two
    # are 606 MB, over 500 MB, though their weights and KV caches alone (386 MB) would fit.
    models = "".join(
        f'[[models]]\nid = "{name}"\npath = "{MODEL}"\nload = "{load}"\nparallel = 1\nctx_size = 4096\n'
        for name, load in (("first", "eager"), ("second", "lazy")))
    cfg = tmp_path / "memory.toml"
    cfg.write_text("max_memory_bytes = 500000000\n[cache]\nenabled = false\n" + models)
    s = Server("--config", str(cfg), tmp=tmp_path)
    try:
        assert chat(s, "second").status_code == 200
        got = statuses(s)
        assert (got["first"], got["second"]) == ("unloaded", "loaded"), got
        assert "evicted least recently used model" in s.logs()
    finally:
        s.stop()
