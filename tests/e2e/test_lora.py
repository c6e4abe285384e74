"""LoRA adapters on the real default model, with adapters written by tests/fixtures/make_lora.py:
served as `BASE:NAME` model ids, scale 0 equal to the base model and scale 1 different, base
and adapter requests in flight together each getting what they get alone, the runtime API
(load, use, 409 while in use, unload), mismatched adapters refused, and the metrics."""

import sys
import threading
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import MODEL, MODEL_ID, ROOT, Server

sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
import make_lora  # noqa: E402

PROMPTS = ["What is the capital of France?", "Name a colour.", "Write a haiku about rain."]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lora")
    out = {}
    # parrot and crow are Q4_1 (rank 32): batch-size invariant, so outputs compare exactly
    # (see make_lora.py); pirate is the plain rank-8 F32 adapter.
    q4 = {"rank": 32, "q4_1": True, "std": 0.01}
    for name, kw in {"pirate": {"seed": 0}, "parrot": {"seed": 1, **q4}, "crow": {"seed": 2, **q4},
                     "wrong": {"wrong_shape": True}, "gemma": {"arch": "gemma3"}}.items():
        out[name] = tmp / f"{name}.gguf"
        make_lora.write(MODEL, out[name], **kw)
    return tmp, out


@pytest.fixture(scope="module")
def server(files):
    tmp, f = files
    config = tmp / "lora.toml"
    config.write_text(f'''
lora = [
  {{ name = "pirate", path = "{f["pirate"]}", scale = 1.0, aliases = ["pirate-alias"] }},
  {{ name = "zero", path = "{f["pirate"]}", scale = 0.0 }},
  {{ name = "parrot", path = "{f["parrot"]}" }},
  {{ name = "crow", path = "{f["crow"]}" }},
]
''')
    s = Server("--config", str(config), "--parallel", "4", tmp=tmp)
    yield s
    s.stop()


def chat(s, model, prompt, max_tokens=24, **kw):
    r = s.client(default_headers={"Cache-Control": "no-cache"}).chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], temperature=0,
        max_tokens=max_tokens, **kw)
    return r


def text(s, model, prompt, max_tokens=24):
    return chat(s, model, prompt, max_tokens).choices[0].message.content


def test_adapters_are_models_with_the_base_as_parent(server):
    models = {m.id: m for m in server.client().models.list().data}
    for name in ("pirate", "zero", "parrot", "crow"):
        m = models[f"{MODEL_ID}:{name}"]
        assert m.parent == MODEL_ID and m.status == "loaded"
    assert models["pirate-alias"].parent == MODEL_ID
    assert getattr(models[MODEL_ID], "parent", None) is None
    one = requests.get(f"{server.base}/v1/models/{MODEL_ID}:pirate").json()
    assert one["parent"] == MODEL_ID


def test_scale_zero_is_the_base_model_and_scale_one_changes_the_output(server):
    for prompt in PROMPTS:
        base = text(server, MODEL_ID, prompt)
        assert text(server, f"{MODEL_ID}:zero", prompt) == base
        pirate = text(server, f"{MODEL_ID}:pirate", prompt)
        assert pirate != base, prompt
        # The alias is the same adapter.
        assert text(server, "pirate-alias", prompt) == pirate
    r = chat(server, f"{MODEL_ID}:pirate", PROMPTS[0])
    assert r.model == f"{MODEL_ID}:pirate"


def test_base_and_adapters_in_flight_together_get_what_they_get_alone(server):
    models = [MODEL_ID, f"{MODEL_ID}:parrot", f"{MODEL_ID}:crow"]
    jobs = [(m, p) for m in models for p in PROMPTS[:2]]
    alone = {job: text(server, *job, max_tokens=32) for job in jobs}
    assert len({alone[(m, PROMPTS[0])] for m in models}) == 3, "each adapter answers differently"
    together = {}

    def run(job):
        together[job] = text(server, *job, max_tokens=32)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone


def test_the_response_cache_keeps_adapters_apart(server):
    c = server.client()
    body = dict(messages=[{"role": "user", "content": "Say hi."}], temperature=0, max_tokens=8)
    first = c.chat.completions.with_raw_response.create(model=MODEL_ID, **body)
    assert first.headers["x-lantern-cache"] in ("miss", "hit")
    adapter = c.chat.completions.with_raw_response.create(model=f"{MODEL_ID}:pirate", **body)
    assert adapter.headers["x-lantern-cache"] == "miss"
    assert adapter.parse().model == f"{MODEL_ID}:pirate"
    again = c.chat.completions.with_raw_response.create(model=f"{MODEL_ID}:pirate", **body)
    assert again.headers["x-lantern-cache"] == "hit"
    assert again.parse().choices[0].message.content == adapter.parse().choices[0].message.content


def long_stream(s, model, started):
    stream = s.client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Count to one thousand."}],
        max_tokens=400, stream=True, extra_body={"ignore_eos": True})
    for i, _ in enumerate(stream):
        if i == 2:
            started.set()


def test_runtime_load_use_409_while_in_use_and_unload(server, files):
    _, f = files
    url = f"{server.base}/v1/lora-adapters"
    r = requests.post(url, json={"model": MODEL_ID, "name": "late", "path": str(f["parrot"]),
                                 "scale": 1.0})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == f"{MODEL_ID}:late"
    listed = {a["name"]: a for a in requests.get(url).json()["data"]}
    assert listed["late"]["scale"] == 1.0 and listed["pirate"]["aliases"] == ["pirate-alias"]
    assert f"{MODEL_ID}:late" in [m.id for m in server.client().models.list().data]
    # The same file as `parrot` at the same scale: the same answer.
    assert text(server, f"{MODEL_ID}:late", PROMPTS[1]) == text(server, f"{MODEL_ID}:parrot",
                                                               PROMPTS[1])
    again = requests.post(url, json={"model": MODEL_ID, "name": "late", "path": str(f["parrot"])})
    assert again.status_code == 409 and again.json()["error"]["code"] == "lora_adapter_exists"

    started = threading.Event()
    t = threading.Thread(target=long_stream, args=(server, f"{MODEL_ID}:late", started))
    t.start()
    assert started.wait(60)
    busy = requests.get(url).json()["data"]
    assert [a["running"] for a in busy if a["name"] == "late"] == [1]
    r = requests.delete(f"{url}/{MODEL_ID}/late")
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "lora_adapter_in_use"
    t.join()
    r = requests.delete(f"{url}/{MODEL_ID}/late")
    assert r.status_code == 200, r.text
    assert f"{MODEL_ID}:late" not in [m.id for m in server.client().models.list().data]
    gone = requests.post(f"{server.base}/v1/chat/completions", json={
        "model": f"{MODEL_ID}:late", "messages": [{"role": "user", "content": "hi"}]})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "model_not_found"
    assert requests.delete(f"{url}/{MODEL_ID}/late").status_code == 404


def test_mismatched_adapters_are_refused(server, files, tmp_path):
    tmp, f = files
    url = f"{server.base}/v1/lora-adapters"
    for name, words in (("wrong", "another model"), ("gemma", "gemma3")):
        r = requests.post(url, json={"model": MODEL_ID, "name": name, "path": str(f[name])})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["param"] == "path" and words in err["message"], err
    r = requests.post(url, json={"model": MODEL_ID, "name": "m", "path": str(MODEL)})
    assert r.status_code == 400 and "not an adapter" in r.json()["error"]["message"]
    r = requests.post(url, json={"model": MODEL_ID, "name": "bad:name", "path": str(f["pirate"])})
    assert r.status_code == 400 and r.json()["error"]["param"] == "name"
    r = requests.post(url, json={"model": "nope", "name": "x", "path": str(f["pirate"])})
    assert r.status_code == 404
    # At start-up, a wrong adapter stops the server with a line saying which and why.
    with pytest.raises(RuntimeError) as failed:
        Server("--lora", f"wrong={f['wrong']}", tmp=tmp_path)
    assert "wrong" in str(failed.value) and "another model" in str(failed.value)


def scrape(s):
    text = requests.get(s.base + "/metrics").text
    return {(x.name, tuple(sorted(x.labels.items()))): x.value
            for fam in text_string_to_metric_families(text) for x in fam.samples}


def sample(metrics, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    return metrics.get(key, 0.0)


def test_metrics_count_adapter_requests_and_report_running_adapters(server):
    before = scrape(server)
    text(server, f"{MODEL_ID}:parrot", PROMPTS[0], max_tokens=4)
    after = scrape(server)
    labels = {"model": MODEL_ID, "adapter": "parrot"}
    assert sample(after, "lantern_lora_requests_total", **labels) == \
        sample(before, "lantern_lora_requests_total", **labels) + 1
    assert sample(after, "lantern_lora_adapters_loaded", model=MODEL_ID) >= 3

    started = threading.Event()
    t = threading.Thread(target=long_stream, args=(server, f"{MODEL_ID}:pirate", started))
    t.start()
    assert started.wait(60)
    during = scrape(server)
    t.join()
    info = [(dict(k[1]), v) for k, v in during.items() if k[0] == "vllm:lora_requests_info"]
    newest = max(info, key=lambda x: x[1])
    assert newest[0]["running_lora_adapters"] == "pirate", newest
    assert newest[0]["max_lora"] == "4"
    assert newest[1] > time.time() - 60
    assert sample(during, "lantern_lora_requests_running", model=MODEL_ID, adapter="pirate") == 1
