"""Embeddings and tokenize/detokenize on the real model, through the Python and Node SDKs."""

import base64
import json
import shutil
import struct
import subprocess

import pytest
import requests

from conftest import MODEL_ID, ROOT, Server

NODE_DIR = ROOT / "tests" / "node"


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)


def test_python_float_and_base64_are_the_same_vector(client):
    texts = ["The cat sat on the mat.", "Quantum chromodynamics"]
    floats = client.embeddings.create(model=MODEL_ID, input=texts, encoding_format="float")
    # The SDK asks for base64 by default and decodes it.
    default = client.embeddings.create(model=MODEL_ID, input=texts)
    assert [d.index for d in floats.data] == [0, 1]
    for f, d in zip(floats.data, default.data):
        assert len(f.embedding) == len(d.embedding) > 100
        assert f.embedding == pytest.approx(d.embedding, abs=1e-6)
        assert sum(x * x for x in f.embedding) == pytest.approx(1.0, abs=1e-4)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 4
    assert floats.data[0].embedding != pytest.approx(floats.data[1].embedding, abs=1e-3)


def test_raw_base64_is_little_endian_float32(server):
    body = {"model": MODEL_ID, "input": "hello world"}
    f = requests.post(server.base + "/v1/embeddings", json={**body, "encoding_format": "float"}).json()
    b = requests.post(server.base + "/v1/embeddings", json={**body, "encoding_format": "base64"}).json()
    assert b["object"] == "list" and b["data"][0]["object"] == "embedding"
    raw = base64.b64decode(b["data"][0]["embedding"])
    vec = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert list(vec) == pytest.approx(f["data"][0]["embedding"], abs=1e-6)


def test_node_float_and_base64_are_the_same_vector(server):
    assert shutil.which("node") and (NODE_DIR / "node_modules" / "openai").exists(), \
        "install the Node SDK first: make tests/node/node_modules/.installed"
    out = subprocess.run(
        ["node", str(NODE_DIR / "embeddings.mjs"), server.base + "/v1", MODEL_ID, "a red apple", "a green pear"],
        capture_output=True, text=True, timeout=120, check=True)
    got = json.loads(out.stdout)
    assert len(got["default"]) == len(got["float"]) == 2
    for d, f in zip(got["default"], got["float"]):
        assert len(d) == len(f) > 100
        assert d == pytest.approx(f, abs=1e-6)
    assert got["usage"]["prompt_tokens"] > 2


def test_similar_sentences_score_higher_than_unrelated(client):
    pairs = [
        ("The cat is sleeping on the sofa.", "A kitten naps on the couch.", "Stock markets fell sharply on Monday."),
        ("How do I bake bread at home?", "What is a simple recipe for homemade bread?", "The rocket reached orbit."),
        ("It is raining heavily today.", "Today there is a lot of rain.", "He plays the violin in an orchestra."),
    ]
    for anchor, similar, unrelated in pairs:
        r = client.embeddings.create(model=MODEL_ID, input=[anchor, similar, unrelated], encoding_format="float")
        a, s, u = (d.embedding for d in r.data)
        assert cosine(a, s) > cosine(a, u), (anchor, cosine(a, s), cosine(a, u))


def test_token_inputs_embed_like_text(client, server):
    text = "the quick brown fox"
    ids = requests.post(server.base + "/tokenize", json={"content": text}).json()["tokens"]
    by_text = client.embeddings.create(model=MODEL_ID, input=text, encoding_format="float").data[0].embedding
    by_ids = client.embeddings.create(model=MODEL_ID, input=ids, encoding_format="float").data[0].embedding
    assert by_ids == pytest.approx(by_text, abs=1e-5)
    both = client.embeddings.create(model=MODEL_ID, input=[ids, ids[:2]], encoding_format="float")
    assert len(both.data) == 2 and both.usage.prompt_tokens == len(ids) + 2


def test_dimensions_and_bad_inputs_are_refused(server):
    for body, param in [
        ({"input": "hi", "dimensions": 64}, "dimensions"),
        ({"input": "hi", "encoding_format": "int8"}, "encoding_format"),
        ({"input": []}, "input"),
        ({"input": ""}, "input"),
    ]:
        r = requests.post(server.base + "/v1/embeddings", json={"model": MODEL_ID, **body})
        assert r.status_code == 400, (body, r.text)
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and err["param"] == param, (body, err)


@pytest.mark.parametrize("prefix", ["", "/v1"])
def test_tokenize_detokenize_round_trip(server, prefix):
    text = "Hello, world! Ünïcödé and emoji 🚀 survive the round trip."
    r = requests.post(server.base + prefix + "/tokenize", json={"model": MODEL_ID, "content": text})
    assert r.status_code == 200, r.text
    tokens = r.json()["tokens"]
    assert all(isinstance(t, int) for t in tokens) and len(tokens) > 5
    back = requests.post(server.base + prefix + "/detokenize", json={"model": MODEL_ID, "tokens": tokens})
    assert back.status_code == 200, back.text
    assert back.json()["content"] == text
    pieces = requests.post(server.base + prefix + "/tokenize",
                           json={"content": text, "with_pieces": True}).json()["tokens"]
    assert [p["id"] for p in pieces] == tokens
    with_special = requests.post(server.base + prefix + "/tokenize",
                                 json={"content": text, "add_special": True}).json()["tokens"]
    assert with_special[-len(tokens):] == tokens and len(with_special) >= len(tokens)


def test_detokenize_rejects_ids_outside_the_vocabulary(server):
    r = requests.post(server.base + "/detokenize", json={"tokens": [1, 999999999]})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "tokens"


def test_embeddings_only_model_refuses_generation(tmp_path):
    s = Server("--embeddings-only", tmp=tmp_path)
    try:
        e = requests.post(s.base + "/v1/embeddings", json={"model": MODEL_ID, "input": "hello"})
        assert e.status_code == 200, e.text
        assert len(e.json()["data"][0]["embedding"]) > 100
        r = requests.post(s.base + "/v1/chat/completions", json={
            "model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "model"
        assert "embeddings only" in r.json()["error"]["message"]
    finally:
        s.stop()
